/**
 * What crosses between the workflows and the activities: each activity's input and result, the
 * activity interface the workflows proxy, and the ApplicationFailure types the workflows decide on.
 *
 * Types and constants only (no I/O, no Node or Temporal imports): workflow code imports it, the
 * activities implement it (./index.ts builds them from their dependencies). Everything here holds
 * ids, seq ranges, counts, provider names and reasons: never addresses, merge data or secrets.
 */
import type { OpsEvent } from '../src/ops-events';
import type { QuotaSpent } from '../src/quota';
import type { DeferralPolicy, ReleaseHeldInput, ReleaseHeldResult } from '../src/store/types';
import type { CircuitState } from '../workflows/provider-health-api';

/**
 * ApplicationFailure `type`s activities throw and workflows react to (the taxonomy of
 * src/errors.ts: each is also the error class's name there).
 */
export const ERROR_TYPES = {
  /** Retried on the same provider (honouring Retry-After); once the retry budget is spent, the provider counts as unavailable. */
  transient: 'TransientProviderError',
  /** The provider refuses us: switch to the next provider (non-retryable). */
  providerUnavailable: 'ProviderUnavailableError',
  /** The campaign cannot be sent as defined: fail before anything is sent (non-retryable). */
  invalidCampaign: 'InvalidCampaignError',
  /** The provider refused the message itself: the campaign holds with its words (non-retryable). */
  invalidMessage: 'InvalidMessageError',
  /** The worker has no `drills:` config (non-retryable). */
  drillNotConfigured: 'DrillNotConfiguredError',
  /** The campaign's hard-bounce or complaint rate crossed its threshold: pause it (non-retryable; details: the ReputationBreach). */
  reputationBreach: 'ReputationBreachError',
  /** An operational event did not reach every alert target (retryable). */
  alertDelivery: 'AlertDeliveryError',
} as const;

export type ErrorType = (typeof ERROR_TYPES)[keyof typeof ERROR_TYPES];

// prepareCampaign

export interface PrepareInput {
  campaignId: string;
  providers: string[];
}

export interface PrepareResult {
  total: number;
  maxSeq: number;
  /** Provider names this worker can send through (for validating provider updates). */
  knownProviders: string[];
}

// sendBatch

export interface SendBatchInput {
  campaignId: string;
  provider: string;
  fromSeq: number;
  toSeq: number;
  /**
   * 'range' (default): the rows fromSeq..toSeq. 'sweep': rows up to toSeq (the cursor) that still
   * need sending (deferred rows whose time has come, rows released from held), at most `limit`.
   */
  mode?: 'range' | 'sweep';
  limit?: number;
  /** How recipients the provider answers "later" are retried (default DEFAULT_DEFERRAL). */
  deferral?: DeferralPolicy;
  /**
   * The reputation breaker judges only sends from this time on (ISO 8601): an operator resumed the
   * campaign from a reputation hold then. Absent: the whole window.
   */
  reputationSince?: string;
}

/** Final states of one batch's rows (recomputed from the ledger, so retries never double count). */
export interface BatchTally {
  acceptedByProvider: Record<string, number>;
  rejected: number;
  suppressed: number;
  inFlightRecovered: number;
  /** Rows held for an operator (outcome unknown and not settled by a look-up). */
  heldForReview: number;
  /** Rows waiting for their deferred retry. Absent in results recorded before deferrals. */
  deferred?: number;
  /** When the campaign's next deferred row is due (epoch ms), if any is deferred. */
  nextDeferredAt?: number;
  /** A sweep: how many of the rows it took were deferred and how many pending before. */
  swept?: { deferred: number; pending: number };
  /**
   * Rows found in flight are still to be looked up (the attempt ran out of time for them): the
   * workflow sends the same batch again (it is not a failure).
   */
  incomplete?: boolean;
  /**
   * A quota or warm-up allowance of the provider was spent during the batch: its rows beyond the
   * grant were not sent (back to pending). The workflow overflows to the next provider or waits for
   * the reset (`onQuota`). Absent in results recorded before quotas.
   */
  quotaSpent?: QuotaSpent;
}

// releaseHeld

export type ReleaseHeldActivityInput = ReleaseHeldInput & { campaignId: string };
export type { ReleaseHeldResult };

// Shared provider health: watchProviders, probeHealth

