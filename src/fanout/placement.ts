/**
 * Viewer placement, as a pure function so the policy can be tested on its own:
 * least-loaded worker first (spreads CPU), and on that worker the fullest router
 * that still has room and the viewer's payload-type profile (fewer routers, fewer
 * pipes). A new router is opened only when no router on the chosen worker fits.
 */
export interface PlacementWorker {
	slot: number;
	alive: boolean;
	consumers: number;
}

export interface PlacementRouter {
	id: string;
	slot: number;
	consumers: number;
	/** Payload-type profile the router was created with (see payloadProfileKey). */
	profile: string;
}

export interface PlacementBudget {
	consumersPerWorker: number;
	consumersPerRouter: number;
}

export interface PlacementRequest {
	consumers: number;
	profile: string;
}

export type PlacementDecision =
	| { kind: 'existing'; routerId: string; slot: number }
	| { kind: 'new'; slot: number }
	| { kind: 'full' };

export function placeViewer(
	workers: readonly PlacementWorker[],
	routers: readonly PlacementRouter[],
	budget: PlacementBudget,
	request: PlacementRequest,
): PlacementDecision {
	const candidates = workers
		.filter((w) => w.alive && w.consumers + request.consumers <= budget.consumersPerWorker)
		.sort((a, b) => a.consumers - b.consumers || a.slot - b.slot);
	for (const worker of candidates) {
		const fitting = routers
			.filter(
				(r) =>
					r.slot === worker.slot &&
					r.profile === request.profile &&
					r.consumers + request.consumers <= budget.consumersPerRouter,
			)
			.sort((a, b) => b.consumers - a.consumers);
		if (fitting[0]) return { kind: 'existing', routerId: fitting[0].id, slot: worker.slot };
		if (request.consumers <= budget.consumersPerRouter) return { kind: 'new', slot: worker.slot };
	}
	return { kind: 'full' };
}

/** A stable key for the payload types a viewer wants per codec, e.g. "VP8:96|opus:111". */
export function payloadProfileKey(payloadTypes: Readonly<Record<string, number | string>>): string {
	return Object.entries(payloadTypes)
		.sort(([a], [b]) => a.localeCompare(b))
		.map(([codec, pt]) => `${codec}:${pt}`)
		.join('|');
}
