/**
 * The campaign workflow's public surface: its input and result types, signals, query, updates
 * and patch ids. Definitions only (no workflow logic), importable from the workflow, activities,
 * the client, the CLI and tests; the workflow itself is in ./campaign.ts.
 */
import * as wf from '@temporalio/workflow';
import type { SendWindowSpec } from './send-window';

/**
 * `scheduled`: started with a start time still ahead (`campaign start --at`); `waiting`: outside its
 * send window, sending nothing until it opens (batches already sent finish). Both go on by
 * themselves; `running` is sending.
 */
export type CampaignStatus = 'starting' | 'scheduled' | 'running' | 'waiting' | 'paused' | 'holding' | 'completed' | 'cancelled';

/**
 * Why a campaign is not sending. `operator`: paused by a person (status `paused`); every other
 * kind is a hold (status `holding`), resumable once fixed:
 * - `no-provider`: every provider is down (ends by itself when one recovers);
 * - `message-refused`: the provider refused the message itself (its text says why);
 * - `store-or-bug`: the store, Temporal or a bug failed a step after its retries;
 * - `review`: recipients are held for review (outcome unknown): `mailover campaign held` / `release`;
 * - `reputation`: the campaign's hard-bounce or complaint rate crossed its threshold (the reason has
 *   the figures); it never fails over for that. Resuming starts a fresh window from then on.
 * - `quota`: a provider's quota or warm-up allowance is spent and its `onQuota` is `wait` (ends by itself at the reset).
 */
export type HoldKind = 'operator' | 'no-provider' | 'message-refused' | 'store-or-bug' | 'review' | 'reputation' | 'quota';

export interface CampaignHold {
  kind: HoldKind;
  reason: string;
  /** workflow time, ISO 8601 */
  since: string;
}

export interface ProviderSwitch {
  from: string;
  /** undefined when no provider was left and the campaign started holding */
  to?: string;
  reason: string;
  /** workflow time, ISO 8601 */
  at: string;
  /** first seq of the batch that was moved */
  atSeq: number;
}

/**
 * The window a new campaign gets when it does not set `batchesInFlight` (BENCHMARKS.md, the window: with
 * 200 ms of ESP latency 4 keeps the Mailgun path near its zero-latency figure, 1 falls to a fraction).
 * The client writes it into the workflow input, so changing it never changes a running campaign.
 */
export const DEFAULT_BATCHES_IN_FLIGHT = 4;
/**
 * What a workflow input without `batchesInFlight` means: one batch at a time. Campaigns started before the
 * client wrote the window into the input (and the histories recorded then) ran so, and must replay so.
 */
export const UNSET_BATCHES_IN_FLIGHT = 1;

export interface CampaignOptions {
  /** Heartbeat timeout of a batch send: how fast a crashed worker's batch is retried. Default 20 s. */
  heartbeatTimeoutMs?: number;
  /** Attempts per batch on one provider before it counts as unavailable. Default 6. */
  sendMaxAttempts?: number;
  /** First retry delay for transient provider errors. Default 1 s. */
  sendInitialIntervalMs?: number;
  /** Longest retry delay. Default 30 s. */
  sendMaxIntervalMs?: number;
  /** Continue-as-new after this many batches (besides Temporal's own suggestion). Default 500. */
  batchesPerRun?: number;
  /**
   * The window: up to this many batches of the campaign in flight at once, spread over every worker
   * on the task queue (per-provider concurrency and rate limits still hold). 1 sends one batch at a time.
   */
  batchesInFlight?: number;
  /** A recipient the provider answers "later" (4xx) is first retried after this. Default 5 minutes. */
  deferralFirstRetryMs?: number;
  /** Its retries double up to this. Default 1 hour. */
  deferralMaxRetryMs?: number;
  /** After this long since its first "later" it is rejected as a soft bounce with the last answer. Default 4 hours. */
  deferralWindowMs?: number;
}

export interface CampaignInput {
  campaignId: string;
  /** Provider names in priority order (with `weights`: the order the weighted schedule lists them in). */
  providers: string[];
  /** Weighted routing: provider name -> weight (a whole number above 0) for every provider; absent: priority order. */
  weights?: Record<string, number>;
  batchSize: number;
  options?: CampaignOptions;
  /**
   * Failover drills only: treat `provider` as down (provider-level failure with `reason`) from
   * recipient `fromSeq` on, so the drill sees a real switch. Real campaigns never set it.
   */
  forcedDown?: { provider: string; fromSeq: number; reason: string };
  /**
   * Failover drills only: signal the parent workflow (the drill) when the campaign starts holding
   * and when it ends (drillCampaignSignal in ./drill-api.ts), so the drill need not poll it.
   */
  notifyParent?: boolean;
  /** Send nothing before this time (ISO 8601; `campaign start --at`). Absent: at once. */
  startAt?: string;
  /** Send only inside this window (the campaign file's `window`, normalized). Absent: any time. */
  window?: SendWindowSpec;
  /** State carried over continue-as-new; absent on the first run. */
  carried?: CarriedState;
}

