/**
 * Messages between the relay (parent) and a broadcast's libav engine process
 * (child), over Node's IPC channel with advanced serialization.
 */
import type { VideoCodecName } from '../../codecs.js';

export type TrackKind = 'audio' | 'video';

/** Where one track's RTP comes from and goes to, and what to make of it. */
export interface TrackWiring {
	kind: TrackKind;
	input: {
		/** The broadcaster's codec as the feeding consumer sends it. */
		codec: VideoCodecName | 'opus';
		payloadType: number;
		ssrc: number;
		clockRate: number;
		/** The engine binds this address... */
		host: string;
		port: number;
		/** ...and accepts datagrams only from the feeding transport here (RTP and RTCP muxed). */
		remoteHost: string;
		remotePort: number;
	};
	output: {
		codec: VideoCodecName | 'opus';
		payloadType: number;
		/** Audio's SSRC (video: each layer has its own, in `video.layers`). */
		ssrc: number;
		/** Sequence number of this run's first packet (continues the last run's). Audio; video per layer. */
		firstSequenceNumber: number;
		/** Random RTP timestamp offset of the track, the same in every run. */
		timestampBase: number;
		/** Local RTP and RTCP ports the engine sends from (the producer's transport accepts only these). */
		host: string;
		rtpPort: number;
		rtcpPort: number;
		/** The producer transport's RTP and RTCP ports. */
		remoteHost: string;
		remoteRtpPort: number;
		remoteRtcpPort: number;
	};
	video?: {
		/** Input frame rate (the top layer's): the pace the engine expects pictures at. */
		fps: number;
		threads: number;
		keyframeIntervalMs: number;
		minKeyframeIntervalMs: number;
		/** The simulcast ladder, lowest first: one rendition per layer, each its own SSRC (an encoding of the one producer). */
		layers: LayerWiring[];
	};
	audio?: {
		/** Decode and encode Opus again instead of passing it through. */
		reencode: boolean;
		bitrateKbps: number;
	};
	/** At most one keyframe request to the broadcaster per this many ms. */
	upstreamKeyframeIntervalMs: number;
	/** Ask the broadcaster for a keyframe when none has come this long after the first packet, ms. */
	firstKeyframeTimeoutMs: number;
}

/** One layer of the re-encoded video: its rendition and its RTP stream. */
export interface LayerWiring {
	width: number;
	height: number;
	fps: number;
	bitrateKbps: number;
	ssrc: number;
	/** Sequence number of this run's first packet of this layer (continues the last run's). */
	firstSequenceNumber: number;
}

/** One layer's counters. */
export interface EngineLayerStats {
	ssrc: number;
	width: number;
	height: number;
	/** Pictures per second and kbit/s over the last second. */
	fps: number;
	bitrateKbps: number;
	framesEncoded: number;
	keyframes: number;
	keyframesOnDemand: number;
	keyframeRequestsReceived: number;
}

export type HealthState = 'ok' | 'degraded' | 'stalled';

export interface EngineHealth {
	state: HealthState;
	/** Why it is not ok, for people: "cpu: skipping frames", "input: waiting for a keyframe"... */
	reason?: string;
}

/** One track's counters, as the engine reports them about once a second. */
export interface EngineTrackStats {
	kind: TrackKind;
	health: EngineHealth;
	/** Output frames (video) or packets (audio) per second over the last second. */
	fps: number;
	bitrateKbps: number;
	framesEncoded: number;
	keyframes: number;
	keyframesOnDemand: number;
	keyframeRequestsReceived: number;
	upstreamKeyframeRequests: number;
	nacksSent: number;
	packetsRepaired: number;
	packetsLost: number;
	framesSkipped: number;
	framesRepeated: number;
	/** Frames dropped undecoded while waiting for a keyframe (after an unrepaired loss, or before the first). */
	framesDropped: number;
	/** Arrival of a frame's last packet to its re-encoded packets leaving, ms (last second). */
	latencyMsP50: number;
	latencyMsP95: number;
	/** Effort level of the encoder: 0 normal, 1 cheaper settings, 2 half resolution. */
	effort: number;
	/** Audio held back to match the video's latency, ms. */
	audioDelayMs?: number;
	/** First keyframe from the broadcaster to the first re-encoded frame leaving, ms. */
	startupMs?: number;
	/** Video: per layer of the ladder, lowest first (the totals above add them up; fps is of input pictures encoded). */
	layers?: EngineLayerStats[];
}

export type ParentMessage =
	| { type: 'add'; track: TrackWiring }
	| { type: 'remove'; kind: TrackKind }
	/** Make the next video frame a keyframe (as a viewer's PLI would). */
	| { type: 'keyframe' };

export type ChildMessage =
	| { type: 'ready' }
	| { type: 'added'; kind: TrackKind }
	| { type: 'failed'; kind: TrackKind; message: string }
	| { type: 'stats'; stats: EngineTrackStats }
	/** The engine needs a keyframe from the broadcaster (start, or a loss NACK could not repair). */
	| { type: 'upstreamkeyframe'; kind: TrackKind; reason: string }
	| { type: 'log'; level: 'debug' | 'info' | 'warn' | 'error'; message: string; data?: Record<string, unknown> };
