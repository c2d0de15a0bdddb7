import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DaemonSet, Deployment } from 'kubernetes-models/apps/v1';
import { Secret, Service } from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import { ENVIRONMENT, loadServiceConfig } from '../src/service/config.js';
import { parseYamlSubset } from './helpers/yamlSubset.js';

/*
 * deploy/ has no Docker engine or Kubernetes here to run on: the manifests are
 * validated against the Kubernetes object schemas (kubernetes-models), and the
 * settings they give the relay are run through the relay's own configuration
 * loader, so that a renamed variable or a bad value fails here.
 */

const DEPLOY = fileURLToPath(new URL('../deploy/', import.meta.url));
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
	'apps/v1/Deployment': Deployment as never,
	'apps/v1/DaemonSet': DaemonSet as never,
	'v1/Service': Service as never,
	'v1/Secret': Secret as never,
};

type Doc = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string> }; spec?: any; stringData?: Record<string, string> };

function manifests(): Doc[] {
	const dir = `${DEPLOY}kubernetes/`;
	return readdirSync(dir)
		.filter((f) => f.endsWith('.yaml'))
		.flatMap((f) => parseYamlSubset(readFileSync(dir + f, 'utf8')) as Doc[]);
}

function validate(doc: Doc): void {
	const Model = MODELS[`${doc.apiVersion}/${doc.kind}`];
	if (!Model) throw new Error(`no schema for ${doc.apiVersion} ${doc.kind}: add it to MODELS`);
	new Model(doc as never).validate();
}

/** A container's env as the relay sees it: $(VAR) references expanded, secrets read from the Secret manifest. */
function containerEnv(container: any, secrets: Doc[], fields: Record<string, string>): Record<string, string> {
	const env: Record<string, string> = {};
	for (const entry of container.env ?? []) {
		if (entry.value !== undefined) env[entry.name] = String(entry.value).replace(/\$\(([A-Z_]+)\)/g, (_, name: string) => env[name] ?? `$(${name})`);
		else if (entry.valueFrom?.fieldRef) env[entry.name] = fields[entry.valueFrom.fieldRef.fieldPath]!;
		else if (entry.valueFrom?.secretKeyRef) {
			const { name, key } = entry.valueFrom.secretKeyRef;
			env[entry.name] = secrets.find((s) => s.metadata.name === name)!.stringData![key]!;
		}
	}
	return env;
}

