import { afterEach } from 'vitest';
import { pino } from 'pino';
import { loadServiceConfig, type ServiceConfigInput } from '../../src/service/config.js';
import { startService, type Service } from '../../src/service/Service.js';

/** Starts services on a free loopback port and closes them after each test. */
export function useServiceFixture() {
	const services: Service[] = [];
	afterEach(async () => {
		await Promise.all(services.splice(0).map((s) => s.close()));
	});
	return async (config: Partial<ServiceConfigInput> = {}): Promise<Service> => {
		const resolved = loadServiceConfig({ flags: { port: 0, logLevel: 'silent', ...config, relay: { workers: 2, cpuAdmission: false, ...(config.relay ?? {}) } } });
		const service = await startService(resolved, { logger: pino({ level: process.env.LOG_LEVEL ?? 'silent' }) });
		services.push(service);
		return service;
	};
}

export async function postSdp(url: string, sdp: string, headers: Record<string, string> = {}): Promise<Response> {
	return fetch(url, { method: 'POST', headers: { 'content-type': 'application/sdp', ...headers }, body: sdp });
}
