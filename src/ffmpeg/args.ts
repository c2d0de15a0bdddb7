/**
 * Typed builders for FFmpeg command lines. Every argument the relay passes to
 * FFmpeg is produced here, so the flags that decide latency and keyframe
 * placement are in one place and covered by unit tests.
 */
import type { VideoCodecName } from '../codecs.js';

/** Where every socket of the re-encoder's FFmpeg binds, unless told otherwise: loopback, never 0.0.0.0. */
export const FFMPEG_LOCAL_ADDRESS = '127.0.0.1';

export interface RtpOutputTarget {
	/** Where the mediasoup PlainTransport listens for RTP. */
	host: string;
	rtpPort: number;
	rtcpPort: number;
	/**
	 * FFmpeg's own source ports. Pinned so that a restarted FFmpeg sends from the
	 * same address and the comedia PlainTransport keeps accepting it.
	 */
	localRtpPort: number;
	localRtcpPort: number;
	/** Address FFmpeg binds all its sockets to, input and output. Default FFMPEG_LOCAL_ADDRESS. */
	localAddress?: string;
	ssrc: number;
	payloadType: number;
	/** First RTP sequence number; a restarted FFmpeg continues where the last one stopped. */
	seq?: number;
}

export interface VideoEncoding {
	codec: VideoCodecName;
	width: number;
	height: number;
	fps: number;
	bitrateKbps: number;
	/** Seconds between keyframes; every keyframe is at a fixed distance. */
	keyframeIntervalSeconds: number;
	/** libx264/libvpx threads. */
	threads: number;
	/** libav engine: shortest time between two keyframes made on demand, ms (the FFmpeg engine makes none). */
	minKeyframeIntervalMs?: number;
	/** libav engine: the simulcast ladder, lowest first (absent: one rendition, width x height @ bitrateKbps). */
	ladder?: Array<{ width: number; height: number; bitrateKbps: number; fps: number }>;
}

export interface AudioEncoding {
	bitrateKbps: number;
	/** libav engine: decode and encode Opus again (default: passed through). */
	reencode?: boolean;
}

/**
 * Common input side: an SDP on stdin describing RTP that mediasoup sends to FFmpeg.
 * The SDP's connection address is the sender's (see ffmpegInputSdp and
 * PortPool.acquireFeed): FFmpeg binds its RTP and RTCP sockets on `localAddress`
 * and, with filter_src, connects them to the sender, so the kernel hands it no
 * packet from anyone else. That matters beyond injected media: FFmpeg ends the
 * input on one RTCP BYE from any source, whatever its SSRC.
 */
function sdpInputArgs(localAddress: string): string[] {
	return [
		'-hide_banner',
		'-nostdin',
		'-loglevel', 'level+info',
		'-nostats',
		'-progress', 'pipe:3',
		'-stats_period', '1',
		'-protocol_whitelist', 'pipe,udp,rtp',
		// No +nobuffer: it drops the packets read while probing, and the feeding consumer starts
		// at a keyframe (mediasoup forwards nothing before one), so the probe read exactly that
		// keyframe and threw it away: FFmpeg decoded only from the broadcaster's next one, a whole
		// GOP later (7.7 s instead of 3.7 s after a restart with a 4 s GOP). Kept, the probed
		// packets are decoded at once, and the probe ends at the keyframe that gives the size.
		'-fflags', '+genpts+discardcorrupt',
		'-flags', 'low_delay',
		// Probe only until the first keyframe gives the size: every millisecond here delays
		// the first frame after a start or restart.
		'-analyzeduration', '500000',
		'-probesize', '500000',
		'-fpsprobesize', '0',
		'-reorder_queue_size', '64',
		// A keyframe arrives as a burst of packets; while FFmpeg is busy encoding, a bigger socket
		// buffer holds them instead of dropping them (the kernel caps it at net.core.rmem_max).
		'-buffer_size', '4194304',
		'-localaddr', localAddress,
		'-sdp_flags', 'filter_src',
		// No input for a while is "no input yet" (a broadcaster that paused, a feed being
		// re-created), not the end of the stream: by default FFmpeg gives up after 10 s.
		'-listen_timeout', '-1',
		'-f', 'sdp',
		'-i', 'pipe:0',
	];
}

