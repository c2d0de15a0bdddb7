import { randomUUID } from 'node:crypto';
import type { types as ms } from 'mediasoup';
import { plainReceiverCapabilities, type CodecName } from '../codecs.js';
import { ClosedError } from '../errors.js';
import type { PublishedTrack } from '../fanout/FanOut.js';
import type { Logger } from '../logger.js';
import { buildAnswer, type AnswerSection } from '../sdp/buildAnswer.js';
import { parseOffer, sectionsFor } from '../sdp/parseOffer.js';
import { consumeCapabilities, viewerExtensionIds, viewerPayloadTypes } from './capabilities.js';
import type { Viewer, ViewerTransportOptions } from './Viewer.js';
import { watchPeer } from './watchPeer.js';

export type ViewerTransport = ms.WebRtcTransport | ms.PlainTransport;

/**
 * What differs between kinds of viewer; the audience's join() does the rest
 * (place, open the transport, pipe, consume, roll back on failure) the same
 * way for all of them.
 */
export interface JoinPlan<T extends ViewerTransport, R> {
	/** The published tracks this viewer consumes. */
	tracks: readonly PublishedTrack[];
	/** Payload types per codec the viewer's router must use ({} when any will do). */
	payloadTypes: Partial<Record<CodecName, number>>;
	/** Header extension ids the viewer picked, by URI (a WebRTC offer); the viewer's router takes them. */
	extensionIds?: Record<string, number>;
	openTransport(router: ms.Router): Promise<T>;
	/** How to consume the producer piped in for `track`, or undefined to skip the track. */
	consumeOptions(router: ms.Router, track: PublishedTrack, producerId: string): ms.ConsumerOptions | undefined;
	/** Once the consumers exist: connect and describe the result (an SDP answer, or nothing). */
	finish(transport: T, consumed: ReadonlyArray<{ track: PublishedTrack; consumer: ms.Consumer }>): Promise<R>;
	/** A connected WebRTC viewer with no video this long asks again for a keyframe (see watchFirstKeyframe), ms. */
	firstKeyframeStallMs?: number;
	/** The viewer exists: watch it (e.g. for a peer that goes silent). */
	started?(viewer: Viewer, transport: T): void;
}

function webRtcTransport(router: ms.Router, options: ViewerTransportOptions): Promise<ms.WebRtcTransport> {
	return router.createWebRtcTransport({
		listenIps: options.listenIps,
		enableUdp: true,
		enableTcp: true,
		preferUdp: true,
		initialAvailableOutgoingBitrate: options.initialAvailableOutgoingBitrate,
	});
}

/** A plain WebRTC peer (werift, a browser, a WHEP client) joining with an SDP offer; the result is the SDP answer. */
export function offerPlan(offerSdp: string, available: readonly PublishedTrack[], options: ViewerTransportOptions, logger: Logger): JoinPlan<ms.WebRtcTransport, string> {
	const offer = parseOffer(offerSdp);
	const sections = sectionsFor(offer.media, 'receive');
	const tracks = available.filter((t) => sections.has(t.kind));
	const streamId = randomUUID();
	return {
		tracks,
		payloadTypes: viewerPayloadTypes(offer.media, tracks),
		extensionIds: viewerExtensionIds(offer.media, tracks),
		...(options.firstKeyframeStallMs ? { firstKeyframeStallMs: options.firstKeyframeStallMs } : {}),
		openTransport: (router) => webRtcTransport(router, options),
		consumeOptions: (router, track, producerId) => {
			const section = sections.get(track.kind)!;
			// The consumer writes the offer's MID for its m-section (mediasoup would number consumers
			// in consume order): with the viewer's header extension ids the MID extension is negotiated,
			// and a browser demultiplexes a BUNDLE by it.
			return { producerId, rtpCapabilities: consumeCapabilities(router.rtpCapabilities, section), mid: String(section.mid) };
		},
		async finish(transport, consumed) {
			const answerSections = new Map<string, AnswerSection>();
			for (const { track, consumer } of consumed) {
				answerSections.set(sections.get(track.kind)!.mid, {
					direction: 'sendonly',
					rtpParameters: consumer.rtpParameters,
					send: { cname: `relay-${streamId.slice(0, 8)}`, streamId, trackId: consumer.id },
				});
			}
			// mediasoup takes the DTLS client role (the answer says a=setup:active).
			await transport.connect({ dtlsParameters: { ...offer.dtlsParameters, role: 'server' } });
			return buildAnswer(offer, transport, answerSections);
		},
		started(viewer, transport) {
			watchPeer(transport, options.peerTimeoutMs, (reason) => {
				logger.info({ viewerId: viewer.id, reason }, 'viewer gone');
				viewer.close('transport-closed');
			});
		},
	};
}

/** A mediasoup-client style peer joining with its RTP capabilities: paused consumers; it connects and resumes later. */
export function capabilitiesPlan(rtpCapabilities: ms.RtpCapabilities, available: readonly PublishedTrack[], options: ViewerTransportOptions): JoinPlan<ms.WebRtcTransport, void> {
	return {
		tracks: available,
		// mediasoup-client takes whatever payload types the consumer has: any router profile fits.
		payloadTypes: {},
		openTransport: (router) => webRtcTransport(router, options),
		consumeOptions: (router, _track, producerId) =>
			router.canConsume({ producerId, rtpCapabilities }) ? { producerId, rtpCapabilities, paused: true } : undefined,
		finish: async () => undefined,
		...(options.firstKeyframeStallMs ? { firstKeyframeStallMs: options.firstKeyframeStallMs } : {}),
	};
}

export interface PlainViewerOptions {
	remote: { ip: string; port: number; rtcpPort?: number };
	enableSrtp?: boolean;
	kinds?: ms.MediaKind[];
}

/**
 * A plain-RTP receiver (load-test sinks, measuring decoders): a PlainTransport
 * sending to `remote`, with SRTP when asked so the worker does the same
 * encryption work as for WebRTC.
 */
export function plainPlan(options: PlainViewerOptions & { listenIp: ms.TransportListenIp }, available: readonly PublishedTrack[]): JoinPlan<ms.PlainTransport, void> {
	const kinds = options.kinds ?? ['video', 'audio'];
	const tracks = available.filter((t) => kinds.includes(t.kind));
	if (tracks.length === 0) throw new ClosedError('broadcast source (nothing to consume yet)');
	return {
		tracks,
		payloadTypes: {},
		async openTransport(router) {
			const transport = await router.createPlainTransport({
				listenIp: options.listenIp,
				rtcpMux: options.remote.rtcpPort === undefined,
				comedia: false,
				enableSrtp: options.enableSrtp ?? false,
			});
			try {
				await transport.connect({
					ip: options.remote.ip,
					port: options.remote.port,
					...(options.remote.rtcpPort !== undefined ? { rtcpPort: options.remote.rtcpPort } : {}),
					// The sink counts packets without decrypting; any key of the right length does.
					...(options.enableSrtp ? { srtpParameters: { cryptoSuite: 'AES_CM_128_HMAC_SHA1_80', keyBase64: Buffer.alloc(30, 7).toString('base64') } } : {}),
				});
			} catch (error) {
				transport.close();
				throw error;
			}
			return transport;
		},
		consumeOptions: (router, _track, producerId) => ({ producerId, rtpCapabilities: plainReceiverCapabilities(router.rtpCapabilities) }),
		finish: async () => undefined,
	};
}
