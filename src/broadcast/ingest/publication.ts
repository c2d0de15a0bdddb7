import type { types as ms } from 'mediasoup';
import { UnsupportedCodecError } from '../../errors.js';
import { producerParametersFromOffer } from '../../ingest/webrtcOffer.js';
import type { Logger } from '../../logger.js';
import { buildAnswer, type AnswerSection } from '../../sdp/buildAnswer.js';
import { parseOffer, sectionsFor, type OfferMedia } from '../../sdp/parseOffer.js';
import { watchPeer, type PeerWatch } from '../../viewers/watchPeer.js';
import type { IngestSource, IngestTransportOptions } from './IngestSource.js';

/** A WebRTC publisher (WHIP): its transport and producers on the ingest router. Close it to end the publication. */
export interface Publication {
	readonly transport: ms.WebRtcTransport;
	readonly producers: ms.Producer[];
	readonly answer: string;
	close(): void;
}

/** A publisher's offer, read and checked before anything is created. */
export interface PublicationOffer {
	offer: ReturnType<typeof parseOffer>;
	sections: Array<{ section: OfferMedia; rtpParameters: ms.RtpParameters }>;
	kinds: ms.MediaKind[];
}

/** How often a publisher's received bytes are sampled: the precision of "silent for" (publishers are few, so this is cheap). */
const SILENCE_POLL_MS = 500;

export function readPublicationOffer(offerSdp: string): PublicationOffer {
	const offer = parseOffer(offerSdp);
	const sections = sectionsFor(offer.media, 'send');
	if (!sections.has('video')) throw new UnsupportedCodecError('the offer sends no video; publish a video track (VP8 or H264)');
	const parsed = [...sections.values()].map((section) => ({ section, rtpParameters: producerParametersFromOffer(section).rtpParameters }));
	return { offer, sections: parsed, kinds: parsed.map(({ section }) => section.kind) };
}

/**
 * Publishes from a WebRTC peer (WHIP, a browser, werift): a WebRtcTransport on
 * the ingest router and a producer per sending section, each handed to
 * `adopt` (the ingest) before the answer is made. The transport is the
 * publication's: it closes when the peer goes silent, with close(), or when
 * the ingest closes any of its sources (a new publisher replacing a silent one).
 * On any failure nothing is left behind.
 * A publisher cannot be moved, so after the ingest worker died it must publish again.
 */
export async function openPublication(
	router: ms.Router,
	{ offer, sections }: PublicationOffer,
	options: IngestTransportOptions & { peerTimeoutMs: number; logger: Logger; adopt(source: IngestSource): Promise<void> },
): Promise<Publication> {
	const transport = await router.createWebRtcTransport({
		listenIps: [options.listenIp],
		enableUdp: true,
		enableTcp: true,
		preferUdp: true,
		appData: { broadcastId: options.broadcastId, tier: 'webrtc-ingest' },
	});
	const producers: ms.Producer[] = [];
	try {
		const answerSections = new Map<string, AnswerSection>();
		for (const { section, rtpParameters } of sections) {
			const producer = await transport.produce({ kind: section.kind, rtpParameters });
			producers.push(producer);
			answerSections.set(section.mid, { direction: 'recvonly', rtpParameters: producer.rtpParameters });
		}
		await transport.connect({ dtlsParameters: { ...offer.dtlsParameters, role: 'server' } });
		// Not silent until watched: the peer cannot send before it has the answer.
		let peer: PeerWatch | undefined;
		const silentForMs = (): number => peer?.silentForMs() ?? 0;
		for (const producer of producers) {
			await options.adopt({ kind: producer.kind, producer, reattach: async () => undefined, close: () => transport.close(), silentForMs });
		}
		const answer = buildAnswer(offer, transport, answerSections);
		transport.observer.once('close', () => options.logger.info('publisher transport closed'));
		// Watched from the answer on (the peer's time to connect starts there); the ingest asks how long
		// it has been silent when another publisher comes, so it is polled more often than the timeout needs.
		peer = watchPeer(
			transport,
			options.peerTimeoutMs,
			(reason) => {
				options.logger.warn({ reason }, 'publisher gone; ending its publication');
				transport.close();
			},
			{ pollMs: SILENCE_POLL_MS },
		);
		return { transport, producers, answer, close: () => transport.close() };
	} catch (error) {
		transport.close();
		throw error;
	}
}
