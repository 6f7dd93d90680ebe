/**
 * Audience import: CSV or JSONL -> validated, normalised, de-duplicated rows.
 *
 * Bad rows are reported (line number, offending value, short reason) and left out;
 * a file that cannot be parsed at all throws InvalidCampaignError naming the line,
 * and then nothing is inserted.
 *
 * Encodings: UTF-8 (with or without a byte-order mark). A UTF-16 file with a byte-order
 * mark (LE or BE, as Excel's "Unicode text" writes) is decoded by importAudienceFile /
 * readAudienceFile; UTF-16 text that reached parseAudience already mis-decoded as UTF-8,
 * UTF-16 without a byte-order mark, and invalid UTF-8 bytes (a Latin-1 / Windows-1252
 * file) are refused with an error naming the line: "save it as UTF-8".
 * A merge value longer than MAX_FIELD_CHARS rejects its row (line, field, length).
 */
import { parse as parseCsv } from 'csv-parse/sync';
import * as fs from 'fs';
import * as path from 'path';
import { normaliseAddress } from './address';
import { InvalidCampaignError } from './errors';
import type { AudienceRow, Store } from './store/types';

export type AudienceFormat = 'csv' | 'jsonl';

export interface AudienceParseResult {
  rows: AudienceRow[];
  /** Source line of each row (parallel to rows). */
  lines: number[];
  rejected: Array<{ line: number; value: string; reason: string }>;
  duplicates: Array<{ line: number; email: string; firstLine: number }>;
}

export interface AudienceImportReport {
  inserted: number;
  /** Duplicates inside the file plus addresses already in the campaign. */
  duplicates: number;
  rejected: AudienceParseResult['rejected'];
}

/** Longest offending value kept in a rejection (whole raw lines can be long). */
const MAX_VALUE = 200;
/** Longest merge value accepted (characters); a longer one rejects its row. */
export const MAX_FIELD_CHARS = 65_536;
export const IMPORT_CHUNK = 1000;

export function detectAudienceFormat(file: string): AudienceFormat {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.csv') return 'csv';
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  throw new Error(
    `audience file ${file}: unknown format '${ext || '(no extension)'}' (expected .csv, .jsonl or .ndjson)`,
  );
}

/**
 * Parse an audience file's content.
 * @param sourceName used in error messages ("audience.csv line 7: unclosed quote"); default "audience".
 */
export function parseAudience(content: string, format: AudienceFormat, sourceName = 'audience'): AudienceParseResult {
  checkEncoding(content, sourceName);
  const builder = new ResultBuilder();
  if (format === 'csv') parseCsvAudience(content, sourceName, builder);
  else if (format === 'jsonl') parseJsonlAudience(content, sourceName, builder);
  else throw new InvalidCampaignError(`${sourceName}: unknown audience format '${String(format)}'`);
  return builder.result;
}

/**
 * Read, parse and insert an audience file into a campaign, in chunks of 1000 rows.
 * Throws (before inserting anything) when the file is unreadable or malformed.
 */
export async function importAudienceFile(
  store: Store,
  campaignId: string,
  file: string,
  opts: { onProgress?: (done: number, total: number) => void } = {},
): Promise<AudienceImportReport> {
  const format = detectAudienceFormat(file);
  const content = await readAudienceFile(file);
  const parsed = parseAudience(content, format, path.basename(file));
  return insertAudience(store, campaignId, parsed, opts);
}

/** Read an audience file as text: UTF-8, or UTF-16 LE/BE with a byte-order mark (decoded). */
export async function readAudienceFile(file: string): Promise<string> {
  let buf: Buffer;
  try {
    buf = await fs.promises.readFile(file);
  } catch (err) {
    throw new InvalidCampaignError(`cannot read audience file ${file}: ${(err as Error).message}`);
  }
  return decodeAudienceBytes(buf, path.basename(file));
}

/** Bytes -> text: UTF-16 with a byte-order mark is decoded, anything else is read as UTF-8 (checked by parseAudience). */
export function decodeAudienceBytes(buf: Buffer, sourceName = 'audience'): string {
  if (buf.length >= 2 && buf[0] === 0xff && buf[1] === 0xfe) return utf16(buf.subarray(2), 'le', sourceName);
  if (buf.length >= 2 && buf[0] === 0xfe && buf[1] === 0xff) return utf16(buf.subarray(2), 'be', sourceName);
  return buf.toString('utf8');
}

