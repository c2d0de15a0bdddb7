import { describe, expect, it } from 'vitest';
import type { types as ms } from 'mediasoup';
import { supportedCodecOf, unsupportedCodecReason } from '../../src/codecs.js';

const h264 = (profileLevelId: string | undefined, packetizationMode: number | null = 1): ms.RtpCodecCapability => ({
	kind: 'video',
	mimeType: 'video/H264',
	clockRate: 90000,
	parameters: {
		...(profileLevelId === undefined ? {} : { 'profile-level-id': profileLevelId }),
		...(packetizationMode === null ? {} : { 'packetization-mode': packetizationMode }),
	},
});

describe('which offered codecs the relay takes', () => {
	it('H264 Constrained Baseline in every spelling: 42e0xx (browsers), 42c0xx (GStreamer x264enc/openh264enc), 4240xx, and Main/Extended with the CB flags (issue 8 §5)', () => {
		for (const id of ['42e01f', '42E01F', '42c01f', '42c02a', '42401f', '42c00b', '4d801f', '58c01f']) {
			expect(supportedCodecOf(h264(id)), id).toBe('H264');
			expect(unsupportedCodecReason(h264(id)), id).toBeUndefined();
		}
		// No profile-level-id means 42e01f (RFC 6184's default is Baseline 1.0; WebRTC and mediasoup take Constrained Baseline).
		expect(supportedCodecOf(h264(undefined))).toBe('H264');
	});

	it('H264 profiles viewers may not decode are refused with the reason: Constrained High 640c1f, High, Main, Baseline with FMO/ASO', () => {
		for (const [id, profile] of [
			['640c1f', 'Constrained High'],
			['64001f', 'High'],
			['4d001f', 'Main'],
			['42001f', 'Baseline'],
		] as const) {
			expect(supportedCodecOf(h264(id)), id).toBeUndefined();
			const reason = unsupportedCodecReason(h264(id))!;
			expect(reason, id).toContain(`profile-level-id ${id} is ${profile}`);
			expect(reason, id).toMatch(/Constrained Baseline/);
		}
		expect(unsupportedCodecReason(h264('zzzzzz'))).toMatch(/profile-level-id zzzzzz is not a valid H264 profile-level-id/);
		expect(unsupportedCodecReason(h264('42e01f', 0))).toMatch(/packetization-mode=1/);
		expect(unsupportedCodecReason(h264('42e01f', null))).toMatch(/packetization-mode=1/);
	});

	it('clock rates mediasoup would refuse are not taken (they were 500s from produce())', () => {
		expect(supportedCodecOf({ kind: 'video', mimeType: 'video/VP8', clockRate: 90000 })).toBe('VP8');
		expect(supportedCodecOf({ kind: 'video', mimeType: 'video/VP8', clockRate: 48000 })).toBeUndefined();
		expect(supportedCodecOf({ kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 })).toBe('opus');
		expect(supportedCodecOf({ kind: 'audio', mimeType: 'audio/opus', clockRate: 8000, channels: 2 })).toBeUndefined();
		expect(supportedCodecOf({ kind: 'video', mimeType: 'video/VP9', clockRate: 90000 })).toBeUndefined();
		expect(unsupportedCodecReason({ kind: 'video', mimeType: 'video/VP8', clockRate: 48000 })).toMatch(/clock rate 48000.*90000/);
	});
});