export interface CampaignCounts {
  acceptedByProvider: Record<string, number>;
  rejected: number;
  suppressed: number;
  /** rows found in flight after a crash (resent, settled from a look-up, or held) */
  inFlightRecovered: number;
  /** rows held for review (outcome unknown: in-flight policy `hold`, or a failed look-up) */
  heldForReview: number;
  /** rows waiting for their deferred retry (absent in state carried before deferrals) */
  deferred?: number;
}

export interface CarriedState {
  total: number;
  maxSeq: number;
  knownProviders: string[];
  cursor: number;
  counts: CampaignCounts;
  plan: ProviderPlan;
  switches: ProviderSwitch[];
  paused: boolean;
  pauseReason?: string;
  /** What kind of hold `paused` is (absent in state carried before hold kinds: derived from the reason). */
  holdKind?: HoldKind;
  holdSince?: string;
  runs: number;
  /** When the next deferred row is due (epoch ms, workflow time). */
  nextDeferredAt?: number;
  /** Rows released from held to be sent again (behind the cursor: a sweep sends them). */
  releasedPending?: number;
  /** The operator resumed a review hold: complete with the held rows left held. */
  reviewDone?: boolean;
  /** Shared provider health: provider -> why its circuit is open (campaigns started before it have none). */
  sharedDown?: Record<string, string>;
  /** Providers whose shared circuit an operator opened (classifies the switches it causes; absent before it was kept). */
  operatorDown?: string[];
  /** Whether to go back to a recovered higher-priority provider by itself (from the worker's health config). */
  failback?: 'auto' | 'manual';
  /** The provider the last batch was sent through. */
  lastProvider?: string;
  /** Ranges of the first pass settled above the cursor (batches settle out of order with several in flight; absent before the window). */
  settledAbove?: Array<[fromSeq: number, toSeq: number]>;
  /** When an operator last resumed a reputation hold (ISO 8601, workflow time): the breaker judges sends from then on. */
  reputationSince?: string;
  /** Providers whose quota is spent (overflowed or waited for), until their reset (./quota-routing.ts); absent before quotas. */
  quota?: Record<string, QuotaWatch>;
}

/** A spent quota the campaign overflowed or waits for: until when (workflow time), and what moved meanwhile. */
export interface QuotaWatch {
  /** The limit spent and its allowance, as the reason says it. */
  limit: 'day' | 'hour' | 'second' | 'warmup';
  allowance: number;
  onQuota: 'overflow' | 'wait';
  /** When the campaign goes back (epoch ms, workflow time: now + the quota's time to its reset). */
  until: number;
  /** Overflow: the index of its switch in the switch log, and accepted on the other providers when it was recorded. */
  switchIndex?: number;
  acceptedElsewhereBefore?: number;
  /** Recipients accepted on the other providers since the overflow. */
  moved?: number;
}

export interface CampaignProgress {
  campaignId: string;
  status: CampaignStatus;
  total: number;
  accepted: number;
  acceptedByProvider: Record<string, number>;
  rejected: number;
  suppressed: number;
  remaining: number;
  inFlightRecovered: number;
  heldForReview: number;
  /** Recipients waiting for their deferred retry (the provider said "later" for them). */
  deferred: number;
  /** When the next deferred retry is due (ISO 8601). */
  nextDeferredAt?: string;
  paused: boolean;
  pauseReason?: string;
  /** Why it is not sending, when it is paused or holding. */
  hold?: CampaignHold;
  /** The provider batches go to; in a weighted campaign, the healthy providers sharing them ("ses+postmark"). */
  activeProvider?: string;
  providers: string[];
  /** Weighted campaigns: provider -> weight. */
  weights?: Record<string, number>;
  /** Weighted campaigns: each provider's intended share now, in percent (0 while it is down); acceptedByProvider is the split so far. */
  intendedShare?: Record<string, number>;
  providersDown: Record<string, string>;
  /** Providers whose shared circuit is open (every campaign avoids them), with why. */
  sharedDown: Record<string, string>;
  switches: ProviderSwitch[];
  /** Every seq up to the cursor is settled (its batch is done). */
  cursor: number;
  /** Ranges settled above the cursor (several batches in flight settle out of order), inclusive. */
  settledAbove?: Array<[fromSeq: number, toSeq: number]>;
  /** At least one batch is in flight. */
  batchInFlight: boolean;
  /** How many batches are in flight now (at most the window, `batchesInFlight` in the options). */
  batchesInFlight: number;
  /** The window: how many batches the campaign may have in flight at once (1 for runs started before the window). */
  window?: number;
  /** continue-as-new runs so far */
  runs: number;
  /** Its start time, when it was started with one (ISO 8601). */
  scheduledFor?: string;
  /** Its send window: `mon-fri 09:00-17:00 Europe/Berlin`. */
  sendWindow?: string;
  /** While it waits (status scheduled or waiting): when it starts or its window opens (ISO 8601). */
  waitingUntil?: string;
  /** What it waits for: its start time, or its send window to open. */
  waitingFor?: 'start' | 'send-window';
  /** Why, for people: `to start at 2026-12-02 08:00:00 UTC`, `for its send window (mon-fri 09:00-17:00 Europe/Berlin) until …`. */
  waitReason?: string;
}

