/*
 * A reader for the YAML subset the files in deploy/ are written in (block
 * mappings and sequences, plain and quoted scalars, JSON-style flow arrays,
 * comments, "---" between documents), so that the deployment test needs no
 * YAML package. Anything outside the subset is an error naming the line:
 * the files stay inside it, or the test says so.
 */

interface Line {
	indent: number;
	text: string;
	no: number;
}

function stripComment(raw: string): string {
	let quote: string | undefined;
	for (let i = 0; i < raw.length; i++) {
		const c = raw[i]!;
		if (quote) {
			if (c === '\\' && quote === '"') i++;
			else if (c === quote) quote = undefined;
		} else if (c === '"' || c === "'") quote = c;
		else if (c === '#' && (i === 0 || /\s/.test(raw[i - 1]!))) return raw.slice(0, i);
	}
	return raw;
}

function scalar(text: string, no: number): unknown {
	if (text.startsWith('"') || text.startsWith('[') || text.startsWith('{')) {
		try {
			return JSON.parse(text);
		} catch {
			throw new SyntaxError(`line ${no}: ${text} is outside the YAML subset (quoted strings and flow collections must be JSON)`);
		}
	}
	if (text.startsWith("'")) {
		if (!text.endsWith("'") || text.length < 2) throw new SyntaxError(`line ${no}: unterminated '…'`);
		return text.slice(1, -1).replaceAll("''", "'");
	}
	if (/^[&*|>!%@`]/.test(text) || /:\s/.test(text)) throw new SyntaxError(`line ${no}: ${text} is outside the YAML subset`);
	if (text === 'true' || text === 'false') return text === 'true';
	if (text === 'null' || text === '~') return null;
	if (/^-?\d+$/.test(text)) return Number(text);
	return text;
}

const KEY = /^([A-Za-z0-9_./-]+):(?:\s+(.*))?$/;

function parseDocument(lines: Line[]): unknown {
	let i = 0;
	const isItem = (line: Line) => line.text === '-' || line.text.startsWith('- ');

	const block = (): unknown => (isItem(lines[i]!) ? sequence(lines[i]!.indent) : mapping(lines[i]!.indent));

	const sequence = (indent: number): unknown[] => {
		const out: unknown[] = [];
		while (i < lines.length && lines[i]!.indent === indent && isItem(lines[i]!)) {
			const line = lines[i]!;
			const rest = line.text.slice(1).trimStart();
			if (rest === '') {
				i++;
				out.push(block());
			} else if (KEY.test(rest)) {
				// "- key: value" opens a mapping whose keys sit at the column of "key".
				lines[i] = { indent: indent + line.text.length - rest.length, text: rest, no: line.no };
				out.push(mapping(lines[i]!.indent));
			} else {
				out.push(scalar(rest, line.no));
				i++;
			}
		}
		return out;
	};

	const mapping = (indent: number): Record<string, unknown> => {
		const out: Record<string, unknown> = {};
		while (i < lines.length && lines[i]!.indent === indent && !isItem(lines[i]!)) {
			const line = lines[i]!;
			const match = KEY.exec(line.text);
			if (!match) throw new SyntaxError(`line ${line.no}: expected "key: value", got ${line.text}`);
			const [, key, value] = match;
			if (key! in out) throw new SyntaxError(`line ${line.no}: duplicate key ${key}`);
			i++;
			if (value !== undefined && value !== '') out[key!] = scalar(value, line.no);
			else if (i < lines.length && (lines[i]!.indent > indent || (lines[i]!.indent === indent && isItem(lines[i]!)))) out[key!] = block();
			else out[key!] = null;
		}
		if (i < lines.length && lines[i]!.indent > indent) throw new SyntaxError(`line ${lines[i]!.no}: unexpected indentation`);
		return out;
	};

	const value = block();
	if (i < lines.length) throw new SyntaxError(`line ${lines[i]!.no}: unexpected indentation`);
	return value;
}

/** Every document of a YAML text in the subset above. */
export function parseYamlSubset(text: string): unknown[] {
	const documents: Line[][] = [[]];
	text.split('\n').forEach((raw, index) => {
		if (/\t/.test(raw.match(/^\s*/)![0])) throw new SyntaxError(`line ${index + 1}: tabs in indentation`);
		if (/^---\s*$/.test(raw)) {
			documents.push([]);
			return;
		}
		const body = stripComment(raw).trimEnd();
		if (body.trim() === '') return;
		documents.at(-1)!.push({ indent: body.length - body.trimStart().length, text: body.trim(), no: index + 1 });
	});
	return documents.filter((lines) => lines.length > 0).map(parseDocument);
}
