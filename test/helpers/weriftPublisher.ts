import { createSocket, type Socket } from 'node:dgram';
import { pino } from 'pino';
import { MediaStreamTrack, PictureLossIndication, RTCPeerConnection, RTCRtpCodecParameters } from 'werift';
import { testSourceArgs } from '../../src/ffmpeg/args.js';
import { resolveFfmpeg } from '../../src/ffmpeg/binary.js';
import { FfmpegProcess } from '../../src/ffmpeg/FfmpegProcess.js';

export interface WeriftPublisherOptions {
	codec?: 'VP8' | 'H264';
	width?: number;
	height?: number;
	fps?: number;
	keyframeIntervalSeconds?: number;
	bitrateKbps?: number;
	audio?: boolean;
}

async function bindLoopback(): Promise<Socket> {
	const socket = createSocket('udp4');
	await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
	return socket;
}

/** RTCP payload-specific feedback format of FIR (RFC 5104); PLI is PictureLossIndication.count (1). */
const FIR_FORMAT = 4;

/**
 * A real WebRTC publisher (werift): FFmpeg encodes a test pattern to RTP on
 * loopback and werift sends it over DTLS-SRTP, as a WHIP encoder would. It
 * counts the keyframe requests (PLI/FIR) the relay sends it.
 */
export class WeriftPublisher {
	readonly pc: RTCPeerConnection;
	keyframeRequests = 0;
	readonly #options: Required<WeriftPublisherOptions>;
	readonly #sockets: Socket[] = [];
	#ffmpeg?: FfmpegProcess;

	constructor(options: WeriftPublisherOptions = {}) {
		this.#options = { codec: 'VP8', width: 320, height: 180, fps: 15, keyframeIntervalSeconds: 1, bitrateKbps: 300, audio: true, ...options };
		const { codec } = this.#options;
		this.pc = new RTCPeerConnection({
			codecs: {
				video: [
					new RTCRtpCodecParameters({
						mimeType: `video/${codec}`,
						clockRate: 90000,
						payloadType: codec === 'VP8' ? 96 : 102,
						...(codec === 'H264' ? { parameters: 'profile-level-id=42e01f;packetization-mode=1;level-asymmetry-allowed=1' } : {}),
						rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }, { type: 'ccm', parameter: 'fir' }],
					}),
				],
				audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, payloadType: 111 })],
			},
		});
	}

	/** Adds the tracks, starts FFmpeg, and exchanges offer/answer through `exchange` (WHIP or in process). */
	async connect(exchange: (offer: string) => Promise<string>): Promise<void> {
		const { codec, width, height, fps, keyframeIntervalSeconds, bitrateKbps, audio } = this.#options;
		const videoTrack = new MediaStreamTrack({ kind: 'video' });
		const videoSender = this.pc.addTransceiver(videoTrack, { direction: 'sendonly' }).sender;
		videoSender.onRtcp.subscribe((rtcp) => {
			const feedback = (rtcp as { feedback?: { count?: number } }).feedback;
			if (feedback && (feedback.count === PictureLossIndication.count || feedback.count === FIR_FORMAT)) this.keyframeRequests += 1;
		});
		const videoSocket = await bindLoopback();
		this.#sockets.push(videoSocket);
		videoSocket.on('message', (packet) => videoTrack.writeRtp(packet));
		let audioSocket: Socket | undefined;
		if (audio) {
			const audioTrack = new MediaStreamTrack({ kind: 'audio' });
			this.pc.addTransceiver(audioTrack, { direction: 'sendonly' });
			audioSocket = await bindLoopback();
			this.#sockets.push(audioSocket);
			audioSocket.on('message', (packet) => audioTrack.writeRtp(packet));
		}
		const offer = await this.pc.createOffer();
		await this.pc.setLocalDescription(offer);
		const answer = await exchange(this.pc.localDescription!.sdp);
		await this.pc.setRemoteDescription({ type: 'answer', sdp: answer });

		const port = (socket: Socket) => socket.address().port;
		this.#ffmpeg = new FfmpegProcess({
			binary: resolveFfmpeg().path,
			args: testSourceArgs({
				video: { codec, width, height, fps, bitrateKbps, keyframeIntervalSeconds, threads: 1 },
				videoTarget: { host: '127.0.0.1', rtpPort: port(videoSocket), rtcpPort: port(videoSocket) + 1, ssrc: 1, payloadType: 96 },
				...(audioSocket ? { audioTarget: { host: '127.0.0.1', rtpPort: port(audioSocket), rtcpPort: port(audioSocket) + 1, ssrc: 2, payloadType: 111 } } : {}),
			}),
			logger: pino({ level: 'silent' }),
		});
		await this.#ffmpeg.start();
	}

	async close(): Promise<void> {
		await this.#ffmpeg?.close();
		for (const socket of this.#sockets.splice(0)) socket.close();
		await this.pc.close();
	}
}
