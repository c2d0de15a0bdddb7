import type { types as ms } from 'mediasoup';
import {
	parseSdpProfileLevelId,
	ProfileBaseline,
	ProfileConstrainedBaseline,
	ProfileConstrainedHigh,
	ProfileHigh,
	ProfileMain,
	ProfilePredictiveHigh444,
} from 'h264-profile-level-id';
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

const H264_PROFILE_NAMES: Record<number, string> = {
	[ProfileConstrainedBaseline]: 'Constrained Baseline',
	[ProfileBaseline]: 'Baseline',
	[ProfileMain]: 'Main',
	[ProfileConstrainedHigh]: 'Constrained High',
	[ProfileHigh]: 'High',
	[ProfilePredictiveHigh444]: 'High 4:4:4 Predictive',
};

const CLOCK_RATES: Record<CodecName, number> = { VP8: 90000, H264: 90000, opus: 48000 };

/**
 * Why the relay does not take a codec capability as offered, or undefined when
 * it does: VP8 at 90 kHz, Opus at 48 kHz, and H264 only with packetization-mode 1 and the Constrained Baseline profile.
 *
 * H264 profiles are matched as mediasoup matches them (the h264-profile-level-id
 * package mediasoup itself uses), so every spelling of Constrained Baseline is
 * taken: 42e0xx (browsers), 42c0xx (GStreamer's x264enc and openh264enc), 4240xx,
 * and Main/Extended ids with the constraint flags that make them CB. Other
 * profiles are refused, Constrained High (640cxx) among them, although FFmpeg
 * would decode it: the ingest router carries Constrained Baseline only (mediasoup
 * refuses a producer whose profile the router lacks), and in baseline mode the
 * broadcaster's stream goes to viewers as it is, and not every WebRTC viewer
 * decodes High (Firefox and Safari decode CB, hardware decoders vary). Taking
 * High in relay mode only would need a second H264 codec on the ingest router and
 * a mode-aware offer check; the publisher can as well send CB or VP8.
 */
export function unsupportedCodecReason(capability: ms.RtpCodecCapability): string | undefined {
	let name: CodecName;
	try {
		name = codecFromMimeType(capability.mimeType);
	} catch (error) {
		return (error as Error).message;
	}
	if (capability.clockRate !== CLOCK_RATES[name]) {
		return `${name} with clock rate ${capability.clockRate} is not valid; ${name} runs at ${CLOCK_RATES[name]} Hz`;
	}
	if (name !== 'H264') return undefined;
	const params = capability.parameters ?? {};
	if (Number(params['packetization-mode'] ?? 0) !== 1) {
		return 'H264 needs packetization-mode=1 (non-interleaved), as WebRTC uses it';
	}
	const given = params['profile-level-id'];
	// profile-level-id is hexadecimal; a parser may have turned an all-digit one into a number.
	const profileLevelId = given === undefined ? undefined : String(given).toLowerCase();
	const parsed = parseSdpProfileLevelId(profileLevelId === undefined ? {} : { 'profile-level-id': profileLevelId });
	if (!parsed) return `H264 profile-level-id ${profileLevelId} is not a valid H264 profile-level-id; send Constrained Baseline, e.g. 42e01f`;
	if (parsed.profile !== ProfileConstrainedBaseline) {
		const profile = H264_PROFILE_NAMES[parsed.profile] ?? `profile ${parsed.profile}`;
		return `H264 profile-level-id ${profileLevelId} is ${profile}; the relay takes H264 Constrained Baseline only (e.g. 42e01f or 42c01f, what every WebRTC viewer decodes), or VP8`;
	}
	return undefined;
}

/** The supported codec a capability describes, or undefined (see unsupportedCodecReason for why). */
export function supportedCodecOf(capability: ms.RtpCodecCapability): CodecName | undefined {
	if (unsupportedCodecReason(capability) !== undefined) return undefined;
	return codecFromMimeType(capability.mimeType);
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
 *
 * `nack`: also generic NACK, for a receiver that repairs loss (the libav engine):
 * mediasoup then resends lost packets from its buffer, as they were (no RTX).
 */
export function plainReceiverCapabilities(router: ms.RtpCapabilities, options: { nack?: boolean } = {}): ms.RtpCapabilities {
	const keep = (fb: ms.RtcpFeedback): boolean =>
		(fb.type === 'nack' && fb.parameter === 'pli') || fb.type === 'ccm' || (Boolean(options.nack) && fb.type === 'nack' && !fb.parameter);
	return {
		codecs: (router.codecs ?? []).filter((c) => !/\/rtx$/i.test(c.mimeType)).map((c) => ({ ...c, rtcpFeedback: (c.rtcpFeedback ?? []).filter(keep) })),
		headerExtensions: [],
	};
}
