/**
 * Send windows: when a campaign may send, as days of the week and hours of the day in a time
 * zone (`window: { days: mon-fri, hours: 09:00-17:00, zone: Europe/Berlin }` in the campaign file).
 *
 * Pure and deterministic: nothing here reads a clock, every answer is for the time it is given
 * (Intl.DateTimeFormat with a timeZone answers from that time and the zone data alone). The
 * campaign workflow asks it with workflow time; the campaign file's checks use its parser.
 *
 * What a window means:
 * - it opens on each listed day at the start time, local time in the zone, and closes at the end
 *   time; an end before the start crosses midnight (fri 22:00-06:00 is open from friday 22:00 to
 *   saturday 06:00, so with mon-fri a monday 03:00 is closed: sunday's night is not listed);
 * - 24:00 as an end is midnight at the end of the day (00:00-24:00 is the whole day);
 * - across a daylight-saving change a local time that does not exist that day (the hour the clocks
 *   skip) means the instant the clocks jump to, and one that happens twice (the hour they repeat)
 *   means the first of them; the window's length in real time changes accordingly.
 */
import { offsetAt, wallAt } from './zoned-time';

export const DAY_NAMES = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
/** The order days are listed in (the working week first). */
const WEEK_ORDER = [1, 2, 3, 4, 5, 6, 0];
const FULL_NAMES = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'];

/** A send window as written in a campaign file, normalized (what a campaign's workflow input carries). */
export interface SendWindowSpec {
  /** Days it opens on: `mon-fri`, `mon,wed,sat`, `fri-mon` (a range wraps over the weekend). */
  days: string;
  /** Local opening hours: `09:00-17:00`, `22:00-06:00` (crosses midnight), `00:00-24:00`. */
  hours: string;
  /** IANA time zone: `Europe/Berlin`, `UTC`. */
  zone: string;
}

/** A parsed send window. */
export interface SendWindow {
  /** days[d] is true when the window opens on weekday d (0 = sunday). */
  days: boolean[];
  /** Minutes after local midnight it opens at (0-1439). */
  start: number;
  /** Minutes after local midnight it closes at (1-1440); at or before `start`: the next day. */
  end: number;
  zone: string;
  /** The normalized spec (also its text in messages). */
  spec: SendWindowSpec;
}

/** Whether the window is open at a time, and when that changes (epoch ms). */
export type WindowState = { open: true; closesAt?: number } | { open: false; opensAt: number };

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
/** How many days ahead instances are looked at: any week has an open instance, a DST gap can cost one. */
const HORIZON_DAYS = 16;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const show = (v: unknown): string => (v === undefined ? 'nothing' : (JSON.stringify(v)?.slice(0, 120) ?? String(v)));
const FIELDS = ['days', 'hours', 'zone'];

/**
 * Parse a campaign file's `window` (or a workflow input's spec). Days default to every day and hours
 * to the whole day, but a window needs its zone. Problems name the field under `field`.
 */
export function parseSendWindow(raw: unknown, field = 'window'): { window: SendWindow; problems?: undefined } | { window?: undefined; problems: string[] } {
  if (!isObject(raw)) {
    // The window of batches in flight at once is another field.
    const hint = typeof raw === 'number' ? ' (how many batches are in flight at once is batchesInFlight)' : '';
    return {
      problems: [
        `${field}: expected a mapping with days, hours and zone (e.g. { days: mon-fri, hours: 09:00-17:00, zone: Europe/Berlin }), got ${show(raw)}${hint}`,
      ],
    };
  }
  const problems: string[] = [];
  for (const key of Object.keys(raw)) if (!FIELDS.includes(key)) problems.push(`${field}.${key}: unknown field (expected ${FIELDS.join(', ')})`);
  const days = parseDays(raw.days, `${field}.days`, problems);
  const hours = parseHours(raw.hours, `${field}.hours`, problems);
  const zone = parseZone(raw.zone, `${field}.zone`, problems);
  if (problems.length || !days || !hours || zone === undefined) return { problems };
  const spec: SendWindowSpec = { days: daysText(days), hours: hoursText(hours.start, hours.end), zone };
  return { window: { days, start: hours.start, end: hours.end, zone, spec } };
}