export type CampaignResult = Omit<
  CampaignProgress,
  'batchInFlight' | 'batchesInFlight' | 'paused' | 'pauseReason' | 'hold' | 'waitingUntil' | 'waitingFor' | 'waitReason'
>;

export interface ReleaseHeldRequest {
  /** resend: the campaign sends them again; mark-sent: settled as accepted (the operator knows they went out). */
  action: 'resend' | 'mark-sent';
  /** Only held rows in this seq range (inclusive); all of them when absent. */
  fromSeq?: number;
  toSeq?: number;
  /** Who releases them (recorded on the rows). */
  by: string;
}

export interface ReleaseHeldOutcome {
  released: number;
  /** The seqs released, as inclusive ranges. */
  ranges: Array<[number, number]>;
}

/** A campaign's providers: names in priority order, and the ones it has found down, with why. */
export interface ProviderPlan {
  order: string[];
  /** provider name -> reason it was found down during this campaign */
  down: Record<string, string>;
  /**
   * Weighted routing (./weighted-routing.ts): provider name -> weight, for every provider in `order`.
   * Absent: priority order (the first healthy provider takes every batch), as in every run before weights.
   */
  weights?: Record<string, number>;
  /** Weighted plans: the healthy providers the last batch was split among (a change is recorded as one switch). */
  sharing?: string[];
}

/** Operator: let the batches in flight finish, then send nothing until resumed (hold kind `operator`). */
export const pauseSignal = wf.defineSignal<[reason?: string]>('pause');
/** Operator: go on (after a no-provider hold, the order is retried from the top; after a review hold, finish). */
export const resumeSignal = wf.defineSignal('resume');
/** Operator: stop once the batches in flight finish; unsent rows stay pending. */
export const cancelSignal = wf.defineSignal('cancel');
export const progressQuery = wf.defineQuery<CampaignProgress>('progress');
/**
 * Operator: a new provider plan (validated against the worker's providers); answered with the order in use.
 * Names set a priority order; `{ name, weight }` entries set weighted routing (either form replaces the plan).
 */
export const setProvidersUpdate = wf.defineUpdate<string[], [Array<string | { name: string; weight: number }>]>('setProviders');

/** Releases rows held for review; answered once the ledger has them (and the counters moved). */
export const releaseHeldUpdate = wf.defineUpdate<ReleaseHeldOutcome, [ReleaseHeldRequest]>('releaseHeld');

/** Patch id of shared provider health, failback and operational events (histories recorded before it replay without). */
export const SHARED_HEALTH_PATCH = 'shared-provider-health';
/**
 * Patch id of the window: several batches in flight (`batchesInFlight`), settled ranges above the cursor,
 * outcomes told to shared health in aggregate, and the AcceptedCount attribute updated every few batches.
 * Runs recorded before it send one batch at a time and tell health every batch, as they did.
 */
export const BATCH_WINDOW_PATCH = 'batch-window';
/**
 * Patch id of old news in the window: a provider failure of a batch dispatched before its provider was last
 * found down (by another batch) records no switch and tells health nothing, even when the provider is
 * back by then (failback): the batch's range is sent again on the active provider.
 */
export const STALE_FAILURE_PATCH = 'window-stale-failure';
/** Patch id of hold kinds (every hold but an operator's pause is `holding`), the HoldKind attribute, deferrals and review holds. */
export const HOLD_KINDS_PATCH = 'hold-kinds';
