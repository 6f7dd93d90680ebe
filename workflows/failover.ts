/**
 * The failover decision, in one place. Pure and deterministic (runs inside workflow code).
 *
 * A campaign has a provider plan: names in priority order, and the ones it has found
 * down, with why. The active provider is the first in order that is not down. When the
 * active provider fails at the provider level it is marked down and the campaign moves
 * to the next; with none left the campaign holds (pauses with a reason) instead of failing.
 * Shared provider health (one circuit per provider across campaigns, workflows/provider-health.ts)
 * plugs in as `sharedDown`: a provider whose circuit is open is skipped like one found down here.
 */

import type { ProviderPlan } from './campaign-api';

export type { ProviderPlan };

export function initialPlan(order: string[]): ProviderPlan {
  return { order: [...order], down: {} };
}

/**
 * The first provider in order that this campaign has not found down and, when shared health is
 * given (provider -> why its circuit is open), whose shared circuit is not open.
 */
export function activeProvider(plan: ProviderPlan, sharedDown: Record<string, string> = {}): string | undefined {
  return plan.order.find((name) => plan.down[name] === undefined && sharedDown[name] === undefined);
}

export interface FailoverDecision {
  plan: ProviderPlan;
  /** The provider to continue on, or undefined when none is left (hold). */
  next: string | undefined;
}

export function onProviderFailure(plan: ProviderPlan, failed: string, reason: string): FailoverDecision {
  const next = { order: plan.order, down: { ...plan.down, [failed]: reason } };
  return { plan: next, next: activeProvider(next) };
}

/** A new provider order from an operator: everything in it gets a fresh chance. */
export function withOrder(order: string[]): ProviderPlan {
  return initialPlan(order);
}

/** Resume after holding with no provider left: try the plan again from the top. */
export function retryAll(plan: ProviderPlan): ProviderPlan {
  return initialPlan(plan.order);
}

/** Problems with a proposed provider order (empty when valid). */
export function providerOrderProblems(order: unknown, known: string[]): string[] {
  if (!Array.isArray(order) || order.length === 0) return ['providers: expected a non-empty list of provider names'];
  const problems: string[] = [];
  const seen = new Set<string>();
  order.forEach((name, i) => {
    if (typeof name !== 'string') problems.push(`providers[${i}]: expected a provider name, got ${JSON.stringify(name)}`);
    else if (!known.includes(name)) problems.push(`providers[${i}]: unknown provider '${name}' (known: ${known.join(', ')})`);
    else if (seen.has(name)) problems.push(`providers[${i}]: '${name}' is listed twice`);
    seen.add(String(name));
  });
  return problems;
}
