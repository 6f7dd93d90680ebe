/**
 * What the campaign workflow shows and accepts of weighted routing: the progress query's
 * `weights`, `intendedShare` and `activeProvider`, the Web UI details' split lines, and the
 * setProviders update's entries (names, or `{ name, weight }`). Pure: used by ./campaign.ts.
 */
import type { CampaignProgress, ProviderPlan } from './campaign-api';
import { healthyProviders, intendedShare, isWeighted, parseProviderList, splitText, type ProviderChoice, type ProviderWeights } from './weighted-routing';

export type { ProviderChoice };

/** The progress query's routing fields: nothing for a priority plan (its progress is as before weights). */
export function routingProgress(plan: ProviderPlan, sharedDown: Record<string, string>): Partial<CampaignProgress> {
  if (!isWeighted(plan)) return {};
  const healthy = healthyProviders(plan, sharedDown);
  return {
    ...(healthy.length ? { activeProvider: healthy.join('+') } : {}),
    weights: plan.weights,
    intendedShare: intendedShare(plan, sharedDown),
  };
}

const pct = (n: number, of: number) => (of > 0 ? `${(Math.round((n * 1000) / of) / 10).toFixed(1)} %` : '-');

/** The Web UI details' lines on accepted messages per provider, and for a weighted campaign the split (intended and so far). */
export function routingDetails(p: CampaignProgress): string[] {
  const accepted = Object.entries(p.acceptedByProvider);
  if (!p.weights) return accepted.map(([name, n]) => `- accepted via ${name}: ${n}`);
  const share = p.intendedShare ?? {};
  const names = [...p.providers, ...accepted.map(([name]) => name).filter((name) => !p.providers.includes(name))];
  return [
    '',
    `Split by weight: ${splitText(share)} (weights ${p.providers.map((name) => `${name} ${p.weights?.[name]}`).join(', ')})`,
    '',
    ...names.map(
      (name) =>
        `- accepted via ${name}: ${p.acceptedByProvider[name] ?? 0} (${pct(p.acceptedByProvider[name] ?? 0, p.accepted)}; intended ${share[name] ?? 0} %${p.providersDown[name] !== undefined || p.sharedDown[name] !== undefined ? ', down' : ''})`,
    ),
  ];
}

/** setProviders' entries as an operator-order event's fields: names in order, and weights when weighted. */
export function parseProviderChoices(choices: ProviderChoice[]): { providers: string[]; weights?: ProviderWeights } {
  const { order, weights } = parseProviderList(choices);
  return weights ? { providers: order, weights } : { providers: order };
}

/**
 * Throws with every problem of setProviders' entries: a list of names is checked as before
 * weights (`orderProblems`), a list with `{ name, weight }` entries by the weighted parser.
 */
export function validateProviderChoices(choices: unknown, known: string[], orderProblems: (order: unknown, known: string[]) => string[]): void {
  const weighted = Array.isArray(choices) && choices.some((c) => typeof c === 'object' && c !== null);
  const problems = weighted ? parseProviderList(choices, { known }).problems : orderProblems(choices, known);
  if (problems.length) throw new Error(problems.join('; '));
}
