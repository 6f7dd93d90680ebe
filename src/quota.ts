/**
 * Providers' quotas and warm-up ramps: their settings in the config file, and the arithmetic of
 * what each allows now, on the provider's clock (an IANA zone, UTC by default).
 *
 * - `quota: { perSecond, perHour, perDay, zone, onQuota }`: an ESP account's caps. perSecond only
 *   paces sends (with the rate limit); perHour and perDay are counted per hour and per day of the
 *   provider's clock and reset at its next hour or day boundary.
 * - `warmup: { start, first, growth, until }`: a new account or IP's daily ramp. Day d (days since
 *   `start` on the provider's clock, day 0 before it) allows min(until, floor(first × growth^d)); the
 *   first day that reaches `until` is the ramp's last, after it the warm-up no longer limits.
 *   Warm-up and perDay count the same sends (the provider's day); the smaller allowance holds.
 *
 * Pure: no I/O, no clock (callers pass the instant). The store keeps the counters (src/store/quota.ts).
 */
import { offsetAt, wallAt } from '../workflows/zoned-time';
import { quote } from './quote-value';

export type OnQuota = 'overflow' | 'wait';
export const ON_QUOTA: readonly OnQuota[] = ['overflow', 'wait'];

export interface QuotaSettings {
  perSecond?: number;
  perHour?: number;
  perDay?: number;
  /** The provider's clock: an IANA time zone. Default UTC. */
  zone: string;
  /** When a quota or the warm-up allowance is spent: move to the next provider until the reset, or wait for it. Default overflow. */
  onQuota: OnQuota;
}

export interface WarmupSettings {
  /** Day 0 of the ramp (YYYY-MM-DD, on the provider's clock). */
  start: string;
  first: number;
  growth: number;
  until: number;
}

/** What a provider definition may carry about its quotas (checked by src/config.ts for every kind). */
export interface ProviderQuotaFields {
  quota?: QuotaSettings;
  warmup?: WarmupSettings;
}

/** Which limit was spent. `second` never is (it paces); listed for completeness of the tally's type. */
export type QuotaLimit = 'day' | 'hour' | 'second' | 'warmup';

/** One counted period a send takes from now: the provider's hour or day (perDay and warm-up share the day). */
export interface QuotaPeriod {
  /** The limit that holds for this counter now (the day counter: `day` or `warmup`, whichever allows less). */
  limit: Exclude<QuotaLimit, 'second'>;
  /** The counter's key in the store: `day:2026-12-02` or `hour:2026-12-02T13+01:00` (local time and offset). */
  key: string;
  allowance: number;
  /** When the period ends (epoch ms): the next hour or day boundary on the provider's clock. */
  resetAt: number;
}

/** A period with its use so far (the store's answer). */
export interface QuotaUsage extends QuotaPeriod {
  used: number;
}

/** A quota that was spent: what the send activity tells the workflow. */
export interface QuotaSpent {
  provider: string;
  limit: QuotaLimit;
  used: number;
  allowance: number;
  /** epoch ms on the quota's clock */
  resetAt: number;
  /** How long from the quota's now until the reset (the workflow's timer; the quota's clock may not be the wall clock). */
  resetInMs: number;
  onQuota: OnQuota;
  /** Rows of the batch not sent for it (back to pending). */
  heldBack: number;
}

export const DEFAULT_QUOTA_ZONE = 'UTC';

// ── Settings ────────────────────────────────────────────────────────────────────────────────

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isPositiveInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;

