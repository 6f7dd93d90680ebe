/**
 * The reputation breaker: hard-bounce and complaint rates of a campaign on each provider it sends
 * through, over a sliding window of its last sends, judged against the worker's thresholds.
 *
 * Pure: no store, no clock. The store counts a window (src/store/reputation.ts): the campaign's last
 * `window` rows a provider answered for (accepted, or rejected once handed over or as a hard bounce),
 * the hard bounces among them (SMTP answers, webhooks, DSNs) and the complaints reported for them.
 * This module decides whether it crosses a threshold and says so in words. A crossing pauses the campaign (hold kind `reputation`): it never
 * fails over, since moving a bad list to another ESP burns that one's reputation too.
 *
 * Defaults: hard bounces 5 %, complaints 0.1 %. Gmail's bulk-sender guidelines ask senders to keep
 * the spam rate reported in Postmaster Tools below 0.1 % and never let it reach 0.3 %
 * (https://support.google.com/a/answer/81126): pausing at 0.1 % leaves room before that line.
 */
import { quote } from './quote-value';

/** `reputation:` in the worker config. */
export interface ReputationSettings {
  /** Pause when more than this share of the window's sends hard-bounced (percent, 0 < p <= 100). */
  hardBouncePercent: number;
  /** Pause when more than this share of the window's sends were reported as spam (percent, 0 < p <= 100). */
  complaintPercent: number;
  /** The window: a campaign's last this many sends on one provider. */
  window: number;
  /** No judgement before the window holds at least this many sends (a few early complaints are not a rate). */
  minSends: number;
}

export const DEFAULT_REPUTATION: Readonly<ReputationSettings> = { hardBouncePercent: 5, complaintPercent: 0.1, window: 5000, minSends: 1000 };

/** One provider's window of a campaign's sends, as the store counts it. */
export interface SendWindow {
  provider: string;
  /** Sends in the window (rows the provider answered for), at most `window`. */
  sends: number;
  /** Of them, hard bounces: rejected as a hard bounce, or reported `failed-permanent` afterwards. */
  hardBounces: number;
  /** Of them, reported as spam (`complained`). */
  complaints: number;
}

export type ReputationMeasure = 'hard-bounces' | 'complaints';
export const REPUTATION_MEASURES: readonly ReputationMeasure[] = ['hard-bounces', 'complaints'];

/** A window over a threshold. Ids, counts and names only (it enters workflow history). */
export interface ReputationBreach {
  campaignId: string;
  provider: string;
  measure: ReputationMeasure;
  /** Hard bounces or complaints in the window. */
  count: number;
  sends: number;
  /** count / sends, in percent. */
  ratePercent: number;
  thresholdPercent: number;
}

/** The rate of one measure in a window, in percent (0 for an empty window). */
export function ratePercent(w: SendWindow, measure: ReputationMeasure): number {
  if (w.sends <= 0) return 0;
  return ((measure === 'complaints' ? w.complaints : w.hardBounces) / w.sends) * 100;
}

/** The threshold of one measure, in percent. */
export function thresholdPercent(s: ReputationSettings, measure: ReputationMeasure): number {
  return measure === 'complaints' ? s.complaintPercent : s.hardBouncePercent;
}

/** Every threshold a window crosses (strictly above it), once it holds `minSends` sends; complaints first. */
export function judgeWindow(campaignId: string, w: SendWindow, s: ReputationSettings): ReputationBreach[] {
  if (w.sends < s.minSends || w.sends <= 0) return [];
  const breaches: ReputationBreach[] = [];
  for (const measure of ['complaints', 'hard-bounces'] as const) {
    const rate = ratePercent(w, measure);
    const threshold = thresholdPercent(s, measure);
    if (rate > threshold) {
      breaches.push({
        campaignId,
        provider: w.provider,
        measure,
        count: measure === 'complaints' ? w.complaints : w.hardBounces,
        sends: w.sends,
        ratePercent: rate,
        thresholdPercent: threshold,
      });
    }
  }
  return breaches;
}

/**
 * The breach to pause on among a campaign's windows (one per provider): the one furthest over its
 * threshold (rate / threshold), complaints before hard bounces when equal; undefined when none crosses.
 */
export function worstBreach(campaignId: string, windows: SendWindow[], s: ReputationSettings): ReputationBreach | undefined {
  let worst: ReputationBreach | undefined;
  for (const w of windows) {
    for (const b of judgeWindow(campaignId, w, s)) {
      if (!worst || b.ratePercent / b.thresholdPercent > worst.ratePercent / worst.thresholdPercent) worst = b;
    }
  }
  return worst;
}

/** A percentage as people read it: `0.42 %`, `5 %`, `0.0031 %` (at most two decimals, two significant digits below 0.01). */
export function formatPercent(p: number): string {
  if (p === 0) return '0 %';
  const text = p < 0.01 ? String(Number(p.toPrecision(2))) : String(Number(p.toFixed(2)));
  return `${text} %`;
}

/** A count with thousands separators: `5,000`. */
export function formatCount(n: number): string {
  return Math.round(n)
    .toString()
    .replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

const MEASURE_WORDS: Record<ReputationMeasure, string> = { 'hard-bounces': 'hard bounces', complaints: 'complaints' };

/** The hold's reason: `reputation: complaints 0.42 % (21 of 5,000 sends, threshold 0.1 %) on mailgun for campaign spring`. */
export function breachReason(b: ReputationBreach): string {
  return (
    `reputation: ${MEASURE_WORDS[b.measure]} ${formatPercent(b.ratePercent)} ` +
    `(${formatCount(b.count)} of ${formatCount(b.sends)} sends, threshold ${formatPercent(b.thresholdPercent)}) on ${b.provider} for campaign ${b.campaignId}`
  );
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const SETTINGS_KEYS = ['hardBouncePercent', 'complaintPercent', 'window', 'minSends'] as const;

/** `reputation:` of the worker config; problems name the field and the value. Defaults for what is absent. */
export function parseReputationSettings(raw: unknown, problems: string[], path = 'reputation'): ReputationSettings {
  const out: ReputationSettings = { ...DEFAULT_REPUTATION };
  if (raw === undefined || raw === null) return out;
  if (!isObject(raw)) {
    problems.push(`${path}: expected a mapping (${SETTINGS_KEYS.join(', ')}), got ${quote(raw)}`);
    return out;
  }
  for (const key of Object.keys(raw))
    if (!(SETTINGS_KEYS as readonly string[]).includes(key)) problems.push(`${path}.${key}: unknown setting (expected ${SETTINGS_KEYS.join(', ')})`);
  for (const key of ['hardBouncePercent', 'complaintPercent'] as const) {
    const v = raw[key];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > 100)
      problems.push(`${path}.${key}: expected a percentage above 0 and at most 100 (0.1 means 0.1 %), got ${quote(v)}`);
    else out[key] = v;
  }
  for (const key of ['window', 'minSends'] as const) {
    const v = raw[key];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) problems.push(`${path}.${key}: expected a whole number of sends (1 or more), got ${quote(v)}`);
    else out[key] = v;
  }
  if (out.minSends > out.window) problems.push(`${path}.minSends: ${out.minSends} is more than the window (${out.window} sends): it would never judge`);
  return out;
}
