import type { types as ms } from 'mediasoup';

/**
 * Ends a WebRTC peer that went away without saying so (browser killed, network
 * gone): calls `end` once if ICE and DTLS have not both connected within
 * `timeoutMs`, if the peer sends nothing (no RTP, RTCP or STUN) for `timeoutMs`,
 * or if DTLS fails or closes. A peer whose ICE connects but whose DTLS never
 * completes keeps sending consent checks, so it is never silent: without the
 * DTLS bound it would hold its place (and its consumers) for ever, receiving nothing. mediasoup 3.12 is ICE-lite without consent-freshness timeouts, so
 * a silent UDP peer would otherwise stay "connected" for ever; every live
 * WebRTC peer sends RTCP and consent checks every few seconds.
 *
 * The returned watch tells how long the peer has been silent, to the poll's
 * precision (`pollMs`, default a quarter of `timeoutMs`): a publisher that
 * needs to know sooner than the timeout (see Ingest) polls more often.
 */
export interface PeerWatch {
	/** How long the peer has sent nothing (no RTP, RTCP or STUN), ms, as of the last poll. */
	silentForMs(): number;
}

export function watchPeer(transport: ms.WebRtcTransport, timeoutMs: number, end: (reason: string) => void, options: { pollMs?: number } = {}): PeerWatch {
	let ended = false;
	const finish = (reason: string): void => {
		if (ended || transport.closed) return;
		ended = true;
		stop();
		end(reason);
	};
	const connectTimer = setTimeout(() => {
		if (transport.dtlsState === 'connected') return;
		const iceUp = transport.iceState === 'connected' || transport.iceState === 'completed';
		finish(iceUp ? 'DTLS did not complete in time' : 'ICE did not connect in time');
	}, timeoutMs);
	connectTimer.unref();

	let lastBytes = -1;
	let lastChange = Date.now();
	const poll = setInterval(() => {
		void transport
			.getStats()
			.then(([stats]) => {
				const bytes = stats?.bytesReceived ?? 0;
				if (bytes !== lastBytes) {
					lastBytes = bytes;
					lastChange = Date.now();
				} else if (Date.now() - lastChange >= timeoutMs) finish('peer silent');
			})
			.catch(() => undefined);
	}, options.pollMs ?? Math.max(250, Math.floor(timeoutMs / 4)));
	poll.unref();

	function stop(): void {
		clearTimeout(connectTimer);
		clearInterval(poll);
	}

	transport.on('icestatechange', (state) => {
		if (state === 'closed') finish('ICE closed');
	});
	transport.on('dtlsstatechange', (state) => {
		if (state === 'connected') clearTimeout(connectTimer);
		else if (state === 'failed' || state === 'closed') finish(`DTLS ${state}`);
	});
	transport.observer.once('close', stop);
	return { silentForMs: () => Date.now() - lastChange };
}
