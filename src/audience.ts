/**
 * Audience import: CSV or JSONL -> validated, normalised, de-duplicated rows.
 *
 * Bad rows are reported (line number, offending value, short reason) and left out;
 * a file that cannot be parsed at all throws InvalidCampaignError naming the line,
 * and then nothing is inserted.
 *
 * Files are read as a stream, twice: a first pass checks every row (and lets the caller check
 * merge values), a second inserts them in chunks. Memory stays flat with the file's size but
 * for one set of the addresses seen (duplicates are found across the whole file).
 *
 * Encodings: UTF-8 (with or without a byte-order mark). A UTF-16 file with a byte-order
 * mark (LE or BE, as Excel's "Unicode text" writes) is decoded by importAudienceFile /
 * scanAudienceFile / readAudienceFile; UTF-16 text that reached parseAudience already
 * mis-decoded as UTF-8, UTF-16 without a byte-order mark, and invalid UTF-8 bytes (a Latin-1 /
 * Windows-1252 file) are refused with an error naming the line: "save it as UTF-8".
 * A merge value longer than MAX_FIELD_CHARS rejects its row (line, field, length).
 */
import { Parser as CsvParser, type CsvError } from 'csv-parse';
import { createHash, type Hash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { TextDecoder } from 'util';
import { normaliseAddress } from './address';
import { InvalidCampaignError } from './errors';
import { LineSplitter } from './line-splitter';
import { clip } from './quote-value';
import type { AudienceRow, Store } from './store/types';

export type AudienceFormat = 'csv' | 'jsonl';

export type AudienceRejection = { line: number; value: string; reason: string };
export type AudienceDuplicate = { line: number; email: string; firstLine: number };

export interface AudienceParseResult {
  rows: AudienceRow[];
  /** Source line of each row (parallel to rows). */
  lines: number[];
  rejected: AudienceRejection[];
  duplicates: AudienceDuplicate[];
}

/** What a pass over an audience file found (the rows themselves went to the caller). */
export interface AudienceScan {
  /** Valid, distinct rows. */
  valid: number;
  rejected: AudienceRejection[];
  duplicates: AudienceDuplicate[];
  /** SHA-256 of the file's bytes as scanned (files only): the import pass must read the same. */
  sha256?: string;
}

export interface AudienceImportReport {
  inserted: number;
  /** Duplicates inside the file plus addresses already in the campaign. */
  duplicates: number;
  rejected: AudienceRejection[];
}

/** Called with each valid, distinct row and its source line. */
export type RowHandler = (row: AudienceRow, line: number) => void;

/** Longest merge value accepted (characters); a longer one rejects its row. */
export const MAX_FIELD_CHARS = 65_536;
export const IMPORT_CHUNK = 1000;
/** Bytes read from an audience file at a time. */
const READ_CHUNK = 256 * 1024;
/**
 * Longest line (JSONL, in characters) or record (CSV, in bytes: a quoted field can span lines)
 * read. Nothing this long is a row of an audience (a merge value is at most MAX_FIELD_CHARS); it
 * is a quote never closed or not an audience file, refused before more than the limit and one
 * chunk are held.
 */
export const MAX_LINE_LENGTH = 4 * 1024 * 1024;

export function detectAudienceFormat(file: string): AudienceFormat {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.csv') return 'csv';
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  throw new Error(`audience file ${file}: unknown format '${ext || '(no extension)'}' (expected .csv, .jsonl or .ndjson)`);
}

/**
 * Parse an audience file's content held in memory (small files, tests, suppression imports).
 * @param sourceName used in error messages ("audience.csv line 7: unclosed quote"); default "audience".
 */
export function parseAudience(content: string, format: AudienceFormat, sourceName = 'audience'): AudienceParseResult {
  const rows: AudienceRow[] = [];
  const lines: number[] = [];
  const reader = new AudienceReader(format, sourceName, (row, line) => {
    rows.push(row);
    lines.push(line);
  });
  reader.push(content);
  const scan = reader.end();
  return { rows, lines, rejected: scan.rejected, duplicates: scan.duplicates };
}

/**
 * One pass over an audience file, streamed: every row is checked and each valid, distinct one
 * handed to `onRow`. Throws InvalidCampaignError (naming the line) when the file cannot be read
 * or parsed; rows handed out before that are then not to be used.
 */
export async function scanAudienceFile(file: string, onRow: RowHandler = () => undefined): Promise<AudienceScan> {
  const reader = new AudienceReader(detectAudienceFormat(file), path.basename(file), onRow);
  const hash = createHash('sha256');
  for await (const text of decodedChunks(file, hash)) reader.push(text);
  return { ...reader.end(), sha256: hash.digest('hex') };
}

/**
 * Read, check and insert an audience file into a campaign, in chunks of 1000 rows.
 * Throws (before inserting anything) when the file is unreadable or malformed.
 */
export async function importAudienceFile(
  store: Store,
  campaignId: string,
  file: string,
  opts: { onProgress?: (done: number, total: number) => void } = {},
): Promise<AudienceImportReport> {
  const scan = await scanAudienceFile(file);
  return insertAudienceFile(store, campaignId, file, scan, opts);
}

/**
 * The second pass: insert the rows of a file that `scanAudienceFile` has checked, in chunks of
 * IMPORT_CHUNK, reporting progress against the scan's count. A file that changed since its scan
 * is an error (the rows inserted so far stay; the message says so).
 */
export async function insertAudienceFile(
  store: Store,
  campaignId: string,
  file: string,
  scan: AudienceScan,
  opts: { onProgress?: (done: number, total: number) => void } = {},
): Promise<AudienceImportReport> {
  let inserted = 0;
  let duplicates = scan.duplicates.length;
  await forEachCheckedChunk(file, scan, `of campaign '${campaignId}' were inserted`, async (chunk, done) => {
    const r = await store.importAudience(campaignId, chunk);
    inserted += r.inserted;
    duplicates += r.duplicates;
    opts.onProgress?.(done, scan.valid);
    return r.inserted;
  });
  if (scan.valid === 0) opts.onProgress?.(0, 0);
  return { inserted, duplicates, rejected: scan.rejected };
}

/**
 * Reads a file that `scanAudienceFile` checked again, handing its valid rows to `onChunk` in
 * chunks of IMPORT_CHUNK (with the count handed over so far). `onChunk` returns how many rows it
 * stored, for the message when the file changed since its scan (`stored` ends that message).
 */
export async function forEachCheckedChunk(
  file: string,
  scan: AudienceScan,
  stored: string,
  onChunk: (rows: AudienceRow[], done: number) => Promise<number>,
): Promise<void> {
  const pending: AudienceRow[] = [];
  let seen = 0;
  let kept = 0;
  const flush = async (all: boolean) => {
    while (pending.length >= IMPORT_CHUNK || (all && pending.length > 0)) {
      const chunk = pending.splice(0, IMPORT_CHUNK);
      kept += await onChunk(chunk, Math.min(seen - pending.length, scan.valid));
    }
  };
  const changed = (detail: string) =>
    new InvalidCampaignError(`${path.basename(file)} changed while it was being imported (${detail}); ${kept} row(s) ${stored}`);
  const reader = new AudienceReader(detectAudienceFormat(file), path.basename(file), (row) => {
    seen++;
    pending.push(row);
  });
  const hash = createHash('sha256');
  try {
    for await (const text of decodedChunks(file, hash)) {
      reader.push(text);
      await flush(false);
    }
    reader.end();
  } catch (err) {
    if (err instanceof InvalidCampaignError) throw changed(err.message);
    throw err;
  }
  if (seen !== scan.valid) throw changed(`${scan.valid} valid rows when checked, ${seen} now`);
  // Same count, other rows: what was checked is not what would be inserted.
  if (scan.sha256 !== undefined && hash.digest('hex') !== scan.sha256) throw changed('its content differs from what was checked');
  await flush(true);
}

/** Read an audience file as text: UTF-8, or UTF-16 LE/BE with a byte-order mark (decoded). */
export async function readAudienceFile(file: string): Promise<string> {
  let text = '';
  for await (const chunk of decodedChunks(file)) text += chunk;
  return text;
}

// ------------------------------------------------------------------ bytes -> text

/** A file's text, chunk by chunk, decoded as its byte-order mark says (UTF-8 without one). */
async function* decodedChunks(file: string, hash?: Hash): AsyncGenerator<string> {
  let stream: fs.ReadStream;
  try {
    stream = fs.createReadStream(file, { highWaterMark: READ_CHUNK });
    await new Promise<void>((resolve, reject) => {
      stream.once('open', () => resolve());
      stream.once('error', reject);
    });
  } catch (err) {
    throw new InvalidCampaignError(`cannot read audience file ${file}: ${(err as Error).message}`);
  }
  const decoder = new AudienceDecoder(path.basename(file));
  try {
    for await (const buf of stream) {
      hash?.update(buf as Buffer);
      const text = decoder.decode(buf as Buffer);
      if (text) yield text;
    }
  } catch (err) {
    if (err instanceof InvalidCampaignError) throw err;
    throw new InvalidCampaignError(`cannot read audience file ${file}: ${(err as Error).message}`);
  } finally {
    stream.destroy();
  }
  const rest = decoder.end();
  if (rest) yield rest;
}

/**
 * Streaming decoder: UTF-16 LE/BE when the first two bytes are its byte-order mark, else UTF-8
 * (a UTF-8 byte-order mark is kept for the parsers, which skip it). Invalid bytes become U+FFFD,
 * which the reader's TextChecker refuses with the line.
 */
class AudienceDecoder {
  private decoder: TextDecoder | undefined;
  private utf16 = false;
  /** The first bytes, until there are two to tell the encoding by. */
  private head = Buffer.alloc(0);
  private bytes = 0;

  constructor(private readonly source: string) {}

  decode(buf: Buffer): string {
    this.bytes += buf.length;
    if (!this.decoder) {
      this.head = Buffer.concat([this.head, buf]);
      if (this.head.length < 2) return '';
      buf = this.open(this.head);
    }
    return this.decoder!.decode(buf, { stream: true });
  }

  end(): string {
    const text = this.decoder ? '' : this.open(this.head).toString('utf8');
    if (this.utf16 && (this.bytes - 2) % 2 !== 0) {
      throw new InvalidCampaignError(`${this.source}: UTF-16 file with an odd number of bytes (truncated?); save it as UTF-8`);
    }
    return text + this.decoder!.decode();
  }

  /** Chooses the decoder by the first bytes; returns them without a UTF-16 byte-order mark. */
  private open(first: Buffer): Buffer {
    const le = first.length >= 2 && first[0] === 0xff && first[1] === 0xfe;
    const be = first.length >= 2 && first[0] === 0xfe && first[1] === 0xff;
    this.utf16 = le || be;
    this.decoder = new TextDecoder(le ? 'utf-16le' : be ? 'utf-16be' : 'utf-8', { ignoreBOM: !this.utf16 });
    this.head = Buffer.alloc(0);
    return this.utf16 ? first.subarray(2) : first;
  }
}

/**
 * Refuses text that is not clean UTF-8: UTF-16 read as UTF-8 (NUL bytes), and invalid UTF-8
 * bytes (which decode to U+FFFD), naming the first line affected. Fed chunk by chunk.
 */
class TextChecker {
  private linesBefore = 0;
  /** Lines before this chunk, counted by CR (for a CR-only file). */
  private crLinesBefore = 0;
  private first = true;

  /** @param endings how the file ends its lines (CSV); JSONL lines end in '\n'. */
  constructor(
    private readonly source: string,
    private readonly endings?: LineEndings,
  ) {}

  check(text: string): void {
    const nul = text.indexOf('\u0000');
    if (nul >= 0) {
      const utf16Bom = this.first && text.startsWith('\ufffd\ufffd');
      throw new InvalidCampaignError(
        utf16Bom
          ? `${this.source}: file is UTF-16; save it as UTF-8 (or import it with importAudienceFile, which decodes UTF-16)`
          : `${this.source} line ${this.lineAt(text, nul)}: NUL byte (the file is UTF-16 without a byte-order mark, or binary); save it as UTF-8`,
      );
    }
    const bad = text.indexOf('\ufffd');
    if (bad >= 0) {
      throw new InvalidCampaignError(
        `${this.source} line ${this.lineAt(text, bad)}: invalid UTF-8 bytes (the file is probably Latin-1 / Windows-1252); save it as UTF-8`,
      );
    }
    if (text) this.first = false;
    this.linesBefore += countNewlines(text);
    if (this.endings && this.endings.crOnly !== false) this.crLinesBefore += countChar(text, '\r');
  }

  private lineAt(text: string, index: number): number {
    const before = text.slice(0, index);
    if (this.endings?.crOnly) return this.crLinesBefore + countChar(before, '\r') + 1;
    return this.linesBefore + countNewlines(before) + 1;
  }
}

/**
 * How a text ends its lines, told by its first line break as csv-parse tells its record
 * delimiter: '\n' (LF or CRLF) or '\r' alone (old Mac files). Fed every chunk before it is used.
 */
class LineEndings {
  /** True for CR-only line ends; undefined until the first line break. */
  crOnly: boolean | undefined;
  private endsInCr = false;

  see(text: string): void {
    if (this.crOnly !== undefined || !text) return;
    if (this.endsInCr) {
      this.crOnly = text[0] !== '\n';
      return;
    }
    const cr = text.indexOf('\r');
    const lf = text.indexOf('\n');
    if (cr === -1) {
      if (lf !== -1) this.crOnly = false;
    } else if (lf !== -1 && lf < cr) this.crOnly = false;
    else if (cr === text.length - 1) this.endsInCr = true;
    else this.crOnly = text[cr + 1] !== '\n';
  }
}

function countChar(text: string, ch: string): number {
  let n = 0;
  for (let i = text.indexOf(ch); i !== -1; i = text.indexOf(ch, i + 1)) n++;
  return n;
}

const countNewlines = (text: string) => countChar(text, '\n');

// ------------------------------------------------------------------ text -> rows

/**
 * Text chunks in, checked rows out (to `onRow`); `end()` says what was rejected and duplicated.
 * Throws InvalidCampaignError (naming the line) as soon as the text cannot be an audience.
 */
export class AudienceReader {
  private readonly rows: RowCollector;
  private readonly parser: CsvRows | JsonlRows;
  private readonly checker: TextChecker;
  /** CSV only: a CSV file may end its lines in CR alone. */
  private readonly endings: LineEndings | undefined;

  constructor(format: AudienceFormat, source: string, onRow: RowHandler) {
    this.rows = new RowCollector(onRow);
    if (format === 'csv') this.endings = new LineEndings();
    this.checker = new TextChecker(source, this.endings);
    if (format === 'csv') this.parser = new CsvRows(source, this.rows, this.endings!);
    else if (format === 'jsonl') this.parser = new JsonlRows(source, this.rows);
    else throw new InvalidCampaignError(`${source}: unknown audience format '${String(format)}'`);
  }

  push(text: string): void {
    this.endings?.see(text);
    this.checker.check(text);
    this.parser.push(text);
  }

  end(): AudienceScan {
    this.parser.end();
    return { valid: this.rows.valid, rejected: this.rows.rejected, duplicates: this.rows.duplicates };
  }
}

class RowCollector {
  valid = 0;
  readonly rejected: AudienceRejection[] = [];
  readonly duplicates: AudienceDuplicate[] = [];
  readonly #firstLine = new Map<string, number>();

  constructor(private readonly onRow: RowHandler) {}

  reject(line: number, value: string, reason: string): void {
    this.rejected.push({ line, value: clip(value), reason });
  }

  add(line: number, rawEmail: string, fields: Record<string, string>): void {
    const addr = normaliseAddress(rawEmail);
    if (!addr.ok) {
      this.reject(line, rawEmail, addr.reason);
      return;
    }
    for (const [name, value] of Object.entries(fields)) {
      if (value.length > MAX_FIELD_CHARS) {
        this.reject(line, rawEmail, `field '${clip(name)}' is ${value.length} characters long (limit ${MAX_FIELD_CHARS})`);
        return;
      }
    }
    const first = this.#firstLine.get(addr.email);
    if (first !== undefined) {
      this.duplicates.push({ line, email: addr.email, firstLine: first });
      return;
    }
    this.#firstLine.set(addr.email, line);
    this.valid++;
    this.onRow({ email: addr.email, fields }, line);
  }
}

// ------------------------------------------------------------------ CSV

/** csv-parse's incremental parser, fed synchronously (the same calls its stream makes). */
interface CsvParseApi {
  parse(buf: Buffer | undefined, end: boolean, push: (record: { record: string[]; raw: string }) => void, close: () => void): CsvError | undefined;
  /** `bytes`: where the record being handed out ends (bytes from the start of the text). */
  info: { bytes: number };
}

class CsvRows {
  private readonly api: CsvParseApi;
  /** Line where the next record starts. */
  private nextLine = 1;
  private header: string[] | undefined;
  private emailCol = 0;
  /** Bytes pushed so far, and where the last record ended: the record being read is the difference. */
  private bytesPushed = 0;
  private recordEnd = 0;
  private readonly onRecord = (r: { record: string[]; raw: string }) => {
    this.recordEnd = this.api.info.bytes;
    this.record(r.record, r.raw);
  };

  constructor(
    readonly source: string,
    private readonly out: RowCollector,
    private readonly endings: LineEndings,
  ) {
    const parser = new CsvParser({ bom: true, relax_column_count: true, raw: true });
    this.api = (parser as unknown as { api: CsvParseApi }).api;
  }

  push(text: string): void {
    if (!text) return;
    const buf = Buffer.from(text, 'utf8');
    this.bytesPushed += buf.length;
    this.check(this.api.parse(buf, false, this.onRecord, () => undefined));
    if (this.bytesPushed - this.recordEnd > MAX_LINE_LENGTH) {
      throw new InvalidCampaignError(
        `${this.source} line ${this.nextLine}: record longer than ${MAX_LINE_LENGTH} bytes (the limit for one row; a quote that is never closed makes the rest of the file one record)`,
      );
    }
  }

  end(): void {
    this.check(this.api.parse(undefined, true, this.onRecord, () => undefined));
    if (!this.header) throw new InvalidCampaignError(`${this.source}: empty file (expected a header row with an 'email' column)`);
  }

  private check(err: CsvError | undefined): void {
    if (err) throw new InvalidCampaignError(`${this.source} line ${this.nextLine}: ${describeCsvError(err)}`);
  }

  private record(fields: string[], raw: string): void {
    const line = this.nextLine;
    // The raw text of a record ends with its line break: "\n", "\r" (CR-only files), or the "\r"
    // of "\r\n" (csv-parse leaves out the "\n"). In a CR-only file every "\r" in it ends a line.
    this.nextLine += this.endings.crOnly ? countChar(raw, '\r') : countNewlines(raw) + (raw.endsWith('\r') ? 1 : 0);
    if (fields.every((f) => f.trim() === '')) return; // blank or whitespace-only line
    if (!this.header) return this.readHeader(fields, line);
    const header = this.header;
    if (fields.length !== header.length) {
      this.out.reject(line, raw.replace(/\r?\n$|\r$/, ''), `expected ${header.length} columns, found ${fields.length}`);
      return;
    }
    const values: Record<string, string> = {};
    header.forEach((h, col) => {
      if (col !== this.emailCol && h !== '') values[h] = fields[col]!.trim();
    });
    this.out.add(line, fields[this.emailCol]!, values);
  }

  private readHeader(fields: string[], line: number): void {
    const header = fields.map((f) => f.trim());
    const emailCols = header.flatMap((h, i) => (h.toLowerCase() === 'email' ? [i] : []));
    const named = header.filter((h) => h !== '');
    if (emailCols.length === 0) {
      const other = [';', '\t', '|'].find((d) => header.some((h) => h.split(d).some((part) => part.trim().toLowerCase() === 'email')));
      const hint = other ? ` — the file looks ${other === '\t' ? 'tab' : `'${other}'`}-separated; save it as comma-separated CSV` : '';
      throw new InvalidCampaignError(`${this.source}: no 'email' column in header (columns: ${clip(named.join(', ')) || 'none'})${hint}`);
    }
    if (emailCols.length > 1) {
      throw new InvalidCampaignError(`${this.source} line ${line}: more than one 'email' column in header (${emailCols.map((i) => header[i]).join(', ')})`);
    }
    const seen = new Set<string>();
    for (const h of named) {
      if (seen.has(h)) throw new InvalidCampaignError(`${this.source} line ${line}: duplicate column '${clip(h)}' in header`);
      seen.add(h);
    }
    this.header = header;
    this.emailCol = emailCols[0]!;
  }
}

function describeCsvError(e: Error & { code?: string }): string {
  switch (e.code) {
    case 'CSV_QUOTE_NOT_CLOSED':
      return 'unclosed quote';
    case 'CSV_INVALID_CLOSING_QUOTE':
      return 'unexpected character after a closing quote';
    case 'INVALID_OPENING_QUOTE':
    case 'CSV_INVALID_OPENING_QUOTE':
      return 'quote inside an unquoted field (quote the whole field and double inner quotes)';
    default:
      return e.message;
  }
}

// ------------------------------------------------------------------ JSONL

class JsonlRows {
  private readonly lines: LineSplitter;
  private any = false;
  private readonly onLine = (line: string, lineNo: number) => this.line(line, lineNo);

  constructor(
    readonly source: string,
    private readonly out: RowCollector,
  ) {
    this.lines = new LineSplitter(
      MAX_LINE_LENGTH,
      (lineNo) => new InvalidCampaignError(`${source} line ${lineNo}: line longer than ${MAX_LINE_LENGTH} characters (the limit for one row)`),
    );
  }

  push(text: string): void {
    this.lines.push(text, this.onLine);
  }

  end(): void {
    this.lines.end(this.onLine);
    if (!this.any) throw new InvalidCampaignError(`${this.source}: empty file (expected one JSON object per line)`);
  }

  private line(rawLine: string, lineNo: number): void {
    let line = rawLine.replace(/\r$/, '');
    if (lineNo === 1 && line.charCodeAt(0) === 0xfeff) line = line.slice(1);
    if (line.trim() === '') return;
    this.any = true;
    const out = this.out;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      out.reject(lineNo, line, `invalid JSON: ${(err as Error).message}`);
      return;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      out.reject(lineNo, line, 'not a JSON object');
      return;
    }
    const twice = duplicateKey(line);
    if (twice !== undefined) {
      out.reject(lineNo, line, `duplicate key '${clip(twice)}' (a JSON object names each key once)`);
      return;
    }
    const obj = value as Record<string, unknown>;
    const emailKeys = Object.keys(obj).filter((k) => k.toLowerCase() === 'email');
    if (emailKeys.length === 0) {
      out.reject(lineNo, line, "no 'email' key");
      return;
    }
    if (emailKeys.length > 1) {
      out.reject(lineNo, line, `more than one email key (${emailKeys.join(', ')})`);
      return;
    }
    const emailKey = emailKeys[0]!;
    const email = obj[emailKey];
    if (typeof email !== 'string') {
      out.reject(lineNo, line, "'email' is not a string");
      return;
    }
    const fields: Record<string, string> = {};
    for (const [k, v] of Object.entries(obj)) {
      if (k === emailKey) continue;
      if (v !== null && typeof v === 'object') {
        out.reject(lineNo, line, `field '${clip(k)}' is ${Array.isArray(v) ? 'an array' : 'an object'} (only flat values are supported)`);
        return;
      }
      fields[k] = v === null ? '' : typeof v === 'string' ? v : String(v);
    }
    out.add(lineNo, email, fields);
  }
}

/**
 * The first key that the text of a JSON object names twice at its top level, if any: JSON.parse
 * keeps the last value silently ({"email": a, "email": b} would import b). `text` is valid JSON.
 */
function duplicateKey(text: string): string | undefined {
  const seen = new Set<string>();
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x7b || c === 0x5b)
      depth++; // { [
    else if (c === 0x7d || c === 0x5d)
      depth--; // } ]
    else if (c === 0x22) {
      // A string: its closing quote is the first one after an even run of backslashes.
      let end = text.indexOf('"', i + 1);
      for (;;) {
        let slashes = 0;
        while (text.charCodeAt(end - 1 - slashes) === 0x5c) slashes++;
        if (slashes % 2 === 0) break;
        end = text.indexOf('"', end + 1);
      }
      if (depth === 1) {
        let next = end + 1;
        while (isJsonSpace(text.charCodeAt(next))) next++;
        if (text.charCodeAt(next) === 0x3a) {
          const raw = text.slice(i + 1, end);
          const key = raw.includes('\\') ? (JSON.parse(text.slice(i, end + 1)) as string) : raw;
          if (seen.has(key)) return key;
          seen.add(key);
        }
      }
      i = end;
    }
  }
  return undefined;
}

const isJsonSpace = (c: number) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
