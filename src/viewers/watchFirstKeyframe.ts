import type { types as ms } from 'mediasoup';
import type { Logger } from '../logger.js';

/**
 * Asks again for a keyframe for a viewer that is connected but has received no
 * video yet. mediasoup asks once when the viewer's transport connects and
 * retries once a second later; if both requests are lost (or ignored by a
 * broadcaster that answers only some), the viewer waits for the broadcaster's
 * next own keyframe, which can be a long GOP away (issue 8 §6). Until the
 * consumer has sent its first packet (mediasoup sends nothing before a
 * keyframe), this asks again every `stallMs` while DTLS is connected and the
 * consumer is not paused. It stops at the first packet, or when the consumer
 * closes: it costs a stats request a second per joining viewer, none after.
 */
export function watchFirstKeyframe(options: {
	transport: ms.WebRtcTransport;
	consumer: ms.Consumer;
	stallMs: number;
	logger: Logger;
	/** Asks for the keyframe (the consumer's own request, and whatever else the caller knows of). */
	request: () => Promise<void>;
}): void {
	const { transport, consumer, stallMs, logger } = options;
	if (consumer.kind !== 'video') return;
	let connectedAt: number | undefined;
	let lastRequest = 0;
	const poll = setInterval(() => {
		if (consumer.closed) return stop();
		if (transport.dtlsState !== 'connected' || consumer.paused || consumer.producerPaused) {
			connectedAt = undefined;
			return;
		}
		const now = performance.now();
		connectedAt ??= now;
		void consumer
			.getStats()
			.then((stats) => {
				const sent = stats.filter((s) => s.type === 'outbound-rtp').reduce((sum, s) => sum + (s.packetCount ?? 0), 0);
				if (sent > 0) return stop();
				if (now - connectedAt! < stallMs || now - lastRequest < stallMs || consumer.closed) return;
				lastRequest = now;
				logger.debug({ consumerId: consumer.id, waitedMs: Math.round(now - connectedAt!) }, 'viewer connected without a keyframe; asking again');
				return options.request();
			})
			.catch(() => undefined);
	}, Math.min(1000, Math.max(100, Math.floor(stallMs / 4))));
	poll.unref();
	function stop(): void {
		clearInterval(poll);
	}
	consumer.observer.once('close', stop);
}
