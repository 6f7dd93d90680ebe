/**
 * Operational events: what the engine tells people about (alerts) and counts (metrics).
 * Workflows raise them through the `notify` activity; they carry names, counts and reasons
 * only, never addresses or secrets, so they are safe in workflow history and in chat.
 */
import type { SwitchCause } from '../workflows/failover';
import type { ReputationMeasure } from './reputation';

export type OpsEvent =
  /** A provider's shared circuit opened: every campaign on it moves to its next provider. */
  | { kind: 'circuit-opened'; provider: string; reason: string; by: 'failures' | 'operator' | 'probe' }
  /** A provider's circuit closed again (a good probe, or an operator marked it up). */
  | { kind: 'circuit-closed'; provider: string; reason: string; by: 'probe' | 'operator' }
  /**
   * One campaign moved from one provider to another (failover, or failback when `failback` is true);
   * `cause` is what happened (absent in events raised before it was recorded).
   */
  | { kind: 'provider-switched'; campaignId: string; from: string; to: string; reason: string; atSeq: number; failback: boolean; cause?: SwitchCause }
  /** A campaign stopped sending: no provider left (or something else needs an operator). */
  | { kind: 'campaign-holding'; campaignId: string; reason: string }
  /**
   * The reputation breaker paused a campaign: its hard-bounce or complaint rate on `provider` crossed
   * the threshold (`reason` has the figures). It holds (kind `reputation`) until an operator resumes it.
   */
  | { kind: 'reputation-paused'; campaignId: string; provider: string; measure: ReputationMeasure; reason: string }
  /** A campaign workflow failed (invalid campaign found late, or a bug). */
  | { kind: 'campaign-failed'; campaignId: string; reason: string }
  /** A failover drill ended; `passed` false alerts. `summary` is a short, human table or sentence. */
  | { kind: 'drill-finished'; drillId: string; passed: boolean; summary: string };

export type OpsEventKind = OpsEvent['kind'];

export const OPS_EVENT_KINDS: readonly OpsEventKind[] = [
  'circuit-opened',
  'circuit-closed',
  'provider-switched',
  'campaign-holding',
  'reputation-paused',
  'campaign-failed',
  'drill-finished',
];

/** One line a person reads in Slack, a log or a pager. */
export function describeOpsEvent(e: OpsEvent): string {
  switch (e.kind) {
    case 'circuit-opened':
      return `provider ${e.provider} is DOWN (circuit opened${e.by === 'operator' ? ' by an operator' : ''}): ${e.reason}`;
    case 'circuit-closed':
      return `provider ${e.provider} is UP again (circuit closed${e.by === 'operator' ? ' by an operator' : ' after a good probe'}): ${e.reason}`;
    case 'provider-switched':
      return `campaign ${e.campaignId} ${e.failback ? 'failed back' : 'switched'} from ${e.from} to ${e.to} at recipient #${e.atSeq}: ${e.reason}`;
    case 'campaign-holding':
      return `campaign ${e.campaignId} is HOLDING (nothing is being sent): ${e.reason}`;
    case 'reputation-paused':
      return `campaign ${e.campaignId} is PAUSED by the reputation breaker (nothing is being sent until an operator resumes it): ${e.reason}`;
    case 'campaign-failed':
      return `campaign ${e.campaignId} FAILED: ${e.reason}`;
    case 'drill-finished':
      return `failover drill ${e.drillId} ${e.passed ? 'passed' : 'FAILED'}: ${e.summary}`;
  }
}

/** Whether an event is bad news (alert receivers may choose to page only on these). */
export function isAlarming(e: OpsEvent): boolean {
  return (
    e.kind === 'circuit-opened' ||
    e.kind === 'campaign-holding' ||
    e.kind === 'reputation-paused' ||
    e.kind === 'campaign-failed' ||
    (e.kind === 'drill-finished' && !e.passed)
  );
}
