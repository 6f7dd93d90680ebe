/**
 * The `drills:` section of the worker config: who a failover drill mails (seed addresses the
 * team owns; never a real audience), from which sender, how big its synthetic campaign is and
 * which providers it exercises. Lives on the worker only: the drill workflow's history gets
 * counts and provider names, never the seed addresses.
 */
import { msToNumber } from '@temporalio/common';
import { normaliseAddress, parseSender } from './address';
import { quote } from './quote-value';
import { parseProviderList } from '../workflows/weighted-routing';

export interface DrillSettings {
  /** Sender of probe and synthetic messages ("Name <addr>" or addr). */
  from: string;
  /** Addresses the team owns; every probe mails each of them, the synthetic audience plus-addresses them. */
  seeds: string[];
  /** Size of the synthetic failover campaign. Default 20. */
  recipients: number;
  /** Its batch size (at most half the recipients, so batches run on both sides of the switch). Default 5. */
  batchSize: number;
  /** Providers to drill, in priority order (the first two are primary and secondary). Default: all configured, in config order. */
  providers: string[];
  /**
   * Weighted drill (`providers: [{ name, weight }, ...]`): provider -> weight. The synthetic campaign
   * splits its batches between primary and secondary by weight until the primary is forced down.
   */
  weights?: Record<string, number>;
  /** How long the synthetic campaign may take before the drill gives up on it. Default 10 minutes. */
  timeoutMs: number;
}

export const DRILL_DEFAULTS = { recipients: 20, batchSize: 5, timeoutMs: 10 * 60_000 } as const;
const MAX_SEEDS = 20;
const MAX_RECIPIENTS = 1000;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
/** A value given, quoted and clipped for an error message ("nothing" when absent). */
const show = quote;

/** A duration like 90s, 10m, 24h, 1d or milliseconds as a number; undefined when it is not one. */
export function parseDuration(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v > 0 ? v : undefined;
  if (typeof v !== 'string' || !/^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)\s*$/i.test(v)) return undefined;
  try {
    const ms = msToNumber(v.trim().toLowerCase() as Parameters<typeof msToNumber>[0]);
    return ms > 0 ? ms : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Validates `drills:`; problems are pushed with their field path (drills.seeds[1]: ...).
 * @param providerNames the configured providers, in config order
 */
export function parseDrillSettings(raw: unknown, providerNames: string[], problems: string[]): DrillSettings | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!isObject(raw)) {
    problems.push(`drills: expected a mapping with from and seeds, got ${show(raw)}`);
    return undefined;
  }
  const before = problems.length;
  for (const key of Object.keys(raw)) {
    if (!['from', 'seeds', 'recipients', 'batchSize', 'providers', 'timeout'].includes(key))
      problems.push(`drills.${key}: unknown field (expected from, seeds, recipients, batchSize, providers, timeout)`);
  }

  let from = '';
  if (typeof raw.from !== 'string') problems.push(`drills.from: expected the sender address of drill messages, got ${show(raw.from)}`);
  // eslint-disable-next-line no-control-regex
  else if (/[\u0000-\u001f\u007f]/.test(raw.from)) problems.push(`drills.from: must be one line without control characters, got ${show(raw.from)}`);
  else {
    const sender = parseSender(raw.from);
    if (!sender.ok) problems.push(`drills.from: invalid sender address ${show(raw.from)} (${sender.reason})`);
    else from = sender.from;
  }

  const seeds: string[] = [];
  if (!Array.isArray(raw.seeds) || raw.seeds.length === 0)
    problems.push(`drills.seeds: expected a non-empty list of addresses your team owns, got ${show(raw.seeds)}`);
  else if (raw.seeds.length > MAX_SEEDS) problems.push(`drills.seeds: at most ${MAX_SEEDS} seed addresses, got ${raw.seeds.length}`);
  else {
    raw.seeds.forEach((s, i) => {
      const addr = typeof s === 'string' ? normaliseAddress(s) : undefined;
      if (!addr?.ok) problems.push(`drills.seeds[${i}]: expected an email address, got ${show(s)}${addr && !addr.ok ? ` (${addr.reason})` : ''}`);
      else if (seeds.includes(addr.email)) problems.push(`drills.seeds[${i}]: '${addr.email}' is listed twice`);
      else if (addr.email.split('@')[0].includes('+'))
        problems.push(`drills.seeds[${i}]: '${addr.email}' already has a +tag (drills plus-address each seed themselves)`);
      else seeds.push(addr.email);
    });
  }

  const intField = (key: 'recipients' | 'batchSize', dflt: number, min: number, max: number): number => {
    const v = raw[key] ?? dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      problems.push(`drills.${key}: expected a whole number from ${min} to ${max}, got ${show(raw[key])}`);
      return dflt;
    }
    return v;
  };
  const recipients = intField('recipients', DRILL_DEFAULTS.recipients, 2, MAX_RECIPIENTS);
  const batchSize = intField('batchSize', DRILL_DEFAULTS.batchSize, 1, MAX_RECIPIENTS);
  if (batchSize * 2 > recipients)
    problems.push(
      `drills.batchSize: must be at most half of drills.recipients (${recipients}) so batches run on both sides of the forced switch, got ${batchSize}`,
    );

  let providers = providerNames;
  let weights: Record<string, number> | undefined;
  if (raw.providers !== undefined) {
    if (!Array.isArray(raw.providers)) problems.push(`drills.providers: expected a list of provider names in priority order, got ${show(raw.providers)}`);
    else if (raw.providers.some((p) => typeof p === 'object' && p !== null)) {
      // Weighted: { name, weight } entries.
      const parsed = parseProviderList(raw.providers, { field: 'drills.providers', known: providerNames });
      problems.push(...parsed.problems);
      providers = parsed.order;
      weights = parsed.weights;
    } else {
      const seen = new Set<string>();
      raw.providers.forEach((p, i) => {
        if (typeof p !== 'string' || !providerNames.includes(p))
          problems.push(`drills.providers[${i}]: unknown provider ${show(p)} (configured: ${providerNames.join(', ') || 'none'})`);
        else if (seen.has(p)) problems.push(`drills.providers[${i}]: '${p}' is listed twice`);
        if (typeof p === 'string') seen.add(p);
      });
      providers = raw.providers.filter((p): p is string => typeof p === 'string');
    }
  }
  if (providers.length < 2)
    problems.push(
      `drills.providers: a failover drill needs at least two providers (primary and secondary), got ${providers.length}${raw.providers === undefined ? ' configured' : ''}`,
    );

  const timeoutMs = raw.timeout === undefined ? DRILL_DEFAULTS.timeoutMs : parseDuration(raw.timeout);
  if (timeoutMs === undefined) problems.push(`drills.timeout: expected a duration like 90s, 10m or 1h, got ${show(raw.timeout)}`);

  if (problems.length > before) return undefined;
  return { from, seeds, recipients, batchSize, providers: [...providers], ...(weights ? { weights } : {}), timeoutMs: timeoutMs! };
}
