import type { types as ms } from 'mediasoup';
import type { FeedPorts } from '../ports/PortPool.js';

/**
 * The mediasoup side of FFmpeg's RTP input. The PlainTransport that sends a
 * consumer's RTP to FFmpeg binds the feed address on FFmpeg's own RTP port
 * number, RTCP muxed: exactly the peer FFmpeg's connected sockets accept (see
 * PortPool.acquireFeed and sdpInputArgs), so nobody else can reach FFmpeg's input.
 */
export function feedTransportOptions(feed: FeedPorts): ms.PlainTransportOptions {
	return { listenIp: feed.feedHost, port: feed.rtp, rtcpMux: true, comedia: false };
}

/** Where the feeding transport sends: FFmpeg's RTP socket (RTCP goes there too, muxed; FFmpeg tells them apart). */
export function feedConnectParams(feed: FeedPorts): { ip: string; port: number } {
	return { ip: feed.host, port: feed.rtp };
}
