import { describe, expect, it } from 'vitest';
import { audioReencoderArgs, barcodeReaderArgs, rtpOutputUrl, videoEncoderArgs, videoReencoderArgs } from '../../src/ffmpeg/args.js';
import { ffmpegInputSdp } from '../../src/ffmpeg/inputSdp.js';

const video = { codec: 'VP8', width: 1280, height: 720, fps: 30, bitrateKbps: 1500, keyframeIntervalSeconds: 2, threads: 2 } as const;
const target = { host: '127.0.0.1', rtpPort: 40000, rtcpPort: 40001, localRtpPort: 50000, localRtcpPort: 50001, ssrc: 1234, payloadType: 96 };

function valueOf(args: string[], flag: string): string | undefined {
	const at = args.indexOf(flag);
	return at >= 0 ? args[at + 1] : undefined;
}

describe('FFmpeg argument builder', () => {
	it('fixes the GOP: keyframe every interval, no scene-cut keyframes, no lookahead (VP8)', () => {
		const args = videoEncoderArgs(video);
		expect(valueOf(args, '-c:v')).toBe('libvpx');
		// Only the forced keyframes: the encoder's own maximum distance is far beyond the interval.
		expect(valueOf(args, '-g')).toBe('600');
		expect(valueOf(args, '-keyint_min')).toBe('600');
		expect(valueOf(args, '-force_key_frames')).toBe('expr:eq(n,1)+gte(t,prev_forced_t+2)');
		expect(valueOf(args, '-lag-in-frames')).toBe('0');
		expect(valueOf(args, '-deadline')).toBe('realtime');
	});

	it('H264: baseline, zero latency, no B-frames, scene cut off', () => {
		const args = videoEncoderArgs({ ...video, codec: 'H264', fps: 25, keyframeIntervalSeconds: 1 });
		expect(valueOf(args, '-c:v')).toBe('libx264');
		expect(valueOf(args, '-tune')).toBe('zerolatency');
		expect(valueOf(args, '-bf')).toBe('0');
		expect(valueOf(args, '-sc_threshold')).toBe('0');
		expect(valueOf(args, '-g')).toBe('250');
	});

	it('sends RTP with the fixed SSRC and payload type, from pinned local ports', () => {
		const args = videoReencoderArgs(video, target);
		expect(valueOf(args, '-ssrc')).toBe('1234');
		expect(valueOf(args, '-payload_type')).toBe('96');
		expect(valueOf(args, '-seq')).toBeUndefined();
		expect(valueOf(videoReencoderArgs(video, { ...target, seq: 70000 }), '-seq')).toBe(String(70000 & 0xffff));
		expect(args.at(-1)).toBe(rtpOutputUrl(target));
		expect(rtpOutputUrl(target)).toBe(
			'rtp://127.0.0.1:40000?rtcpport=40001&localrtpport=50000&localrtcpport=50001&localaddr=127.0.0.1&pkt_size=1200',
		);
		expect(valueOf(args, '-i')).toBe('pipe:0');
		expect(valueOf(args, '-progress')).toBe('pipe:3');
	});

	it('binds input and output sockets to loopback and hears only the SDP\'s sender (issue 9: a stranger\'s BYE ended FFmpeg)', () => {
		for (const args of [videoReencoderArgs(video, target), audioReencoderArgs({ bitrateKbps: 64 }, target)]) {
			const input = args.slice(0, args.indexOf('-i'));
			expect(valueOf(input, '-localaddr')).toBe('127.0.0.1');
			expect(valueOf(input, '-sdp_flags')).toBe('filter_src');
			// No input for a while is "no input yet", never the end of the stream.
			expect(valueOf(input, '-listen_timeout')).toBe('-1');
			expect(new URL(args.at(-1)!).searchParams.get('localaddr')).toBe('127.0.0.1');
		}
		expect(new URL(rtpOutputUrl({ ...target, localAddress: '127.0.0.9' })).searchParams.get('localaddr')).toBe('127.0.0.9');
		// The benchmark's barcode reader reads a plain viewer on loopback: its sockets stay there too.
		expect(valueOf(barcodeReaderArgs({ barcodeBits: 24 }), '-localaddr')).toBe('127.0.0.1');
	});

	it('describes the consumer to FFmpeg in an SDP, with fmtp', () => {
		const sdp = ffmpegInputSdp(
			{
				codecs: [{ mimeType: 'video/H264', payloadType: 107, clockRate: 90000, parameters: { 'packetization-mode': 1, 'profile-level-id': '42e01f' } }],
				encodings: [{ ssrc: 1 }],
			},
			'127.0.0.1',
			50002,
		);
		expect(sdp).toContain('m=video 50002 RTP/AVP 107');
		expect(sdp).toContain('a=rtpmap:107 H264/90000');
		expect(sdp).toContain('a=fmtp:107 packetization-mode=1;profile-level-id=42e01f');
		expect(sdp).toContain('c=IN IP4 127.0.0.1');
	});
});
