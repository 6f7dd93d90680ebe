/**
 * Routing by weight: `providers: [{ name: ses, weight: 70 }, { name: postmark, weight: 30 }]`.
 * Pure and deterministic (no Temporal, no clock, no randomness): the campaign workflow and the
 * failover reducer (./failover.ts) decide with it, the drill's ledger check and the tests repeat it.
 *
 * Which provider sends a batch depends only on the batch's index (floor((atSeq - 1) / batchSize))
 * and the set of healthy weighted providers, so a replay, a retried batch and a run after
 * continue-as-new all pick the same one. The schedule is a smooth apportionment: the first
 * provider takes batch k when ceil((k + 1)·w₁/W) > ceil(k·w₁/W) (W the sum of the weights), the
 * others share the batches it leaves the same way, in order. Any prefix of n batches gives each
 * provider its share of n within a batch or two, whatever the batch size. A provider that is down
 * is left out of the set: its share goes to the others in proportion to their weights; it comes
 * back into the set (and takes its share again) when it recovers.
 */
import type { ProviderPlan } from './campaign-api';

/** Provider name -> weight (a whole number from 1 to MAX_WEIGHT). */
export type ProviderWeights = Record<string, number>;

/** One entry of a provider list: a name (priority order) or a weighted provider. */
export type ProviderChoice = string | { name: string; weight: number };

/** Largest weight: keeps every product of the schedule exact in floating point. */
export const MAX_WEIGHT = 1_000_000;

/** A plan with weights: batches are split by weight instead of going to the first healthy provider. */
export function isWeighted(plan: ProviderPlan): plan is ProviderPlan & { weights: ProviderWeights } {
  return plan.weights !== undefined;
}

/** The providers of the plan in order that it has not found down and whose shared circuit is not open. */
export function healthyProviders(plan: ProviderPlan, sharedDown: Record<string, string> = {}): string[] {
  return plan.order.filter((name) => plan.down[name] === undefined && sharedDown[name] === undefined);
}

/** The index (from 0) of the batch that starts at recipient `atSeq` (from 1). */
export function batchIndexOf(atSeq: number, batchSize: number): number {
  return Math.floor((Math.max(1, atSeq) - 1) / Math.max(1, batchSize));
}

const ceilDiv = (a: number, b: number) => Math.floor((a + b - 1) / b);

/**
 * The provider of batch `index` when `providers` (in order) share the batches by `weights`.
 * Undefined only when `providers` is empty.
 */
export function weightedPick(index: number, providers: readonly string[], weights: ProviderWeights): string | undefined {
  let k = index;
  let rest = providers.reduce((sum, p) => sum + (weights[p] ?? 0), 0);
  for (let i = 0; i < providers.length - 1; i++) {
    const w = weights[providers[i]] ?? 0;
    if (rest <= 0) break;
    // How many of batches 0..k (0..k-1) fall to this provider: ceil((k+1)·w/W) (ceil(k·w/W)).
    const upTo = ceilDiv((k + 1) * w, rest);
    if (upTo > ceilDiv(k * w, rest)) return providers[i];
    // The batch is one of the others': its index among the batches this provider left.
    k -= upTo;
    rest -= w;
  }
  return providers[providers.length - 1];
}

/** The provider of the batch starting at `atSeq` in a weighted plan, among its healthy providers. */
export function weightedProviderFor(plan: ProviderPlan & { weights: ProviderWeights }, sharedDown: Record<string, string>, atSeq: number, batchSize: number) {
  return weightedPick(batchIndexOf(atSeq, batchSize), healthyProviders(plan, sharedDown), plan.weights);
}

/** Each provider's intended share now, in percent (one decimal): its weight among the healthy ones, 0 when down. */
export function intendedShare(plan: ProviderPlan, sharedDown: Record<string, string> = {}): Record<string, number> {
  const weights = plan.weights ?? {};
  const healthy = healthyProviders(plan, sharedDown);
  const total = healthy.reduce((sum, p) => sum + (weights[p] ?? 0), 0);
  return Object.fromEntries(plan.order.map((p) => [p, healthy.includes(p) && total > 0 ? Math.round(((weights[p] ?? 0) * 1000) / total) / 10 : 0]));
}

/** "ses 70 %, postmark 30 %" (providers with no share left out; "nobody" when none has one). */
export function splitText(share: Record<string, number>): string {
  const parts = Object.entries(share)
    .filter(([, pct]) => pct > 0)
    .map(([p, pct]) => `${p} ${pct} %`);
  return parts.join(', ') || 'nobody';
}

/**
 * A move between two sets of healthy providers: the provider whose share fell most (`from`) and
 * the one whose share rose most (`to`; undefined when none is left). One switch names them.
 */
