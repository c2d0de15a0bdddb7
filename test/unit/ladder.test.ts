import { describe, expect, it } from 'vitest';
import { InvalidOptionError } from '../../src/errors.js';
import { resolveBroadcastOptions, resolveRelayOptions } from '../../src/options.js';

const defaults = resolveRelayOptions({}).broadcastDefaults;
const resolve = (input: Parameters<typeof resolveBroadcastOptions>[0]) => resolveBroadcastOptions(input, defaults);

describe('simulcast ladder options', () => {
	it('defaults to three layers from the top rendition, lowest first: half the size each, a third then a tenth of the bitrate', () => {
		const { video } = resolve({});
		expect(video.ladder).toEqual([
			{ width: 320, height: 180, bitrateKbps: 150, fps: 30 },
			{ width: 640, height: 360, bitrateKbps: 500, fps: 30 },
			{ width: 1280, height: 720, bitrateKbps: 1500, fps: 30 },
		]);
		expect(video.maxLayer).toBe(2);
	});

	it('layers: 1 is a single rendition; a small picture stops the ladder at about 128x72', () => {
		expect(resolve({ video: { layers: 1 } }).video.ladder).toEqual([{ width: 1280, height: 720, bitrateKbps: 1500, fps: 30 }]);
		expect(resolve({ video: { width: 320, height: 180, bitrateKbps: 300 } }).video.ladder.map((r) => `${r.width}x${r.height}`)).toEqual(['160x90', '320x180']);
	});

	it('an explicit ladder is sorted lowest first, fps defaulting to the video fps', () => {
		const { video } = resolve({ video: { fps: 25, ladder: [{ width: 1920, height: 1080, bitrateKbps: 4000 }, { width: 640, height: 360, bitrateKbps: 600, fps: 15 }] } });
		expect(video.ladder).toEqual([
			{ width: 640, height: 360, bitrateKbps: 600, fps: 15 },
			{ width: 1920, height: 1080, bitrateKbps: 4000, fps: 25 },
		]);
	});

	it('refuses what cannot be made, naming the option', () => {
		expect(() => resolve({ video: { maxLayer: 3 } })).toThrow(/video.maxLayer 3 is above the top layer \(2\)/);
		expect(() => resolve({ video: { fps: 15, ladder: [{ width: 640, height: 360, bitrateKbps: 500, fps: 30 }] } })).toThrow(/cannot exceed video.fps/);
		expect(() => resolve({ video: { ladder: [{ width: 641, height: 360, bitrateKbps: 500 }] } })).toThrow(InvalidOptionError);
		expect(() => resolve({ video: { ladder: [] } })).toThrow(InvalidOptionError);
		expect(() => resolve({ engine: 'ffmpeg', video: { layers: 3 } })).toThrow(/needs engine "libav"/);
	});

	it('the FFmpeg engine makes one rendition by default', () => {
		expect(resolve({ engine: 'ffmpeg' }).video.ladder).toEqual([{ width: 1280, height: 720, bitrateKbps: 1500, fps: 30 }]);
	});
});
