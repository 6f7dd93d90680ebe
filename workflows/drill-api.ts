/**
 * The failover drill's public surface: its input, report, progress query and ids. Definitions
 * only, importable from the drill and campaign workflows, the client, the CLI and tests; the
 * workflow itself is in ./drill.ts.
 */
import * as wf from '@temporalio/workflow';

export interface DrillInput {
  /** Names the drill (its synthetic campaign is `drill-<drillId>`). Default: from the workflow id and start time. */
  drillId?: string;
}

export interface DrillCheck {
  /** probe, failover switch, failover delivery, exactly once, setup */
  check: string;
  /** provider name, or "a → b" */
  provider: string;
  passed: boolean;
  detail: string;
}

export type DrillPhase = 'planning' | 'probing' | 'failover' | 'verifying' | 'done';

export interface DrillReport {
  drillId: string;
  passed: boolean;
  phase: DrillPhase;
  checks: DrillCheck[];
  /** The synthetic campaign's id (also its workflow id), once started. */
  campaignId?: string;
  /** One line: what passed, or what failed and why. */
  summary: string;
  /** workflow time, ISO 8601 */
  startedAt: string;
  finishedAt?: string;
}

export const drillProgressQuery = wf.defineQuery<DrillReport>('drillProgress');

export const DRILL_FORCED_REASON = 'failover drill: primary forced down';
export const DRILL_WORKFLOW_PREFIX = 'mailover-drill';

/** What a drill's synthetic campaign tells its drill (the parent workflow), instead of being polled. */
export interface DrillCampaignNotice {
  campaignId: string;
  /** holding: it started holding (it would wait for an operator); completed, cancelled, failed: it ended. */
  status: 'holding' | 'completed' | 'cancelled' | 'failed';
  /** Why it holds, or failed. */
  reason?: string;
}

/** Sent by a campaign started with `notifyParent` (a drill's synthetic campaign) to its parent workflow. */
export const drillCampaignSignal = wf.defineSignal<[DrillCampaignNotice]>('drillCampaign');

/**
 * Patch id of the drill waiting for its campaign's signal (the campaign started with `notifyParent`)
 * instead of an activity polling the campaign's progress query (`awaitCampaignHold`); drills
 * recorded before it replay with the activity.
 */
export const DRILL_CAMPAIGN_SIGNAL_PATCH = 'drill-campaign-signal';
