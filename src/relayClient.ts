import { InvalidOptionError, RelayError } from './errors.js';

/*
 * The HTTP client of the relay service's JSON API, for whatever calls a relay from
 * outside: pipeToRelay() (library) and the CLI. It sits beside the library, not in
 * src/service/, so that the library never depends on the service.
 */

/** The relay service could not be reached (connection refused, unknown host, network down). */
export class RelayUnreachableError extends RelayError {
	constructor(message: string, options?: { cause?: unknown }) {
		super('ERR_RELAY_UNREACHABLE', message, options);
		this.name = 'RelayUnreachableError';
	}
}

/** The relay service answered with an error status; `status` is the HTTP status. */
export class RelayRefusedError extends RelayError {
	readonly status: number;

	constructor(status: number, message: string) {
		super('ERR_RELAY_REFUSED', message);
		this.name = 'RelayRefusedError';
		this.status = status;
	}
}

export interface RelayRequest {
	/** HTTP method. Default "GET". */
	method?: string;
	/** JSON body (sent with Content-Type: application/json). */
	body?: unknown;
	/** Bearer token, if the route needs one. */
	token?: string;
}

/**
 * The one HTTP client of the relay's JSON API (used by the CLI and by
 * pipeToRelay()). `path` is relative to `baseUrl` or an absolute URL (a
 * session URL the relay handed out). Resolves to the parsed JSON answer
 * (undefined for an empty one); throws RelayUnreachableError or
 * RelayRefusedError with the relay's own message.
 */
export async function relayRequest<T>(baseUrl: string, path: string, request: RelayRequest = {}): Promise<T> {
	const base = `${baseUrl.replace(/\/+$/, '')}/`;
	let url: URL;
	try {
		url = new URL(path.replace(/^\/+/, ''), base);
	} catch {
		throw new InvalidOptionError(`relay URL "${baseUrl}" is not a URL; give its base URL, e.g. http://127.0.0.1:8080`);
	}
	if (url.protocol !== 'http:' && url.protocol !== 'https:') {
		throw new InvalidOptionError(`relay URL "${baseUrl}" is not http(s); give its base URL, e.g. http://127.0.0.1:8080`);
	}
	const method = request.method ?? 'GET';
	let response: Response;
	try {
		response = await fetch(url, {
			method,
			headers: {
				...(request.body !== undefined ? { 'content-type': 'application/json' } : {}),
				...(request.token ? { authorization: `Bearer ${request.token}` } : {}),
			},
			...(request.body !== undefined ? { body: JSON.stringify(request.body) } : {}),
		});
	} catch (error) {
		const cause = (error as Error).cause as { code?: string; message?: string } | undefined;
		throw new RelayUnreachableError(`cannot reach the relay at ${baseUrl} (${cause?.code ?? cause?.message ?? (error as Error).message})`, { cause: error });
	}
	const text = await response.text();
	if (!response.ok) {
		let message = text;
		try {
			message = (JSON.parse(text) as { message?: string }).message ?? text;
		} catch {
			/* a plain-text answer */
		}
		throw new RelayRefusedError(response.status, `relay refused ${method} ${url.pathname}: ${response.status} ${message}`.trim());
	}
	if (!text) return undefined as T;
	try {
		return JSON.parse(text) as T;
	} catch {
		throw new RelayRefusedError(response.status, `relay answered ${method} ${url.pathname} with something that is not JSON; is ${baseUrl} a broadcast-relay?`);
	}
}
