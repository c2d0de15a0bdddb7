import type { types as ms } from 'mediasoup';
import { UnsupportedCodecError } from './errors.js';

/** Video codecs the relay ingests and the re-encoder can produce. */
export type VideoCodecName = 'VP8' | 'H264';
/** Audio codecs the relay ingests. */
export type AudioCodecName = 'opus';
export type CodecName = VideoCodecName | AudioCodecName;

export const VIDEO_CODECS: readonly VideoCodecName[] = ['VP8', 'H264'];
export const AUDIO_CODECS: readonly AudioCodecName[] = ['opus'];

/** H264 constrained baseline, packetization-mode 1: what every browser decodes. */
export const H264_PARAMETERS = {
	'packetization-mode': 1,
	'profile-level-id': '42e01f',
	'level-asymmetry-allowed': 1,
} as const;

export function mimeTypeOf(codec: CodecName): string {
	return codec === 'opus' ? 'audio/opus' : `video/${codec}`;
}

/** Maps a mime type ("video/vp8", "VP8", "audio/OPUS") to a supported codec name, or throws. */
export function codecFromMimeType(mimeType: string): CodecName {
	const name = mimeType.includes('/') ? mimeType.split('/')[1]! : mimeType;
	switch (name.toLowerCase()) {
		case 'vp8':
			return 'VP8';
		case 'h264':
			return 'H264';
		case 'opus':
			return 'opus';
		default:
			throw new UnsupportedCodecError(
				`codec "${mimeType}" is not supported; send VP8 or H264 video and Opus audio`,
			);
	}
}

/**
 * The supported codec a capability describes, or undefined: VP8, Opus, and
 * H264 only as constrained baseline with packetization-mode 1 (what the
 * routers are made with, and what every browser decodes).
 */
export function supportedCodecOf(capability: ms.RtpCodecCapability): CodecName | undefined {
	let name: CodecName;
	try {
		name = codecFromMimeType(capability.mimeType);
	} catch {
		return undefined;
	}
	if (name !== 'H264') return name;
	const params = capability.parameters ?? {};
	const profile = String(params['profile-level-id'] ?? '42e01f').toLowerCase();
	// profile_idc 0x42 with constraint_set1: "42e0…" or "4240…".
	const constrainedBaseline = profile.startsWith('42e0') || profile.startsWith('4240');
	return Number(params['packetization-mode'] ?? 0) === H264_PARAMETERS['packetization-mode'] && constrainedBaseline ? 'H264' : undefined;
}

export function kindOf(codec: CodecName): ms.MediaKind {
	return codec === 'opus' ? 'audio' : 'video';
}

/** A router codec, optionally pinned to a payload type (so consumers send with the viewer's PT). */
export function routerCodec(codec: CodecName, preferredPayloadType?: number): ms.RtpCodecCapability {
	const base: ms.RtpCodecCapability =
		codec === 'opus'
			? { kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 }
			: codec === 'VP8'
				? { kind: 'video', mimeType: 'video/VP8', clockRate: 90000 }
				: { kind: 'video', mimeType: 'video/H264', clockRate: 90000, parameters: { ...H264_PARAMETERS } };
	return preferredPayloadType === undefined ? base : { ...base, preferredPayloadType };
}

/** Codecs of the ingest router: everything the relay accepts from a broadcaster. */
export function ingestRouterCodecs(): ms.RtpCodecCapability[] {
	return [routerCodec('opus'), routerCodec('VP8'), routerCodec('H264')];
}

/**
 * Capabilities for plain-RTP receivers such as FFmpeg: the router's codecs
 * without RTX, keyframe feedback only, and no header extensions. Without
 * transport-cc or abs-send-time mediasoup runs no bandwidth estimation on the
 * consumer, so it never interleaves its probation packets (SSRC 1234, payload
 * type 127), which FFmpeg's RTP demuxer does not filter out and reads as
 * thousands of missing packets.
 */
export function plainReceiverCapabilities(router: ms.RtpCapabilities): ms.RtpCapabilities {
	return {
		codecs: (router.codecs ?? [])
			.filter((c) => !/\/rtx$/i.test(c.mimeType))
			.map((c) => ({ ...c, rtcpFeedback: (c.rtcpFeedback ?? []).filter((fb) => (fb.type === 'nack' && fb.parameter === 'pli') || fb.type === 'ccm') })),
		headerExtensions: [],
	};
}