export function splitMove(weights: ProviderWeights, order: readonly string[], before: readonly string[], after: readonly string[]) {
  const shareOf = (set: readonly string[]) => {
    const total = set.reduce((sum, p) => sum + (weights[p] ?? 0), 0);
    return (p: string) => (set.includes(p) && total > 0 ? (weights[p] ?? 0) / total : 0);
  };
  const was = shareOf(before);
  const is = shareOf(after);
  let from: string | undefined;
  let to: string | undefined;
  for (const p of order) {
    const change = is(p) - was(p);
    if (change < 0 && (from === undefined || change < is(from) - was(from))) from = p;
    if (change > 0 && (to === undefined || change > is(to) - was(to))) to = p;
  }
  return { from, to };
}

/** A weighted plan's healthy set as last used (`sharing`) differs from `healthy`. */
export function sharingChanged(plan: ProviderPlan, healthy: readonly string[]): boolean {
  const last = plan.sharing ?? [];
  return last.length !== healthy.length || last.some((p) => !healthy.includes(p));
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const shown = (v: unknown): string => {
  if (v === undefined) return 'nothing';
  const s = typeof v === 'string' ? `'${v}'` : JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
};

export interface ParsedProviders {
  /** Provider names in order. */
  order: string[];
  /** Weights, when the list is weighted. */
  weights?: ProviderWeights;
  /** Each problem names its field (`providers[1].weight: ...`); empty when valid. */
  problems: string[];
}

/**
 * A provider list, either names in priority order (`[ses, postmark]`) or every entry weighted
 * (`[{ name: ses, weight: 70 }, { name: postmark, weight: 30 }]`). Mixed forms, bad weights
 * (not a whole number from 1 to MAX_WEIGHT), missing or unknown names and names listed twice are problems.
 * @param field the list's name in errors (`providers`, `drills.providers`)
 * @param known when given, the only names allowed (`configured` names them in the error)
 */
export function parseProviderList(raw: unknown, opts: { field?: string; known?: readonly string[] } = {}): ParsedProviders {
  const field = opts.field ?? 'providers';
  if (!Array.isArray(raw) || raw.length === 0)
    return {
      order: [],
      problems: [`${field}: expected a non-empty list of provider names in priority order, or of { name, weight } entries, got ${shown(raw)}`],
    };
  const weighted = isRecord(raw[0]);
  const problems: string[] = [];
  const order: string[] = [];
  const weights: ProviderWeights = {};
  const seen = new Set<string>();
  raw.forEach((entry, i) => {
    const at = `${field}[${i}]`;
    let name: unknown = entry;
    let nameField = at;
    if (weighted) {
      if (!isRecord(entry)) {
        problems.push(`${at}: expected { name, weight } like ${field}[0] (a list is all names in priority order, or all weighted), got ${shown(entry)}`);
        return;
      }
      for (const key of Object.keys(entry)) if (key !== 'name' && key !== 'weight') problems.push(`${at}.${key}: unknown field (expected name, weight)`);
      name = entry.name;
      nameField = `${at}.name`;
      const w = entry.weight;
      if (typeof w !== 'number' || !Number.isInteger(w) || w < 1) problems.push(`${at}.weight: expected a whole number above 0, got ${shown(w)}`);
      else if (w > MAX_WEIGHT) problems.push(`${at}.weight: expected at most ${MAX_WEIGHT}, got ${w}`);
      else if (typeof name === 'string') weights[name] = w;
    } else if (isRecord(entry)) {
      problems.push(`${at}: expected a provider name like ${field}[0] (a list is all names in priority order, or all { name, weight }), got ${shown(entry)}`);
      return;
    }
    if (typeof name !== 'string' || name.trim() === '') {
      problems.push(`${nameField}: expected a provider name, got ${shown(name)}`);
      return;
    }
    if (opts.known && !opts.known.includes(name))
      problems.push(`${nameField}: unknown provider ${shown(name)} (configured: ${opts.known.join(', ') || 'none'})`);
    else if (seen.has(name)) problems.push(`${nameField}: '${name}' is listed twice`);
    seen.add(name);
    order.push(name);
  });
  return { order, ...(weighted ? { weights } : {}), problems };
}

/** A parsed list back in its entry form: names, or { name, weight } entries. */
export function providerChoices(order: readonly string[], weights?: ProviderWeights): ProviderChoice[] {
  return weights ? order.map((name) => ({ name, weight: weights[name] })) : [...order];
}

/** "ses 70, postmark 30" or "ses → postmark". */
export function providersText(order: readonly string[], weights?: ProviderWeights): string {
  return weights ? order.map((p) => `${p} ${weights[p]}`).join(', ') : order.join(' → ');
}
