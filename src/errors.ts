/**
 * One error hierarchy for the whole relay. Every error has a stable `code` that
 * callers (the HTTP service, the CLI) map to status codes and exit codes, and a
 * message that says what was wrong and what to do about it.
 */
export class RelayError extends Error {
	readonly code: string;

	constructor(code: string, message: string, options?: { cause?: unknown }) {
		super(message, options);
		this.name = 'RelayError';
		this.code = code;
	}
}

/** An option or argument has the wrong type or value. */
export class InvalidOptionError extends RelayError {
	constructor(message: string) {
		super('ERR_INVALID_OPTION', message);
		this.name = 'InvalidOptionError';
	}
}

/** A codec the relay cannot ingest or produce (only VP8, H264 and Opus are supported). */
export class UnsupportedCodecError extends RelayError {
	constructor(message: string) {
		super('ERR_UNSUPPORTED_CODEC', message);
		this.name = 'UnsupportedCodecError';
	}
}

/** RTP parameters that cannot describe a stream (missing SSRC, bad payload type…). */
export class InvalidRtpParametersError extends RelayError {
	constructor(message: string, options?: { cause?: unknown }) {
		super('ERR_INVALID_RTP_PARAMETERS', message, options);
		this.name = 'InvalidRtpParametersError';
	}
}

/** An SDP that does not parse or does not describe what was expected. */
export class InvalidSdpError extends RelayError {
	constructor(message: string, options?: { cause?: unknown }) {
		super('ERR_INVALID_SDP', message, options);
		this.name = 'InvalidSdpError';
	}
}

/** No FFmpeg binary could be found or started. */
export class FfmpegNotFoundError extends RelayError {
	constructor(message: string, options?: { cause?: unknown }) {
		super('ERR_FFMPEG_NOT_FOUND', message, options);
		this.name = 'FfmpegNotFoundError';
	}
}

/** Every port of a configured range is in use. */
export class PortRangeExhaustedError extends RelayError {
	constructor(message: string) {
		super('ERR_PORT_RANGE_EXHAUSTED', message);
		this.name = 'PortRangeExhaustedError';
	}
}

/** The broadcaster's producer closed while something still depended on it. */
export class ProducerClosedError extends RelayError {
	constructor(message: string) {
		super('ERR_PRODUCER_CLOSED', message);
		this.name = 'ProducerClosedError';
	}
}

/** No worker or router has room for one more viewer. */
export class CapacityExceededError extends RelayError {
	constructor(message: string) {
		super('ERR_CAPACITY_EXCEEDED', message);
		this.name = 'CapacityExceededError';
	}
}

/** A method was called on an object that is already closed. */
export class ClosedError extends RelayError {
	constructor(what: string) {
		super('ERR_CLOSED', `${what} is closed; create a new one`);
		this.name = 'ClosedError';
	}
}

/** The thing asked for (broadcast, viewer, session) does not exist. */
export class NotFoundError extends RelayError {
	constructor(message: string) {
		super('ERR_NOT_FOUND', message);
		this.name = 'NotFoundError';
	}
}

/** The thing to create exists already (a broadcast id, a live source). */
export class ConflictError extends RelayError {
	constructor(message: string) {
		super('ERR_CONFLICT', message);
		this.name = 'ConflictError';
	}
}

/** The re-encoder engine could not start or take a track (node-av missing, a port taken, a codec it cannot open). */
export class EngineError extends RelayError {
	constructor(message: string, options?: { cause?: unknown }) {
		super('ERR_ENGINE', message, options);
		this.name = 'EngineError';
	}
}

/** A request that needs a token came without one, or with one that is not valid (bad signature, expired, malformed). HTTP 401. */
export class UnauthorizedError extends RelayError {
	constructor(message: string) {
		super('ERR_UNAUTHORIZED', message);
		this.name = 'UnauthorizedError';
	}
}

/** A valid token that does not grant this (play-only used to publish, another broadcast, no admin right). HTTP 403. */
export class ForbiddenError extends RelayError {
	constructor(message: string) {
		super('ERR_FORBIDDEN', message);
		this.name = 'ForbiddenError';
	}
}