/** A window as one line: `mon-fri 09:00-17:00 Europe/Berlin`. */
export function describeWindow(w: SendWindow | SendWindowSpec): string {
  const spec = 'spec' in w ? w.spec : w;
  return `${spec.days} ${spec.hours} ${spec.zone}`;
}

function dayIndex(name: string): number | undefined {
  const n = name.trim().toLowerCase();
  const i = DAY_NAMES.indexOf(n as (typeof DAY_NAMES)[number]);
  if (i >= 0) return i;
  const j = FULL_NAMES.indexOf(n);
  return j >= 0 ? j : undefined;
}

function parseDays(raw: unknown, field: string, problems: string[]): boolean[] | undefined {
  const days: boolean[] = new Array<boolean>(7).fill(raw === undefined);
  if (raw === undefined) return days;
  const expected = `expected days like mon-fri or mon,wed,sat (${DAY_NAMES.slice(1).join(', ')}, sun)`;
  let parts: unknown[];
  if (typeof raw === 'string') parts = raw.split(',');
  else if (Array.isArray(raw)) parts = raw;
  else {
    problems.push(`${field}: ${expected}, got ${show(raw)}`);
    return undefined;
  }
  let ok = true;
  for (const part of parts) {
    if (typeof part !== 'string') {
      problems.push(`${field}: ${expected}, got ${show(part)} in ${show(raw)}`);
      ok = false;
      continue;
    }
    if (part.trim() === '') continue;
    const range = part.split('-');
    const ends = range.map(dayIndex);
    if (range.length > 2 || ends.some((d) => d === undefined)) {
      problems.push(`${field}: ${expected}, got ${show(part.trim())}${parts.length > 1 ? ` in ${show(raw)}` : ''}`);
      ok = false;
      continue;
    }
    const [from, to = from] = ends as number[];
    // A range runs forward through the week and wraps: fri-mon is fri, sat, sun, mon.
    for (let d = from; ; d = (d + 1) % 7) {
      days[d] = true;
      if (d === to) break;
    }
  }
  if (ok && !days.some(Boolean)) {
    problems.push(`${field}: no day given, so the window would never open (${expected}; leave days out for every day)`);
    return undefined;
  }
  return ok ? days : undefined;
}

/** `mon-fri`, `mon,wed,sat`, `mon-sun`: runs of three or more consecutive days (in week order, monday first) as ranges. */
function daysText(days: boolean[]): string {
  const runs: number[][] = [];
  for (const d of WEEK_ORDER) {
    const last = runs[runs.length - 1];
    if (!days[d]) continue;
    if (last && WEEK_ORDER.indexOf(last[last.length - 1]) === WEEK_ORDER.indexOf(d) - 1) last.push(d);
    else runs.push([d]);
  }
  return runs.flatMap((run) => (run.length >= 3 ? [`${DAY_NAMES[run[0]]}-${DAY_NAMES[run[run.length - 1]]}`] : run.map((d) => DAY_NAMES[d]))).join(',');
}

const HOURS = /^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$/;

function parseHours(raw: unknown, field: string, problems: string[]): { start: number; end: number } | undefined {
  if (raw === undefined) return { start: 0, end: 24 * 60 };
  const m = typeof raw === 'string' ? HOURS.exec(raw) : null;
  if (!m) {
    problems.push(`${field}: expected HH:MM-HH:MM (e.g. 09:00-17:00, or 22:00-06:00 across midnight), got ${show(raw)}`);
    return undefined;
  }
  const [sh, sm, eh, em] = m.slice(1).map(Number);
  const bad = [...(sh > 23 || sm > 59 ? [`${m[1]}:${m[2]}`] : []), ...(eh > 24 || em > 59 || (eh === 24 && em !== 0) ? [`${m[3]}:${m[4]}`] : [])];
  if (bad.length) {
    problems.push(`${field}: ${bad.join(' and ')} is not a time of day (00:00 to 23:59, and 24:00 as an end), got ${show(raw)}`);
    return undefined;
  }
  const start = sh * 60 + sm;
  const end = eh * 60 + em;
  if (start === end) {
    problems.push(`${field}: it opens and closes at the same time, got ${show(raw)} (for the whole day use 00:00-24:00)`);
    return undefined;
  }
  return { start, end };
}

