import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * The library's root logger. Applications pass their own pino instance in the
 * relay options; this default writes JSON to stderr at LOG_LEVEL (default "info",
 * "silent" under tests unless LOG_LEVEL says otherwise).
 */
export function createDefaultLogger(): Logger {
	const level = process.env.LOG_LEVEL ?? (process.env.VITEST ? 'silent' : 'info');
	return pino({ level, base: { app: 'broadcast-relay' } }, pino.destination(2));
}
