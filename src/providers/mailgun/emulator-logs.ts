/**
 * The emulator's Logs API: POST /v1/analytics/logs over the emulator's event log.
 *
 * Built from Mailgun's published reference, "List logs" (POST /v1/analytics/logs,
 * https://documentation.mailgun.com/docs/mailgun/api-reference/send/mailgun/logs/post-v1-analytics-logs,
 * schemas LogsRequest / FilterPredicateGroup / Pagination / LogsResponse / LogEvent of Mailgun's
 * OpenAPI document):
 * - JSON body: `start` / `end` (RFC 2822; default one day before now / now), `duration` ('1d',
 *   '2h', '30m': counted back from `end`, overriding `start`), `events` (event names),
 *   `filter: { AND: [{ attribute, comparator, values: [{ label, value }] }] }`, `pagination:
 *   { sort: 'timestamp:asc' | 'timestamp:desc', token, limit (100 max) }`, `include_totals`;
 *   `metric_events` and `include_subaccounts` are accepted and ignored.
 * - The answer: `{ start, end, items, pagination: { first, last, next?, previous?, total? },
 *   aggregates: { all, metrics } }`; items are LogEvents: `@timestamp` (ISO 8601), `domain: { name }`,
 *   `user-variables` as a JSON string (not an object as in the events API).
 * The reference lists neither the filter attributes nor the comparators. Those here are the ones
 * Mailgun's own code sends (mailgun-mcp-server's delivery investigation filters `recipient`,
 * `message_id` and `domain` with '='; mailgun-ruby's spec uses '!='), plus `tag` and `event`;
 * anything else is a 400 naming it, so a client that relies on an attribute the emulator does not
 * know fails loudly rather than matching everything. Values of one predicate are alternatives
 * (OR); predicates are all required (AND). Matching is case-insensitive, as addresses are.
 * Assumptions where the reference is silent: the default sort is 'timestamp:desc'; the default
 * limit is 100; `next` is left out on the last page (a client that follows `next` until a page is
 * empty or has no `next` works either way); the page token is the emulator's own cursor, valid
 * only with the same query.
 */
import type { MailgunEvent } from './emulator';

export interface LoggedEvent {
  /** Arrival order in the event log. */
  seq: number;
  /** The sending domain, lower case. */
  domain: string;
  item: MailgunEvent;
}

/** A request Mailgun would refuse with 400; the message names the field and value. */
export class LogsQueryError extends Error {}

const MAX_LIMIT = 100;
const ATTRIBUTES = ['domain', 'recipient', 'message_id', 'tag', 'event'] as const;
type Attribute = (typeof ATTRIBUTES)[number];
const COMPARATORS = ['=', '!='] as const;

interface Predicate {
  attribute: Attribute;
  negate: boolean;
  values: Set<string>;
}

function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** RFC 2822 as mailgun.js writes it ('Mon, 01 Dec 2025 10:00:00 -0000'); Date.parse reads it. */
function parseDate(name: string, value: unknown, fallback: number): number {
  if (value === undefined || value === null || value === '') return fallback;
  const ms = typeof value === 'string' ? Date.parse(value) : NaN;
  if (Number.isNaN(ms)) throw new LogsQueryError(`'${name}' must be an RFC 2822 date, got ${show(value)}`);
  return ms;
}

function rfc2822(ms: number): string {
  return `${new Date(ms).toUTCString().slice(0, 25)} -0000`;
}

function parsePredicates(filter: unknown): Predicate[] {
  if (filter === undefined || filter === null) return [];
  const and = (filter as { AND?: unknown }).AND;
  if (typeof filter !== 'object' || !Array.isArray(and)) throw new LogsQueryError(`'filter' must be { AND: [...] }, got ${show(filter)}`);
  return and.map((raw: unknown, i) => {
    const p = (raw ?? {}) as { attribute?: unknown; comparator?: unknown; values?: unknown };
    if (!ATTRIBUTES.includes(p.attribute as Attribute))
      throw new LogsQueryError(`'filter.AND[${i}].attribute' must be one of ${ATTRIBUTES.join(', ')}, got ${show(p.attribute)}`);
    if (!COMPARATORS.includes(p.comparator as (typeof COMPARATORS)[number]))
      throw new LogsQueryError(`'filter.AND[${i}].comparator' must be one of ${COMPARATORS.join(', ')}, got ${show(p.comparator)}`);
    if (!Array.isArray(p.values) || p.values.length === 0)
      throw new LogsQueryError(`'filter.AND[${i}].values' must be a non-empty list, got ${show(p.values)}`);
    const values = p.values.map((v: unknown, j) => {
      const value = (v as { value?: unknown } | null)?.value;
      if (typeof value !== 'string') throw new LogsQueryError(`'filter.AND[${i}].values[${j}].value' must be a string, got ${show(value)}`);
      return p.attribute === 'message_id' ? value.replace(/^<|>$/g, '').toLowerCase() : value.toLowerCase();
    });
    return { attribute: p.attribute as Attribute, negate: p.comparator === '!=', values: new Set(values) };
  });
}