function utf16(body: Buffer, order: 'le' | 'be', source: string): string {
  if (body.length % 2 !== 0) throw new InvalidCampaignError(`${source}: UTF-16 file with an odd number of bytes (truncated?); save it as UTF-8`);
  if (order === 'le') return body.toString('utf16le');
  const swapped = Buffer.from(body); // copy: swap16 works in place
  return swapped.swap16().toString('utf16le');
}

/**
 * Refuse text that is not clean UTF-8: UTF-16 read as UTF-8 (NUL bytes), and invalid UTF-8
 * bytes (which decode to U+FFFD), naming the first line affected.
 */
function checkEncoding(content: string, source: string): void {
  const nul = content.indexOf('\u0000');
  if (nul >= 0) {
    const utf16Bom = content.startsWith('\ufffd\ufffd');
    throw new InvalidCampaignError(
      utf16Bom
        ? `${source}: file is UTF-16; save it as UTF-8 (or import it with importAudienceFile, which decodes UTF-16)`
        : `${source} line ${lineAt(content, nul)}: NUL byte (the file is UTF-16 without a byte-order mark, or binary); save it as UTF-8`,
    );
  }
  const bad = content.indexOf('\ufffd');
  if (bad >= 0) {
    throw new InvalidCampaignError(
      `${source} line ${lineAt(content, bad)}: invalid UTF-8 bytes (the file is probably Latin-1 / Windows-1252); save it as UTF-8`,
    );
  }
}

function lineAt(content: string, index: number): number {
  let line = 1;
  for (let i = content.indexOf('\n'); i !== -1 && i < index; i = content.indexOf('\n', i + 1)) line++;
  return line;
}

/** Insert parsed rows in chunks of IMPORT_CHUNK, reporting progress. */
export async function insertAudience(
  store: Store,
  campaignId: string,
  parsed: AudienceParseResult,
  opts: { onProgress?: (done: number, total: number) => void } = {},
): Promise<AudienceImportReport> {
  const total = parsed.rows.length;
  let inserted = 0;
  let duplicates = parsed.duplicates.length;
  for (let i = 0; i < total; i += IMPORT_CHUNK) {
    const chunk = parsed.rows.slice(i, i + IMPORT_CHUNK);
    const r = await store.importAudience(campaignId, chunk);
    inserted += r.inserted;
    duplicates += r.duplicates;
    opts.onProgress?.(Math.min(i + chunk.length, total), total);
  }
  if (total === 0) opts.onProgress?.(0, 0);
  return { inserted, duplicates, rejected: parsed.rejected };
}

// ------------------------------------------------------------------ common

class ResultBuilder {
  readonly result: AudienceParseResult = { rows: [], lines: [], rejected: [], duplicates: [] };
  readonly #firstLine = new Map<string, number>();

  reject(line: number, value: string, reason: string): void {
    this.result.rejected.push({ line, value: clip(value), reason });
  }

  add(line: number, rawEmail: string, fields: Record<string, string>): void {
    const addr = normaliseAddress(rawEmail);
    if (!addr.ok) {
      this.reject(line, rawEmail, addr.reason);
      return;
    }
    for (const [name, value] of Object.entries(fields)) {
      if (value.length > MAX_FIELD_CHARS) {
        this.reject(line, rawEmail, `field '${name}' is ${value.length} characters long (limit ${MAX_FIELD_CHARS})`);
        return;
      }
    }
    const first = this.#firstLine.get(addr.email);
    if (first !== undefined) {
      this.result.duplicates.push({ line, email: addr.email, firstLine: first });
      return;
    }
    this.#firstLine.set(addr.email, line);
    this.result.rows.push({ email: addr.email, fields });
    this.result.lines.push(line);
  }
}

function clip(s: string): string {
  return s.length > MAX_VALUE ? s.slice(0, MAX_VALUE - 1) + '…' : s;
}

// ------------------------------------------------------------------ CSV

interface CsvRecord {
  fields: string[];
  /** Byte offset just past the record (and its line break) in the input buffer. */
  end: number;
}