/** Whether `zone` is an IANA time zone this runtime knows. */
export function isTimeZone(zone: unknown): zone is string {
  if (typeof zone !== 'string' || zone === '') return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

export function parseQuota(raw: unknown, path: string, problems: string[]): QuotaSettings | undefined {
  if (!isObject(raw)) {
    problems.push(`${path}: expected a mapping with perSecond, perHour and/or perDay (and zone, onQuota), got ${quote(raw)}`);
    return undefined;
  }
  const known = ['perSecond', 'perHour', 'perDay', 'zone', 'onQuota'];
  for (const key of Object.keys(raw)) if (!known.includes(key)) problems.push(`${path}.${key}: unknown setting (expected ${known.join(', ')})`);
  const before = problems.length;
  for (const key of ['perSecond', 'perHour', 'perDay'] as const) {
    const v = raw[key];
    if (v !== undefined && !isPositiveInt(v)) problems.push(`${path}.${key}: expected a whole number of messages above 0, got ${quote(v)}`);
  }
  // Without a limit it still sets the clock and onQuota of a warm-up ramp.
  if (!known.some((k) => raw[k] !== undefined)) problems.push(`${path}: set perSecond, perHour, perDay (or the zone and onQuota of a warm-up)`);
  if (raw.zone !== undefined && !isTimeZone(raw.zone))
    problems.push(`${path}.zone: expected an IANA time zone (e.g. UTC, America/New_York, Europe/Berlin), got ${quote(raw.zone)}`);
  if (raw.onQuota !== undefined && !ON_QUOTA.includes(raw.onQuota as OnQuota))
    problems.push(`${path}.onQuota: expected ${ON_QUOTA.join(' or ')}, got ${quote(raw.onQuota)}`);
  if (problems.length > before) return undefined;
  return {
    ...(raw.perSecond !== undefined ? { perSecond: raw.perSecond as number } : {}),
    ...(raw.perHour !== undefined ? { perHour: raw.perHour as number } : {}),
    ...(raw.perDay !== undefined ? { perDay: raw.perDay as number } : {}),
    zone: (raw.zone as string | undefined) ?? DEFAULT_QUOTA_ZONE,
    onQuota: (raw.onQuota as OnQuota | undefined) ?? 'overflow',
  };
}

const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** Days since 1970-01-01 of a calendar date `YYYY-MM-DD`; undefined when it is not a real date. */
function dayNumber(date: string): number | undefined {
  const m = DATE_RE.exec(date);
  if (!m) return undefined;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const ms = Date.UTC(y, mo - 1, d);
  const back = new Date(ms);
  if (back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d) return undefined;
  return ms / 86_400_000;
}

export function parseWarmup(raw: unknown, path: string, problems: string[]): WarmupSettings | undefined {
  if (!isObject(raw)) {
    problems.push(`${path}: expected a mapping { start: YYYY-MM-DD, first, growth, until }, got ${quote(raw)}`);
    return undefined;
  }
  const known = ['start', 'first', 'growth', 'until'];
  for (const key of Object.keys(raw)) if (!known.includes(key)) problems.push(`${path}.${key}: unknown setting (expected ${known.join(', ')})`);
  const before = problems.length;
  const start = raw.start;
  if (typeof start !== 'string' || dayNumber(start) === undefined)
    problems.push(`${path}.start: expected the ramp's first day as YYYY-MM-DD (on the provider's clock), got ${quote(raw.start)}`);
  if (!isPositiveInt(raw.first)) problems.push(`${path}.first: expected a whole number of messages above 0 (day 0's allowance), got ${quote(raw.first)}`);
  if (typeof raw.growth !== 'number' || !Number.isFinite(raw.growth) || raw.growth < 1 || raw.growth > 100)
    problems.push(`${path}.growth: expected a daily growth factor from 1 to 100 (e.g. 1.5), got ${quote(raw.growth)}`);
  if (!isPositiveInt(raw.until))
    problems.push(`${path}.until: expected a whole number of messages above 0 (the ramp's last allowance), got ${quote(raw.until)}`);
  else if (isPositiveInt(raw.first) && raw.until < raw.first) problems.push(`${path}.until: expected at least first (${raw.first}), got ${quote(raw.until)}`);
  if (problems.length > before) return undefined;
  return { start: start as string, first: raw.first as number, growth: raw.growth as number, until: raw.until as number };
}

// ── The provider's clock ────────────────────────────────────────────────────────────────────

/** The local date (YYYY-MM-DD), hour (00-23) and UTC offset ("+01:00") of an instant in a zone. */
export function localTime(ms: number, zone: string): { date: string; hour: string; offset: string } {
  const wall = new Date(wallAt(ms, zone)).toISOString();
  const minutes = Math.round(offsetAt(ms, zone) / 60_000);
  const abs = Math.abs(minutes);
  const offset = `${minutes < 0 ? '-' : '+'}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
  return { date: wall.slice(0, 10), hour: wall.slice(11, 13), offset };
}

const dayKey = (ms: number, zone: string) => `day:${localTime(ms, zone).date}`;
/** The offset is part of the hour: the hour repeated when the clocks go back is a new one. */
const hourKey = (ms: number, zone: string) => {
  const t = localTime(ms, zone);
  return `hour:${t.date}T${t.hour}${t.offset}`;
};

/** The first instant after `ms` whose key differs (the period's end), by bisection within `span`. */
function nextChange(ms: number, key: (t: number) => string, span: number): number {
  const now = key(ms);
  let lo = ms;
  let hi = ms + span;
  while (key(hi) === now) hi += span;
  while (hi - lo > 1) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if (key(mid) === now) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** When the provider's day that holds `ms` ends (its next local midnight, or whenever the date turns where midnight is skipped). */
export function nextDayStart(ms: number, zone: string): number {
  return nextChange(ms, (t) => dayKey(t, zone), 26 * 3_600_000);
}

/** When the provider's hour that holds `ms` ends. */
export function nextHourStart(ms: number, zone: string): number {
  return nextChange(ms, (t) => hourKey(t, zone), 3_600_000);
}

// ── Allowances ──────────────────────────────────────────────────────────────────────────────

/** The ramp's day number of a local date (0 on `start`; before it, 0 as well). */
export function warmupDay(w: WarmupSettings, localDate: string): number {
  return Math.max(0, dayNumber(localDate)! - dayNumber(w.start)!);
}

/** Day d's allowance: min(until, floor(first × growth^d)); undefined once the ramp is over (the day after the first that reached `until`). */
export function warmupAllowance(w: WarmupSettings, day: number): number | undefined {
  const at = (d: number) => Math.min(w.until, Math.floor(w.first * Math.pow(w.growth, d)));
  if (day > 0 && at(day - 1) >= w.until) return undefined;
  return at(day);
}

/** The counted periods a send takes from at `nowMs` (empty: no hourly, daily or warm-up limit). */
export function quotaPeriods(q: ProviderQuotaFields, nowMs: number): QuotaPeriod[] {
  const zone = q.quota?.zone ?? DEFAULT_QUOTA_ZONE;
  const periods: QuotaPeriod[] = [];
  const warm = q.warmup ? warmupAllowance(q.warmup, warmupDay(q.warmup, localTime(nowMs, zone).date)) : undefined;
  const perDay = q.quota?.perDay;
  if (perDay !== undefined || warm !== undefined) {
    const warmupHolds = warm !== undefined && (perDay === undefined || warm < perDay);
    periods.push({
      limit: warmupHolds ? 'warmup' : 'day',
      key: dayKey(nowMs, zone),
      allowance: warmupHolds ? warm : perDay!,
      resetAt: nextDayStart(nowMs, zone),
    });
  }
  if (q.quota?.perHour !== undefined) {
    periods.push({ limit: 'hour', key: hourKey(nowMs, zone), allowance: q.quota.perHour, resetAt: nextHourStart(nowMs, zone) });
  }
  return periods;
}

/** Every counted limit today, each on its own (perDay and the warm-up ramp both shown, on the day counter they share), with the ramp's day. */
export function quotaLimitsNow(q: ProviderQuotaFields, nowMs: number): Array<QuotaPeriod & { warmupDay?: number }> {
  const zone = q.quota?.zone ?? DEFAULT_QUOTA_ZONE;
  const out: Array<QuotaPeriod & { warmupDay?: number }> = [];
  const day = { key: dayKey(nowMs, zone), resetAt: nextDayStart(nowMs, zone) };
  if (q.quota?.perDay !== undefined) out.push({ limit: 'day', allowance: q.quota.perDay, ...day });
  if (q.warmup) {
    const d = warmupDay(q.warmup, localTime(nowMs, zone).date);
    const allowance = warmupAllowance(q.warmup, d);
    if (allowance !== undefined) out.push({ limit: 'warmup', allowance, warmupDay: d, ...day });
  }
  if (q.quota?.perHour !== undefined) out.push({ limit: 'hour', key: hourKey(nowMs, zone), allowance: q.quota.perHour, resetAt: nextHourStart(nowMs, zone) });
  return out;
}

/** Whether a provider has any counted limit (per hour, per day or a warm-up ramp). */
export function hasCountedQuota(q: ProviderQuotaFields): boolean {
  return q.warmup !== undefined || q.quota?.perDay !== undefined || q.quota?.perHour !== undefined;
}

/**
 * How many of `want` sends the periods grant with `used` so far (by key), and when short, the
 * limit that binds: the one with the least room, and of equal room the one that resets last
 * (an hour's reset does not help while the day is spent).
 */
export function grantWithin(periods: QuotaPeriod[], used: Record<string, number>, want: number): { granted: number; binding?: QuotaUsage } {
  let granted = want;
  let binding: QuotaUsage | undefined;
  let bindingRoom = Infinity;
  for (const p of periods) {
    const u = used[p.key] ?? 0;
    const room = Math.max(0, p.allowance - u);
    granted = Math.min(granted, room);
    if (room < bindingRoom || (room === bindingRoom && binding && p.resetAt > binding.resetAt)) {
      bindingRoom = room;
      binding = { ...p, used: u };
    }
  }
  return granted < want && binding ? { granted, binding: { ...binding, used: binding.used + granted } } : { granted };
}

/** 50000 -> "50,000". */
export const thousands = (n: number): string => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');

/** "50,000/day", "2,000/hour", "1,125/day warm-up allowance": a limit as people read it. */
export function describeLimit(limit: QuotaLimit, allowance: number): string {
  return limit === 'warmup' ? `${thousands(allowance)}/day warm-up allowance` : `${thousands(allowance)}/${limit}`;
}
