/**
 * AMF0 (Adobe's Action Message Format, version 0): the values RTMP commands
 * and FLV script tags carry. Only what publishers send is read (numbers,
 * booleans, strings, objects, ECMA and strict arrays, null, undefined, dates);
 * anything else, or data cut short, throws Amf0Error, never reads past the end.
 */
import { RelayError } from '../../errors.js';

export type Amf0Value = number | boolean | string | null | undefined | Date | Amf0Value[] | { [key: string]: Amf0Value };

/** Not AMF0 (a publisher that does not speak RTMP, or garbage). */
export class Amf0Error extends RelayError {
	constructor(message: string) {
		super('ERR_INVALID_AMF0', message);
		this.name = 'Amf0Error';
	}
}

/** Nesting beyond this is refused: no publisher needs it, and a crafted message must not blow the stack. */
const MAX_DEPTH = 16;

export class Amf0Reader {
	readonly #data: Buffer;
	#at = 0;

	constructor(data: Buffer) {
		this.#data = data;
	}

	get done(): boolean {
		return this.#at >= this.#data.length;
	}

	/** Reads values until the data ends. */
	readAll(): Amf0Value[] {
		const out: Amf0Value[] = [];
		while (!this.done) out.push(this.read());
		return out;
	}

	read(depth = 0): Amf0Value {
		if (depth > MAX_DEPTH) throw new Amf0Error('AMF0 nesting too deep');
		const marker = this.#u8();
		switch (marker) {
			case 0x00:
				return this.#need(8).readDoubleBE(this.#skip(8));
			case 0x01:
				return this.#u8() !== 0;
			case 0x02:
				return this.#string(this.#u16());
			case 0x03:
				return this.#properties(depth);
			case 0x05:
				return null;
			case 0x06:
				return undefined;
			case 0x08:
				this.#skip(4); // approximate count; the properties end with the end marker like an object's
				return this.#properties(depth);
			case 0x0a: {
				const count = this.#u32();
				if (count > this.#data.length - this.#at) throw new Amf0Error('AMF0 strict array longer than its data');
				const items: Amf0Value[] = [];
				for (let i = 0; i < count; i++) items.push(this.read(depth + 1));
				return items;
			}
			case 0x0b: {
				const ms = this.#need(8).readDoubleBE(this.#skip(8));
				this.#skip(2); // time zone, unused
				return new Date(ms);
			}
			case 0x0c:
				return this.#string(this.#u32());
			default:
				throw new Amf0Error(`AMF0 type 0x${marker.toString(16)} is not supported`);
		}
	}

	#properties(depth: number): { [key: string]: Amf0Value } {
		const out: { [key: string]: Amf0Value } = Object.create(null);
		for (;;) {
			const key = this.#string(this.#u16());
			if (key === '' && this.#data[this.#at] === 0x09) {
				this.#at += 1;
				return out;
			}
			out[key] = this.read(depth + 1);
		}
	}

	#need(bytes: number): Buffer {
		if (this.#at + bytes > this.#data.length) throw new Amf0Error('AMF0 data cut short');
		return this.#data;
	}

	#skip(bytes: number): number {
		this.#need(bytes);
		const at = this.#at;
		this.#at += bytes;
		return at;
	}

	#u8(): number {
		return this.#need(1)[this.#skip(1)]!;
	}

	#u16(): number {
		return this.#need(2).readUInt16BE(this.#skip(2));
	}

	#u32(): number {
		return this.#need(4).readUInt32BE(this.#skip(4));
	}

	#string(length: number): string {
		const at = this.#skip(length);
		return this.#data.toString('utf8', at, at + length);
	}
}

export function decodeAmf0(data: Buffer): Amf0Value[] {
	return new Amf0Reader(data).readAll();
}

/** Encodes values for the commands a server sends (numbers, booleans, strings, null, plain objects). */
export function encodeAmf0(...values: Amf0Value[]): Buffer {
	const parts: Buffer[] = [];
	const write = (value: Amf0Value): void => {
		if (typeof value === 'number') {
			const b = Buffer.allocUnsafe(9);
			b[0] = 0x00;
			b.writeDoubleBE(value, 1);
			parts.push(b);
		} else if (typeof value === 'boolean') {
			parts.push(Buffer.from([0x01, value ? 1 : 0]));
		} else if (typeof value === 'string') {
			parts.push(Buffer.from([0x02]), stringBytes(value));
		} else if (value === null || value === undefined) {
			parts.push(Buffer.from([0x05]));
		} else if (value instanceof Date || Array.isArray(value)) {
			throw new TypeError('encodeAmf0 writes numbers, booleans, strings, null and plain objects only');
		} else {
			parts.push(Buffer.from([0x03]));
			for (const [key, item] of Object.entries(value)) {
				parts.push(stringBytes(key));
				write(item);
			}
			parts.push(Buffer.from([0x00, 0x00, 0x09]));
		}
	};
	for (const value of values) write(value);
	return Buffer.concat(parts);
}

function stringBytes(value: string): Buffer {
	const text = Buffer.from(value, 'utf8');
	if (text.length > 0xffff) throw new TypeError('AMF0 short strings hold at most 65535 bytes');
	const b = Buffer.allocUnsafe(2 + text.length);
	b.writeUInt16BE(text.length, 0);
	text.copy(b, 2);
	return b;
}