function parseCsvAudience(content: string, source: string, out: ResultBuilder): void {
  const buf = Buffer.from(content, 'utf8');
  const lines = new LineIndex(buf);
  const records: CsvRecord[] = [];
  let lastEnd = 0;
  try {
    parseCsv(buf, {
      bom: true,
      relax_column_count: true,
      skip_empty_lines: true,
      on_record: (fields: string[], ctx) => {
        records.push({ fields, end: ctx.bytes });
        lastEnd = ctx.bytes;
        return null;
      },
    });
  } catch (err) {
    const e = err as Error & { code?: string };
    const line = lines.startLineAfter(lastEnd);
    throw new InvalidCampaignError(`${source} line ${line}: ${describeCsvError(e)}`);
  }

  // Header: first non-blank record.
  let start = 0;
  let prevEnd = 0;
  let header: string[] | undefined;
  let headerLine = 1;
  for (; start < records.length; start++) {
    const r = records[start]!;
    const blank = r.fields.every((f) => f.trim() === '');
    if (!blank) {
      header = r.fields.map((f) => f.trim());
      headerLine = lines.startLineAfter(prevEnd);
      prevEnd = r.end;
      start++;
      break;
    }
    prevEnd = r.end;
  }
  if (!header) throw new InvalidCampaignError(`${source}: empty file (expected a header row with an 'email' column)`);

  const emailCols = header.flatMap((h, i) => (h.toLowerCase() === 'email' ? [i] : []));
  const named = header.filter((h) => h !== '');
  if (emailCols.length === 0) {
    const other = [';', '\t', '|'].find((d) => header!.some((h) => h.split(d).some((part) => part.trim().toLowerCase() === 'email')));
    const hint = other ? ` — the file looks ${other === '\t' ? 'tab' : `'${other}'`}-separated; save it as comma-separated CSV` : '';
    throw new InvalidCampaignError(`${source}: no 'email' column in header (columns: ${named.join(', ') || 'none'})${hint}`);
  }
  if (emailCols.length > 1) {
    throw new InvalidCampaignError(
      `${source} line ${headerLine}: more than one 'email' column in header (${emailCols.map((i) => header![i]).join(', ')})`,
    );
  }
  const seen = new Set<string>();
  for (const h of named) {
    if (seen.has(h)) throw new InvalidCampaignError(`${source} line ${headerLine}: duplicate column '${h}' in header`);
    seen.add(h);
  }
  const emailCol = emailCols[0]!;

  for (let i = start; i < records.length; i++) {
    const r = records[i]!;
    const startByte = lines.skipBreaks(prevEnd);
    const line = lines.lineOf(startByte);
    const rawText = () => buf.subarray(startByte, r.end).toString('utf8').replace(/\r?\n$/, '');
    prevEnd = r.end;
    if (r.fields.every((f) => f.trim() === '')) continue; // whitespace-only line
    if (r.fields.length !== header.length) {
      out.reject(line, rawText(), `expected ${header.length} columns, found ${r.fields.length}`);
      continue;
    }
    const fields: Record<string, string> = {};
    header.forEach((h, col) => {
      if (col !== emailCol && h !== '') fields[h] = r.fields[col]!.trim();
    });
    out.add(line, r.fields[emailCol]!, fields);
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

/** Byte offset -> 1-based line number (lines end at "\n"; "\r\n" and "\n" both work). */
class LineIndex {
  readonly #newlines: number[] = [];
  constructor(private readonly buf: Buffer) {
    for (let i = buf.indexOf(10); i !== -1; i = buf.indexOf(10, i + 1)) this.#newlines.push(i);
  }
  /** Skip line breaks (empty lines) starting at offset. */
  skipBreaks(offset: number): number {
    let p = offset;
    while (p < this.buf.length && (this.buf[p] === 10 || this.buf[p] === 13)) p++;
    return p;
  }
  /** Line of the first content byte at or after `offset` (i.e. where the next record starts). */
  startLineAfter(offset: number): number {
    return this.lineOf(this.skipBreaks(offset));
  }
  lineOf(offset: number): number {
    // number of newlines strictly before offset, + 1
    let lo = 0;
    let hi = this.#newlines.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#newlines[mid]! < offset) lo = mid + 1;
      else hi = mid;
    }
    return lo + 1;
  }
}

// ------------------------------------------------------------------ JSONL

function parseJsonlAudience(content: string, source: string, out: ResultBuilder): void {
  const text = content.charCodeAt(0) === 0xfeff ? content.slice(1) : content;
  const lines = text.split('\n');
  let any = false;
  lines.forEach((rawLine, idx) => {
    const lineNo = idx + 1;
    const line = rawLine.replace(/\r$/, '');
    if (line.trim() === '') return;
    any = true;
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
        out.reject(lineNo, line, `field '${k}' is ${Array.isArray(v) ? 'an array' : 'an object'} (only flat values are supported)`);
        return;
      }
      fields[k] = v === null ? '' : typeof v === 'string' ? v : String(v);
    }
    out.add(lineNo, email, fields);
  });
  if (!any) throw new InvalidCampaignError(`${source}: empty file (expected one JSON object per line)`);
}
