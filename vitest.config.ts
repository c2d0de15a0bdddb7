import { defineConfig } from 'vitest/config';

export default defineConfig({
	test: {
		include: ['test/**/*.test.ts'],
		// Real workers and FFmpeg on 2 cores: one file at a time keeps timings honest.
		fileParallelism: false,
		pool: 'forks',
		testTimeout: 60_000,
		hookTimeout: 60_000,
		reporters: ['verbose'],
	},
});