const hhmm = (minutes: number) => `${String(Math.floor(minutes / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`;
const hoursText = (start: number, end: number) => `${hhmm(start)}-${hhmm(end)}`;

function parseZone(raw: unknown, field: string, problems: string[]): string | undefined {
  const expected = 'expected an IANA time zone like Europe/Berlin, America/New_York or UTC';
  if (typeof raw !== 'string' || raw.trim() === '') {
    problems.push(`${field}: ${expected}, got ${show(raw)}`);
    return undefined;
  }
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: raw.trim() }).resolvedOptions().timeZone;
  } catch {
    problems.push(`${field}: unknown time zone ${show(raw)} (${expected})`);
    return undefined;
  }
}

// ── Time in a zone (./zoned-time.ts) ─────────────────────────────────────────────────────

/**
 * The first instant at which the local clock reads `wall` or later: the wall time itself when it
 * exists once, the earlier one when it happens twice, the end of the gap when the clocks skip it.
 * (A zone changes its offset at most once within a day of any instant.)
 */
export function instantOfWall(wall: number, zone: string): number {
  const before = offsetAt(wall - DAY, zone);
  const after = offsetAt(wall + DAY, zone);
  if (before === after) return wall - before;
  const fits = [wall - before, wall - after].filter((u) => u + offsetAt(u, zone) === wall);
  if (fits.length) return Math.min(...fits);
  // In the gap: the transition lies between these two; find it to the second.
  let lo = wall - Math.max(before, after);
  let hi = wall - Math.min(before, after);
  while (hi - lo > 1000) {
    const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
    if (offsetAt(mid, zone) === before) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** Local date and time at instant t in `zone`: `2026-12-07 09:00`. */
export function localTimeText(t: number, zone: string): string {
  return new Date(wallAt(t, zone)).toISOString().slice(0, 16).replace('T', ' ');
}

// ── Open or closed ─────────────────────────────────────────────────────────────────────────

/** The window's openings from the day before t's local date on, [opens, closes) in epoch ms, in order (worked out as they are asked for). */
function* instances(w: SendWindow, t: number): Generator<[number, number]> {
  const today = Math.floor(wallAt(t, w.zone) / DAY);
  for (let k = today - 1; k <= today + HORIZON_DAYS; k++) {
    // Day 0 of the epoch (1970-01-01) was a thursday.
    if (!w.days[(((k + 4) % 7) + 7) % 7]) continue;
    const opens = instantOfWall(k * DAY + w.start * MINUTE, w.zone);
    const closes = instantOfWall((w.end > w.start ? k : k + 1) * DAY + w.end * MINUTE, w.zone);
    if (closes > opens) yield [opens, closes];
  }
}

/**
 * Whether the window is open at t (epoch ms), and when it closes (absent: not within two weeks,
 * e.g. every day all day) or next opens.
 */
export function windowStateAt(w: SendWindow, t: number): WindowState {
  /** The end of the opening t is in, while later openings touch or overlap it (00:00-24:00 on consecutive days are one). */
  let closes: number | undefined;
  for (const [opens, until] of instances(w, t)) {
    if (closes !== undefined) {
      if (opens > closes) return { open: true, closesAt: closes };
      closes = Math.max(closes, until);
    } else if (opens <= t && t < until) closes = until;
    else if (opens > t) return { open: false, opensAt: opens };
  }
  // Open for as far as it looks; or (unreachable for a parsed window: some day opens every week) asked again a day later.
  return closes !== undefined ? { open: true } : { open: false, opensAt: t + DAY };
}

/** Whether the window is open at t (epoch ms). */
export const isWindowOpen = (w: SendWindow, t: number): boolean => windowStateAt(w, t).open;