function attributeValues(e: LoggedEvent, attribute: Attribute): string[] {
  const item = e.item;
  if (attribute === 'domain') return [e.domain];
  if (attribute === 'recipient') return [item.recipient.toLowerCase()];
  if (attribute === 'message_id') return [item.message.headers['message-id'].toLowerCase()];
  if (attribute === 'event') return [item.event];
  return item.tags.map((t) => t.toLowerCase());
}

function matches(e: LoggedEvent, p: Predicate): boolean {
  const hit = attributeValues(e, p.attribute).some((v) => p.values.has(v));
  return p.negate ? !hit : hit;
}

/** A log item as the Logs API returns it. */
function logItem(e: LoggedEvent): Record<string, unknown> {
  const { timestamp, 'user-variables': variables, ...rest } = e.item;
  return { ...rest, '@timestamp': new Date(timestamp * 1000).toISOString(), domain: { name: e.domain }, 'user-variables': JSON.stringify(variables) };
}

function encodeCursor(seq: number): string {
  return Buffer.from(JSON.stringify({ s: seq }), 'utf8').toString('base64url');
}

function decodeCursor(token: string): number {
  try {
    const s = (JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { s?: unknown }).s;
    if (typeof s === 'number' && Number.isInteger(s)) return s;
  } catch {
    // reported below
  }
  throw new LogsQueryError(`'pagination.token' is not a token this server issued, got ${show(token)}`);
}

/** The answer to one POST /v1/analytics/logs body over `log` (oldest first). Throws LogsQueryError for a 400. */
export function answerLogsQuery(body: unknown, log: readonly LoggedEvent[], now = Date.now()): Record<string, unknown> {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new LogsQueryError(`the body must be a JSON object, got ${show(body)}`);
  const q = body as Record<string, unknown>;
  const end = parseDate('end', q.end, now);
  let start = parseDate('start', q.start, end - 86_400_000);
  if (q.duration !== undefined) {
    const m = typeof q.duration === 'string' ? /^(\d+)([dhm])$/.exec(q.duration) : null;
    if (!m) throw new LogsQueryError(`'duration' must look like '1d', '2h' or '30m', got ${show(q.duration)}`);
    start = end - Number(m[1]) * { d: 86_400_000, h: 3_600_000, m: 60_000 }[m[2] as 'd' | 'h' | 'm'];
  }
  if (q.events !== undefined && (!Array.isArray(q.events) || q.events.some((e) => typeof e !== 'string')))
    throw new LogsQueryError(`'events' must be a list of event names, got ${show(q.events)}`);
  const events = Array.isArray(q.events) && q.events.length ? new Set(q.events as string[]) : undefined;
  const predicates = parsePredicates(q.filter);
  const pagination = (q.pagination ?? {}) as { sort?: unknown; token?: unknown; limit?: unknown };
  const sort = pagination.sort ?? 'timestamp:desc';
  if (sort !== 'timestamp:asc' && sort !== 'timestamp:desc')
    throw new LogsQueryError(`'pagination.sort' must be timestamp:asc or timestamp:desc, got ${show(pagination.sort)}`);
  const limit = pagination.limit ?? MAX_LIMIT;
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT)
    throw new LogsQueryError(`'pagination.limit' must be an integer from 1 to ${MAX_LIMIT}, got ${show(pagination.limit)}`);
  const asc = sort === 'timestamp:asc';

  let list = log.filter((e) => {
    const ms = e.item.timestamp * 1000;
    if (ms < start || ms > end) return false;
    if (events && !events.has(e.item.event)) return false;
    return predicates.every((p) => matches(e, p));
  });
  if (!asc) list = list.reverse();
  let from = 0;
  if (typeof pagination.token === 'string' && pagination.token !== '') {
    const cursor = decodeCursor(pagination.token);
    from = list.findIndex((e) => (asc ? e.seq > cursor : e.seq < cursor));
    if (from < 0) from = list.length;
  }
  const page = list.slice(from, from + limit);
  const paging: Record<string, unknown> = { first: encodeCursor(asc ? 0 : Number.MAX_SAFE_INTEGER) };
  const last = list[Math.max(0, list.length - limit) - 1];
  paging.last = encodeCursor(last ? last.seq : asc ? 0 : Number.MAX_SAFE_INTEGER);
  if (from + limit < list.length) paging.next = encodeCursor(page[page.length - 1].seq);
  if (from > 0) {
    const before = list[Math.max(0, from - limit) - 1];
    paging.previous = encodeCursor(before ? before.seq : asc ? 0 : Number.MAX_SAFE_INTEGER);
  }
  if (q.include_totals === true) paging.total = list.length;
  return {
    start: rfc2822(start),
    end: rfc2822(end),
    items: page.map(logItem),
    pagination: paging,
    aggregates: { all: list.length, metrics: {} },
  };
}