export function rtpOutputUrl(target: RtpOutputTarget): string {
	const query = new URLSearchParams({
		rtcpport: String(target.rtcpPort),
		localrtpport: String(target.localRtpPort),
		localrtcpport: String(target.localRtcpPort),
		localaddr: target.localAddress ?? FFMPEG_LOCAL_ADDRESS,
		pkt_size: '1200',
	});
	return `rtp://${target.host}:${target.rtpPort}?${query.toString()}`;
}

function rtpOutputArgs(target: RtpOutputTarget): string[] {
	const seq = target.seq === undefined ? [] : ['-seq', String(target.seq & 0xffff)];
	return ['-f', 'rtp', '-ssrc', String(target.ssrc), '-payload_type', String(target.payloadType), ...seq, rtpOutputUrl(target)];
}

/** Encoder flags that give a fixed GOP and no lookahead, for libvpx (VP8) or libx264 (H264). */
export function videoEncoderArgs(video: VideoEncoding): string[] {
	// The GOP is set by -force_key_frames alone; the encoder's own keyframe distance is kept
	// far beyond it so the encoder never adds keyframes of its own between the forced ones.
	const gop = Math.max(1, Math.round(video.fps * video.keyframeIntervalSeconds)) * 10;
	const bitrate = `${video.bitrateKbps}k`;
	const common = [
		'-vf', `scale=${video.width}:${video.height}:force_original_aspect_ratio=decrease,pad=${video.width}:${video.height}:(ow-iw)/2:(oh-ih)/2,fps=${video.fps},format=yuv420p`,
		'-g', String(gop),
		'-keyint_min', String(gop),
		// Keyframes at a fixed interval, whatever the content does. Frame 1 is a keyframe too:
		// after a restart mediasoup drops the first packet of the new sequence-number run
		// (its "bad sequence" probation), which would spoil frame 0's keyframe for viewers.
		'-force_key_frames', `expr:eq(n,1)+gte(t,prev_forced_t+${video.keyframeIntervalSeconds})`,
		'-b:v', bitrate,
		'-maxrate', bitrate,
		'-bufsize', `${Math.max(1, Math.round(video.bitrateKbps / 2))}k`,
		'-threads', String(video.threads),
	];
	if (video.codec === 'VP8') {
		return [
			'-c:v', 'libvpx',
			'-deadline', 'realtime',
			'-cpu-used', '8',
			'-lag-in-frames', '0',
			'-auto-alt-ref', '0',
			'-error-resilient', '1',
			'-static-thresh', '0',
			...common,
		];
	}
	return [
		'-c:v', 'libx264',
		'-preset', 'ultrafast',
		'-tune', 'zerolatency',
		'-profile:v', 'baseline',
		'-level', '3.1',
		'-bf', '0',
		'-sc_threshold', '0',
		'-x264-params', 'repeat-headers=1:aud=0',
		...common,
	];
}

/** FFmpeg reading one video RTP stream described by an SDP on stdin, re-encoding it to RTP. */
export function videoReencoderArgs(video: VideoEncoding, output: RtpOutputTarget): string[] {
	return [...sdpInputArgs(output.localAddress ?? FFMPEG_LOCAL_ADDRESS), '-map', '0:v:0', '-an', ...videoEncoderArgs(video), ...rtpOutputArgs(output)];
}

/** FFmpeg reading one Opus RTP stream described by an SDP on stdin, re-encoding it to Opus RTP. */
export function audioReencoderArgs(audio: AudioEncoding, output: RtpOutputTarget): string[] {
	return [
		...sdpInputArgs(output.localAddress ?? FFMPEG_LOCAL_ADDRESS),
		'-map', '0:a:0',
		'-vn',
		'-c:a', 'libopus',
		'-application', 'lowdelay',
		'-frame_duration', '20',
		'-b:a', `${audio.bitrateKbps}k`,
		'-ar', '48000',
		'-ac', '2',
		...rtpOutputArgs(output),
	];
}

export interface TestSourceOptions {
	video: VideoEncoding;
	/** Where to send video; omit for audio only. */
	videoTarget: Omit<RtpOutputTarget, 'localRtpPort' | 'localRtcpPort'> & Partial<RtpOutputTarget>;
	/** Where to send Opus audio; omit for video only. */
	audioTarget?: Omit<RtpOutputTarget, 'localRtpPort' | 'localRtcpPort'> & Partial<RtpOutputTarget>;
	/** Stop after this many seconds; default: run until killed. */
	durationSeconds?: number;
}