describe('deployment files', () => {
	it('every Kubernetes manifest is valid against the Kubernetes schemas (and an invalid one is caught)', () => {
		const docs = manifests();
		expect(docs.map((d) => d.kind).sort()).toEqual(['DaemonSet', 'Deployment', 'Secret', 'Service', 'Service']);
		for (const doc of docs) validate(doc);
		const broken = structuredClone(docs.find((d) => d.kind === 'DaemonSet')!);
		broken.spec.template.spec.containers[0].ports[0].containerPort = 'http';
		expect(() => validate(broken)).toThrow();
	});

	it('the relay nodes: host networking, /readyz readiness on the HTTP port, a cluster configuration the relay accepts, behind an HTTP Service', () => {
		const docs = manifests();
		const relay = docs.find((d) => d.kind === 'DaemonSet')!;
		const pod = relay.spec.template.spec;
		expect(pod.hostNetwork).toBe(true);
		expect(pod.dnsPolicy).toBe('ClusterFirstWithHostNet');
		const container = pod.containers[0];
		const env = containerEnv(container, docs.filter((d) => d.kind === 'Secret'), { 'status.hostIP': '10.0.0.5', 'spec.nodeName': 'node-1' });
		for (const name of Object.keys(env)) if (name.startsWith('BROADCAST_RELAY_')) expect(ENVIRONMENT, `${name} is not a variable the relay reads`).toHaveProperty(name);
		const config = loadServiceConfig({ env });
		expect(config.cluster).toMatchObject({ nodeId: 'node-1', publicUrl: 'http://10.0.0.5:8080', redisUrl: 'redis://broadcast-relay-redis:6379' });
		expect(config.relay.announcedIp).toBe('10.0.0.5');
		const port = config.port;
		expect(container.ports[0].containerPort).toBe(port);
		expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port });
		expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port });
		// The grace period covers the service's own shutdown bound.
		expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(config.shutdownTimeoutMs);

		const entry = docs.find((d) => d.kind === 'Service' && d.metadata.name === 'broadcast-relay')!;
		expect(entry.spec.selector).toEqual(relay.spec.template.metadata.labels);
		expect(entry.spec.ports[0].targetPort).toBe(port);
		const redis = docs.find((d) => d.kind === 'Service' && d.metadata.name === 'broadcast-relay-redis')!;
		const redisUrl = new URL(config.cluster!.redisUrl);
		expect(redisUrl.hostname).toBe(redis.metadata.name);
		expect(Number(redisUrl.port)).toBe(redis.spec.ports[0].port);
		const redisPod = docs.find((d) => d.kind === 'Deployment')!.spec.template;
		expect(redis.spec.selector).toEqual(redisPod.metadata.labels);
		expect(redisPod.spec.containers[0].args).toEqual(['--save', '', '--appendonly', 'no']);
	});

	it('in step with the Dockerfile: its entry point runs "serve", it exposes the HTTP port and the RTC range the nodes use', () => {
		const dockerfile = readFileSync(new URL('../Dockerfile', import.meta.url), 'utf8');
		expect(dockerfile).toMatch(/ENTRYPOINT \["node", "node_modules\/broadcast-relay\/dist\/cli\/main\.js"\]/);
		const relay = manifests().find((d) => d.kind === 'DaemonSet')!;
		const container = relay.spec.template.spec.containers[0];
		expect(container.args).toEqual(['serve']);
		const exposed = /^EXPOSE (.*)$/m.exec(dockerfile)![1]!.split(/\s+/);
		expect(exposed).toContain(`${container.ports[0].containerPort}`);
		const config = loadServiceConfig({});
		expect(exposed).toContain(`${config.relay.rtcMinPort}-${config.relay.rtcMaxPort}/udp`);
	});

	it('docker-compose: Redis and three nodes, each with a configuration the relay accepts, distinct ports, one Redis', () => {
		const [compose] = parseYamlSubset(readFileSync(`${DEPLOY}docker-compose.yml`, 'utf8')) as Array<{ services: Record<string, any> }>;
		const nodes = Object.entries(compose!.services).filter(([name]) => name.startsWith('relay-'));
		expect(nodes).toHaveLength(3);
		const redisArgs: string[] = compose!.services.redis.command;
		const redisPort = Number(redisArgs[redisArgs.indexOf('--port') + 1]);
		const configs = nodes.map(([name, service]) => {
			expect(service.network_mode).toBe('host');
			expect(service.command).toEqual(['serve']);
			for (const key of Object.keys(service.environment)) expect(ENVIRONMENT, `${name}: ${key} is not a variable the relay reads`).toHaveProperty(key);
			const config = loadServiceConfig({ env: service.environment });
			expect(config.cluster!.nodeId).toBe(name);
			expect(new URL(config.cluster!.publicUrl).port).toBe(String(config.port));
			expect(Number(new URL(config.cluster!.redisUrl).port)).toBe(redisPort);
			return config;
		});
		expect(new Set(configs.map((c) => c.port)).size).toBe(3);
		const ranges = configs.map((c) => [c.relay.rtcMinPort, c.relay.rtcMaxPort] as const).sort((a, b) => a[0] - b[0]);
		for (let k = 1; k < ranges.length; k++) expect(ranges[k]![0]).toBeGreaterThan(ranges[k - 1]![1]);
	});
});

describe('YAML subset reader', () => {
	it('reads mappings, sequences of mappings, scalars and documents; refuses what it does not know', () => {
		expect(parseYamlSubset('a: 1\nb:\n  - x: "y" # note\n    z: [1, "2"]\n  - plain text\n---\nc: true\n')).toEqual([{ a: 1, b: [{ x: 'y', z: [1, '2'] }, 'plain text'] }, { c: true }]);
		expect(() => parseYamlSubset('a: &anchor 1\n')).toThrow(/line 1/);
		expect(() => parseYamlSubset('a: 1\n   b: 2\n')).toThrow(/line 2/);
	});
});
