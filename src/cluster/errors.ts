import { CapacityExceededError } from '../errors.js';

/**
 * Redis, which holds the cluster's state, cannot be reached: the node keeps
 * serving what it has but makes no new cluster placement. A capacity error
 * (HTTP 503 with Retry-After), since trying again later is the answer.
 */
export class ClusterUnavailableError extends CapacityExceededError {
	constructor(message: string, options?: { cause?: unknown }) {
		super(message);
		this.name = 'ClusterUnavailableError';
		if (options?.cause !== undefined) (this as { cause?: unknown }).cause = options.cause;
	}
}