export interface WatchProvidersInput {
  providers: string[];
}

/** One provider's circuit as its health workflow sees it now. */
export interface WatchedCircuit {
  circuit: CircuitState;
  /** Why it is not closed. */
  reason?: string;
  /** Who holds it open: an operator (marked down), else failures or a probe. */
  by?: 'failures' | 'operator';
}

export interface WatchProvidersResult {
  /** Each provider's circuit, by provider name. */
  circuits: Record<string, WatchedCircuit>;
  failback: 'auto' | 'manual';
}

/** What the half-open probe found (the probe's address, if any, stays in the worker's config). */
export interface HealthProbeResult {
  ok: boolean;
  /** "sent a probe message to the probe address", or the provider's error */
  detail: string;
}

// probeProvider, and the drill's probe of its seeds

export interface ProbeInput {
  provider: string;
  to: string[];
  subject?: string;
  /** Sender; default: the drills sender from the worker config, else mailover-probe@<first address's domain>. */
  from?: string;
}

export interface ProbeResult {
  provider: string;
  accepted: number;
  rejected: number;
  /** Distinct reasons, addresses replaced by `recipient #n` (1-based index into `to`). */
  errors: string[];
}

// Failover drills

export interface DrillPlan {
  /** Providers to drill in priority order; the first two are the primary and the secondary. */
  providers: string[];
  seedCount: number;
  recipients: number;
  batchSize: number;
  timeoutMs: number;
  /** Weighted drill (drills.providers with weights): provider -> weight; the synthetic campaign splits by weight. */
  weights?: Record<string, number>;
}

export interface ProbeDrillSeedsInput {
  drillId: string;
  provider: string;
}

export interface PrepareDrillInput {
  drillId: string;
  campaignId: string;
  providers: string[];
}

export interface AwaitCampaignHoldInput {
  campaignId: string;
  pollMs?: number;
}

export interface AwaitCampaignHoldResult {
  holding: boolean;
  reason?: string;
}

export interface VerifyDrillInput {
  campaignId: string;
  primary: string;
  secondary: string;
  /** First seq sent on the secondary. */
  switchSeq: number;
  /** Weighted drill: rows before switchSeq are split between primary and secondary by these weights, batch by batch. */
  weights?: Record<string, number>;
  batchSize?: number;
}

export interface DrillLedgerCheck {
  rows: number;
  accepted: number;
  /** accepted rows on the primary before switchSeq (weighted: on the provider the weights gave their batch) and on the secondary from it */
  inPlace: number;
  /** seqs whose row is not accepted, or accepted on the wrong side of the switch (at most 10) */
  misplacedSeqs: number[];
  /** rows found in flight after a crash (their message may have gone out twice) */
  inFlightRecovered: number;
  /**
   * Accepted rows with a provider message id, counted once per (provider, id, recipient): ESPs
   * that send a call's recipients together (Mailgun, SendGrid) give them all that call's one id.
   */
  distinctMessageIds: number;
  acceptedByProvider: Record<string, number>;
}

/** The activities a worker registers and the workflows proxy (built by createActivities in ./index.ts). */
export interface CampaignActivities {
  prepareCampaign(input: PrepareInput): Promise<PrepareResult>;
  sendBatch(input: SendBatchInput): Promise<BatchTally>;
  /** Held rows -> pending (resend) or accepted (mark-sent), recorded with who and when. */
  releaseHeld(input: ReleaseHeldActivityInput): Promise<ReleaseHeldResult>;
  notify(event: OpsEvent): Promise<void>;
  watchProviders(input: WatchProvidersInput): Promise<WatchProvidersResult>;
  probeHealth(input: { provider: string }): Promise<HealthProbeResult>;
  probeProvider(input: ProbeInput): Promise<ProbeResult>;
  drillPlan(): Promise<DrillPlan>;
  probeDrillSeeds(input: ProbeDrillSeedsInput): Promise<ProbeResult>;
  prepareDrillCampaign(input: PrepareDrillInput): Promise<{ total: number }>;
  /** Watches a drill's synthetic campaign (its progress query) until it holds or ends: drills recorded before the campaign signalled its drill only. */
  awaitCampaignHold(input: AwaitCampaignHoldInput): Promise<AwaitCampaignHoldResult>;
  verifyDrillLedger(input: VerifyDrillInput): Promise<DrillLedgerCheck>;
}
