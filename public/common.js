// Shared helpers for the broadcast-relay pages, exposed as window.BroadcastRelay.
// A classic script rather than an ES module so the pages keep working whatever
// Content-Type the server sends for /static/common.js.
(() => {
	'use strict';

	const TOKEN_KEY = 'broadcast-relay-token';

	/** An HTTP answer that was not the one we wanted; `body` is the server's message. */
	class HttpError extends Error {
		constructor(status, body, retryAfterMs = null) {
			super(body ? `${status}: ${body}` : `HTTP ${status}`);
			this.name = 'HttpError';
			this.status = status;
			this.body = body;
			this.retryAfterMs = retryAfterMs;
		}
	}

	// localStorage throws in some privacy modes; a token that cannot be kept
	// should not stop the page from working.
	function storeToken(token) {
		try {
			if (token) localStorage.setItem(TOKEN_KEY, token);
			else localStorage.removeItem(TOKEN_KEY);
		} catch { /* not persisted, still used for this page */ }
	}

	/**
	 * ?token=... wins (and is remembered for the other pages), else the remembered one.
	 * A token from the address is taken out of it at once, so it stays out of the
	 * history, bookmarks, screenshots and Referer headers.
	 */
	function readToken() {
		const query = new URLSearchParams(location.search);
		const fromQuery = query.get('token');
		if (fromQuery) {
			storeToken(fromQuery);
			query.delete('token');
			const rest = query.toString();
			try {
				// window.history: a page may have its own top-level "history" (the dashboard's chart does).
				window.history.replaceState(window.history.state, '', `${location.pathname}${rest ? `?${rest}` : ''}${location.hash}`);
			} catch { /* the address keeps the token; the server's log redacts it */ }
			return fromQuery;
		}
		try {
			return localStorage.getItem(TOKEN_KEY) ?? '';
		} catch {
			return '';
		}
	}

	function authHeaders(token, headers = {}) {
		return token ? { ...headers, Authorization: `Bearer ${token}` } : { ...headers };
	}

	/** The path segment after `/<prefix>/`, e.g. "demo" for /watch/demo. */
	function broadcastIdFromPath(prefix) {
		const segments = location.pathname.split('/').filter(Boolean);
		const at = segments.indexOf(prefix);
		if (at < 0 || at + 1 >= segments.length) return null;
		try {
			return decodeURIComponent(segments[at + 1]);
		} catch {
			return null;
		}
	}

	/** Accepts both forms RFC 9110 allows: delay-seconds and an HTTP date. */
	function parseRetryAfter(value) {
		if (!value) return null;
		const seconds = Number(value);
		if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
		const date = Date.parse(value);
		return Number.isNaN(date) ? null : Math.max(0, date - Date.now());
	}

	// WHIP/WHEP errors are plain text, but API errors may come as Fastify's
	// JSON envelope; either way the user should see the human-readable message.
	async function errorFromResponse(response) {
		let body = '';
		try {
			body = (await response.text()).trim();
		} catch { /* keep the status alone */ }
		if (body.startsWith('{')) {
			try {
				const json = JSON.parse(body);
				body = json.message ?? json.error ?? body;
			} catch { /* not JSON after all */ }
		}
		return new HttpError(response.status, body, parseRetryAfter(response.headers.get('Retry-After')));
	}

	/**
	 * The ICE servers in an answer's Link headers (RFC 9725 §4.6), as
	 * RTCIceServer objects: `<turn:…>; rel="ice-server"; username="…"; credential="…"`.
	 * (src/turn/credentials.ts parses them the same way for Node clients.)
	 */
	function iceServersFromLinks(header) {
		const servers = [];
		if (!header) return servers;
		const link = /<([^>]*)>((?:\s*;\s*[A-Za-z0-9*-]+(?:\s*=\s*(?:"(?:[^"\\]|\\.)*"|[^;,\s]*))?)*)/g;
		const parameter = /;\s*([A-Za-z0-9*-]+)(?:\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*))?/g;
		for (const [, url, rest] of header.matchAll(link)) {
			const params = new Map();
			for (const [, name, raw = ''] of rest.matchAll(parameter)) {
				params.set(name.toLowerCase(), raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw);
			}
			if (!(params.get('rel') ?? '').split(/\s+/).includes('ice-server')) continue;
			const server = { urls: url };
			if (params.has('username')) server.username = params.get('username');
			if (params.has('credential')) server.credential = params.get('credential');
			servers.push(server);
		}
		return servers;
	}

	/**
	 * WHIP/WHEP offer/answer exchange. Resolves to the answer SDP, the
	 * absolute session URL and the ICE servers (TURN) the answer's Link headers
	 * carry; rejects with HttpError on any non-201 answer.
	 */
	async function exchangeSdp(endpoint, offerSdp, token) {
		const response = await fetch(endpoint, {
			method: 'POST',
			headers: authHeaders(token, { 'Content-Type': 'application/sdp' }),
			body: offerSdp,
		});
		if (response.status !== 201) throw await errorFromResponse(response);
		const locationHeader = response.headers.get('Location');
		// Location may be relative, and then to the endpoint rather than to the page.
		const base = response.url || new URL(endpoint, location.href).href;
		const sessionUrl = locationHeader ? new URL(locationHeader, base).href : null;
		return { answerSdp: await response.text(), sessionUrl, iceServers: iceServersFromLinks(response.headers.get('Link')) };
	}

	/** Best effort: a session we cannot delete will time out on the server. */
	async function deleteSession(sessionUrl, token, { keepalive = false } = {}) {
		if (!sessionUrl) return;
		try {
			await fetch(sessionUrl, { method: 'DELETE', headers: authHeaders(token), keepalive });
		} catch { /* ignored on purpose */ }
	}

	function unauthorizedHint() {
		const example = new URL(location.href);
		example.searchParams.set('token', '...');
		return `Not authorized: this server needs an access token. Enter it on the page, or add ?token=... to the address once (the page keeps it and removes it from the address), e.g. ${example.pathname}${example.search}`;
	}

	/** Human-readable text for anything a fetch/WebRTC/getUserMedia call threw. */
	function describeError(err) {
		if (err instanceof HttpError) return err.status === 401 ? unauthorizedHint() : err.message;
		if (err instanceof DOMException || err instanceof Error) return err.message ? `${err.name}: ${err.message}` : err.name;
		return String(err);
	}

	function setStatus(element, text, kind = 'info') {
		element.textContent = text;
		element.dataset.kind = kind;
	}

	window.BroadcastRelay = Object.freeze({
		HttpError,
		readToken,
		storeToken,
		authHeaders,
		broadcastIdFromPath,
		errorFromResponse,
		exchangeSdp,
		iceServersFromLinks,
		deleteSession,
		unauthorizedHint,
		describeError,
		setStatus,
	});
})();