function looseRtpUrl(target: TestSourceOptions['videoTarget']): string {
	const query = new URLSearchParams({ rtcpport: String(target.rtcpPort), pkt_size: '1200' });
	// Sending to loopback: bind loopback too, so the source's sockets are not open to the world.
	if (target.host.startsWith('127.')) query.set('localaddr', FFMPEG_LOCAL_ADDRESS);
	if (target.localRtpPort) query.set('localrtpport', String(target.localRtpPort));
	if (target.localRtcpPort) query.set('localrtcpport', String(target.localRtcpPort));
	return `rtp://${target.host}:${target.rtpPort}?${query.toString()}`;
}

/**
 * A synthetic broadcaster: FFmpeg's test pattern (with a running clock, so frames
 * differ) and a tone, encoded in real time and sent as RTP. Used by the demo
 * broadcast and the tests; it plays the part of a real encoder such as OBS.
 */
export function testSourceArgs(options: TestSourceOptions): string[] {
	const { video } = options;
	const duration = options.durationSeconds ? ['-t', String(options.durationSeconds)] : [];
	const args = [
		'-hide_banner', '-nostdin', '-loglevel', 'level+warning', '-nostats',
		'-re', '-f', 'lavfi', '-i', `testsrc2=size=${video.width}x${video.height}:rate=${video.fps}`,
	];
	if (options.audioTarget) args.push('-re', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000');
	args.push(
		...duration,
		'-map', '0:v:0',
		...videoEncoderArgs(video),
		'-f', 'rtp', '-ssrc', String(options.videoTarget.ssrc), '-payload_type', String(options.videoTarget.payloadType),
		looseRtpUrl(options.videoTarget),
	);
	if (options.audioTarget) {
		args.push(
			...duration,
			'-map', '1:a:0',
			'-c:a', 'libopus', '-application', 'lowdelay', '-b:a', '64k', '-ar', '48000', '-ac', '2',
			'-f', 'rtp', '-ssrc', String(options.audioTarget.ssrc), '-payload_type', String(options.audioTarget.payloadType),
			looseRtpUrl(options.audioTarget),
		);
	}
	return args;
}

/**
 * The benchmark's latency probe (src/harness/LatencyProbe.ts): decodes a plain
 * viewer's video from an SDP on stdin as soon as each frame arrives (no
 * buffering, corrupt frames dropped) and writes, per frame, the top sixth of
 * the picture scaled to `barcodeBits` grey pixels on stdout: the barcode the
 * fixture draws with the frame's number.
 */
export function barcodeReaderArgs(options: { barcodeBits: number }): string[] {
	return [
		'-hide_banner', '-loglevel', 'error', '-nostdin',
		'-protocol_whitelist', 'pipe,udp,rtp',
		'-fflags', '+nobuffer+discardcorrupt', '-flags', 'low_delay',
		'-analyzeduration', '500000', '-probesize', '500000', '-fpsprobesize', '0',
		// Its sockets on loopback, where the plain viewer it reads sends from.
		'-localaddr', FFMPEG_LOCAL_ADDRESS,
		'-f', 'sdp', '-i', 'pipe:0',
		'-vf', `crop=iw:ih/6:0:0,scale=${options.barcodeBits}:1:flags=area,format=gray`,
		'-fps_mode', 'passthrough', '-flush_packets', '1',
		'-f', 'rawvideo', 'pipe:1',
	];
}

/**
 * The benchmark's fixture clip (src/harness/fixtures.ts): FFmpeg's test pattern
 * with the frame number drawn as a barcode of `barcodeBits` blocks in the top
 * sixth, encoded to an IVF (VP8) or Annex B (H264) file with a keyframe every
 * `gop` frames. VP8 is error-resilient (no entropy state carried between
 * frames), so a keyframe spliced in by the synthetic broadcaster leaves the
 * following frames decodable.
 */
export function fixtureClipArgs(options: {
	codec: 'VP8' | 'H264';
	width: number;
	height: number;
	fps: number;
	frames: number;
	bitrateKbps: number;
	gop: number;
	barcodeBits: number;
	output: string;
}): string[] {
	const { codec, width, height, fps, frames, bitrateKbps, gop, barcodeBits, output } = options;
	const barcode = `geq=lum='if(lt(Y,H/6),255*bitand(floor(N/pow(2,floor(X*${barcodeBits}/W))),1),lum(X,Y))':cb='cb(X,Y)':cr='cr(X,Y)'`;
	return [
		'-hide_banner', '-loglevel', 'error', '-y',
		'-f', 'lavfi', '-i', `testsrc2=size=${width}x${height}:rate=${fps}`,
		'-vf', barcode,
		'-frames:v', String(frames),
		...(codec === 'VP8'
			? ['-c:v', 'libvpx', '-deadline', 'good', '-cpu-used', '4', '-lag-in-frames', '0', '-auto-alt-ref', '0', '-error-resilient', '1']
			: ['-c:v', 'libx264', '-preset', 'veryfast', '-profile:v', 'baseline', '-bf', '0', '-sc_threshold', '0',
				'-x264-params', 'aud=1:repeat-headers=1', '-pix_fmt', 'yuv420p']),
		'-b:v', `${bitrateKbps}k`, '-g', String(gop), '-keyint_min', String(gop),
		'-f', codec === 'VP8' ? 'ivf' : 'h264', output,
	];
}

/** The benchmark's Opus fixture: a 440 Hz tone in 20 ms packets, in an Ogg file. */
export function opusFixtureArgs(options: { seconds: number; output: string }): string[] {
	return [
		'-hide_banner', '-loglevel', 'error', '-y',
		'-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:duration=${options.seconds}`,
		'-c:a', 'libopus', '-b:a', '48k', '-frame_duration', '20', '-application', 'lowdelay', '-f', 'ogg', options.output,
	];
}

/**
 * The A/V probe's click clip: silence with a `clickSamples`-long burst of a loud 1 kHz tone every
 * `periodSamples` (48 kHz), VBR Opus in 20 ms packets (silence: a few bytes a packet; a click:
 * a couple of hundred).
 */
export function clickFixtureArgs(options: { seconds: number; periodSamples: number; clickSamples: number; output: string }): string[] {
	const { seconds, periodSamples, clickSamples, output } = options;
	const source = `aevalsrc='if(lt(mod(n\\,${periodSamples})\\,${clickSamples})\\,0.8*sin(2*PI*1000*t)\\,0)':s=48000:d=${seconds}`;
	return [
		'-hide_banner', '-loglevel', 'error', '-y',
		'-f', 'lavfi', '-i', source,
		'-c:a', 'libopus', '-b:a', '48k', '-vbr', 'on', '-frame_duration', '20', '-application', 'lowdelay', '-f', 'ogg', output,
	];
}

/** FFmpeg's arguments: SRT listener in, FLV (H264 copy, AAC copy) out on stdout. */
export function srtListenerArgs(options: { host: string; port: number; passphrase?: string | undefined; latencyMs: number }): string[] {
	const query = new URLSearchParams({ mode: 'listener', latency: String(options.latencyMs * 1000) });
	if (options.passphrase) query.set('passphrase', options.passphrase);
	const host = options.host.includes(':') ? `[${options.host}]` : options.host;
	return [
		'-nostdin', '-hide_banner', '-nostats', '-loglevel', 'verbose',
		// Start soon after the caller's first packets; the sequence headers come from the stream.
		'-probesize', '500000', '-analyzeduration', '1000000',
		'-f', 'mpegts', '-i', `srt://${host}:${options.port}?${query.toString()}`,
		'-map', '0:v:0', '-map', '0:a:0?', '-c', 'copy',
		// Each packet goes out at once. Without these, video came in bursts the engine skipped through: the muxer held
		// video back to interleave it with audio (MPEG-TS callers pack up to ~0.4 s of AAC in one PES), and a pipe is
		// written in 32 KB blocks. Audio and video need no interleaving here: the FLV reader takes each tag as it comes.
		'-max_interleave_delta', '1', '-flush_packets', '1', '-f', 'flv', '-flvflags', 'no_duration_filesize', 'pipe:1',
	];
}

/** FFmpeg's list of protocols (to tell whether it has srt). */
export function ffmpegProtocolsArgs(): string[] {
	return ['-hide_banner', '-protocols'];
}
