/**
 * The data plane: campaign definitions, audience + send ledger (one row per
 * campaign recipient), suppression list. Same code on SQLite (embedded default)
 * and PostgreSQL (DATABASE_URL).
 */
import type { SendWindow } from '../reputation';
import type { QuotaPeriod, QuotaUsage } from '../quota';

/**
 * A ledger row's state. Final: accepted, rejected, suppressed. Not final: pending (not sent yet),
 * sending (claimed by a send attempt; dispatched once handed to the provider), deferred (the
 * provider answered this recipient "later": retried at `deferUntil`), held (its outcome is unknown
 * and cannot be settled by the engine: an operator releases it, see `mailover campaign held`).
 */
import type { SendWindowSpec } from '../../workflows/send-window';

export type RecipientState = 'pending' | 'sending' | 'deferred' | 'held' | 'accepted' | 'rejected' | 'suppressed';

export interface CampaignTemplate {
  subject: string;
  text: string;
  html?: string;
}

/** A campaign as stored. Lives in the store, never in workflow history. */
export interface CampaignRecord {
  id: string;
  name?: string;
  from: string;
  template: CampaignTemplate;
  /** Provider names in priority order (with `weights`: the order of the weighted list). */
  providers: string[];
  /** Weighted routing: provider name -> weight, for every provider; absent: priority order. */
  weights?: Record<string, number>;
  batchSize: number;
  /** Receipts and other non-marketing mail: no unsubscribe link or postal address required, no List-Unsubscribe. */
  transactional?: boolean;
  /** The sender's postal address (marketing campaigns must show it: `{{postal_address}}`). */
  postalAddress?: string;
  /** Mailing list the campaign belongs to (unsubscribe scope `list`); default: the campaign id. */
  list?: string;
  /** The campaign this one retries (`mailover campaign retry`): its rows came from that campaign's ledger. */
  retryOf?: string;
  /** When it may send (days, hours, zone), normalized; absent: any time. A retry keeps it. */
  window?: SendWindowSpec;
  createdAt: Date;
}

export interface AudienceRow {
  email: string;
  fields: Record<string, string>;
}

export interface RecipientRow {
  campaignId: string;
  /** 1..N, assigned at import in file order; the workflow's cursor walks it. */
  seq: number;
  email: string;
  fields: Record<string, string>;
  state: RecipientState;
  provider: string | null;
  providerMessageId: string | null;
  attempts: number;
  lastError: string | null;
  /** How many times this row was found in state `sending` after a crash. */
  inFlightRecoveries: number;
  /** When the message was last handed to a provider (null while only claimed, or pending). */
  dispatchedAt: Date | null;
  /** Deferred rows: when to try again. */
  deferUntil: Date | null;
  /** When the provider first answered "later" for this recipient (the deferral window counts from here). */
  deferredSince: Date | null;
  /** How many times the provider answered "later" for this recipient. */
  deferrals: number;
  /** Held rows: since when. */
  heldAt: Date | null;
  /** Who released the row from held, and when (`mailover campaign release`). */
  releasedBy: string | null;
  releasedAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface SuppressionRow {
  email: string;
  reason: string;
  source: string;
  createdAt: Date;
}

export interface ListSuppressionRow extends SuppressionRow {
  list: string;
}

/** What a provider reported about a sent message. */
export type DeliveryEventType = 'delivered' | 'failed-permanent' | 'failed-temporary' | 'complained' | 'unsubscribed';
export const DELIVERY_EVENT_TYPES: readonly DeliveryEventType[] = ['delivered', 'failed-permanent', 'failed-temporary', 'complained', 'unsubscribed'];

export interface DeliveryEventInput {
  /** The provider's own id for the event (with the provider, it makes the event's key: a repeat is stored once). */
  providerEventId: string;
  provider: string;
  type: DeliveryEventType;
  occurredAt: Date;
  /** The recipient the event is about. */
  email: string;
  /** The message identity the event carried (campaign id, and the recipient's seq when known). */
  campaignId?: string;
  seq?: number;
  /** The provider's words (bounce code and text, complaint feedback type...), raw. */
  reason: string;
}

export interface DeliveryEvent {
  id: string;
  provider: string;
  type: DeliveryEventType;
  occurredAt: Date;
  receivedAt: Date;
  email: string;
  /** The ledger row it is linked to (null when the identity matched no row of that address). */
  campaignId: string | null;
  seq: number | null;
  reason: string;
}

export interface RecordEventResult {
  /** False when the same event was stored before (nothing changed). */
  recorded: boolean;
  /** Whether it was linked to a ledger row. */
  linked: boolean;
  /** Whether the address was newly added to a suppression list. */
  suppressed: boolean;
}

export interface ClaimResult {
  /**
   * Rows moved to sending by this claim (attempts incremented, provider set): pending rows, and
   * rows a crashed attempt claimed but never handed to a provider (certainly not sent).
   */
  claimed: RecipientRow[];
  /**
   * Rows that were already handed to a provider (markDispatched) and never settled: left in flight
   * by a crash, outcome unknown. Their inFlightRecoveries is incremented; they keep the provider
   * they were handed to, so it can be asked about them.
   */
  inFlight: RecipientRow[];
  /** Rows moved pending -> suppressed because their address is on the suppression list. */
  suppressed: number;
}

/**
 * A sweep: rows behind the campaign's cursor that still need sending: deferred rows whose time has
 * come, rows put back to pending (released from held), and rows a crashed sweep left in flight.
 */
export interface SweepOptions {
  /** Highest seq the sweep may take (the campaign's cursor). */
  upToSeq: number;
  /** At most this many rows. */
  limit: number;
  /** Deferred rows due at or before this time are taken. */
  now: Date;
}

export interface SweepClaim extends ClaimResult {
  /** How many of the rows taken were deferred, and how many pending (the workflow's counters move them). */
  fromDeferred: number;
  fromPending: number;
}

/** How a deferral is paced: the first retry after `firstRetryMs`, doubling up to `maxRetryMs`; after `windowMs` a soft bounce. */
export interface DeferralPolicy {
  firstRetryMs: number;
  maxRetryMs: number;
  windowMs: number;
}

export type DeferOutcome = { state: 'deferred'; deferUntil: Date } | { state: 'rejected'; reason: string };

/** A held row as an operator sees it (the address only when asked for). */
export interface HeldRow {
  seq: number;
  email: string;
  provider: string | null;
  heldAt: Date | null;
  reason: string;
}

export interface ReleaseHeldInput {
  /** resend: back to pending (the campaign sends it again); mark-sent: settled accepted, as the operator says it was. */
  action: 'resend' | 'mark-sent';
  /** Only rows in this seq range (inclusive); all held rows when absent. */
  fromSeq?: number;
  toSeq?: number;
  /** Who released them (recorded on the rows). */
  by: string;
}

export interface ReleaseHeldResult {
  released: number;
  /** mark-sent: rows now accepted, by the provider they were held on. */
  acceptedByProvider: Record<string, number>;
  /** The seqs released, as inclusive ranges ([[3, 5], [9, 9]]). */
  ranges: Array<[number, number]>;
}

/** Final-state tally of a range of rows (idempotent: can be recomputed any time). */
export interface RangeTally {
  accepted: Record<string, number>; // by provider name
  rejected: number;
  suppressed: number;
  pending: number;
  sending: number;
  deferred: number;
  held: number;
  inFlightRecovered: number;
}

/** A provider's sending limits as the store enforces them (see RateLimit in src/config.ts). */
export interface SendRateLimits {
  perSecond?: number;
  perWindow?: { max: number; windowMs: number };
}

export interface RateReservation {
  /** Sends that may go now (0..want). */
  granted: number;
  /** When granted < want: how long until more capacity frees up. */
  retryAfterMs: number;
}

/** Campaign definitions. */
export interface CampaignStore {
  createCampaign(campaign: Omit<CampaignRecord, 'createdAt'>): Promise<void>;
  getCampaign(id: string): Promise<CampaignRecord | undefined>;
  listCampaignIds(): Promise<string[]>;
}

/** A campaign's audience: its recipient rows as imported, before any send. */
export interface AudienceStore {
  /**
   * Append audience rows to a campaign (seq continues after the current max).
   * Rows whose email already exists in the campaign are skipped.
   */
  importAudience(campaignId: string, rows: AudienceRow[]): Promise<{ inserted: number; duplicates: number }>;
  countAudience(campaignId: string): Promise<number>;
  maxSeq(campaignId: string): Promise<number>;
  /**
   * Before a campaign sends: the query planner's statistics of the ledger brought up to date
   * (PostgreSQL: ANALYZE recipients), so a freshly imported audience is planned on its indexes.
   * SQLite: nothing (its plans do not depend on statistics it has not been asked to gather).
   */
  refreshPlannerStats(): Promise<void>;
  /** Union of merge-field names present across the audience (for template validation). */
  audienceFieldNames(campaignId: string): Promise<string[]>;
  /** Rows in a seq range (inclusive) missing any of the given fields (empty or absent); returns at most `limit`. */
  rowsMissingFields(campaignId: string, fields: string[], limit: number): Promise<Array<{ seq: number; missing: string[] }>>;
}

/** The send ledger: a state per recipient row, claimed before a provider call and settled after it. */
export interface LedgerStore {
  /**
   * In one transaction, for rows with fromSeq <= seq <= toSeq (claimed and in-flight rows get
   * `claimToken`: the latest claimer holds them):
   * - pending rows whose email is suppressed -> suppressed;
   * - other pending rows -> sending (provider = provider, attempts + 1);
   * - rows in `sending` that were dispatched are returned as inFlight (inFlightRecoveries + 1, provider kept);
   * - rows in `sending` never dispatched are claimed again like pending rows.
   */
  claimRange(campaignId: string, fromSeq: number, toSeq: number, provider: string, claimToken: string): Promise<ClaimResult>;
  settleAccepted(campaignId: string, seq: number, provider: string, providerMessageId: string): Promise<void>;
  /**
   * The hot path of a send attempt in one transaction: settle acceptances, then mark rows
   * dispatched (as markDispatched: only rows `claimToken` still holds). Returns the marked seqs.
   */
  recordSends(
    campaignId: string,
    provider: string,
    claimToken: string,
    writes: { accepted: Array<{ seq: number; providerMessageId: string }>; dispatch: number[] },
  ): Promise<number[]>;
  /** Settle as rejected; when hardBounce, also add the address to the suppression list (same transaction). */
  settleRejected(campaignId: string, seq: number, provider: string, reason: string, hardBounce: boolean): Promise<void>;
  /**
   * Record that these claimed rows are being handed to `provider` now (from here on their outcome
   * is uncertain until settled). Only rows still held by `claimToken` are marked; returns their seqs:
   * a row another attempt has claimed since must not be sent by this one.
   */
  markDispatched(campaignId: string, seqs: number[], provider: string, claimToken: string): Promise<number[]>;
  /** sending -> pending for rows this claim holds that the provider definitely did not accept; records lastError. */
  release(campaignId: string, seqs: number[], lastError: string, claimToken: string): Promise<void>;
  /**
   * Like claimRange, over the rows behind the cursor that still need sending (see SweepOptions),
   * lowest seq first, at most `limit`.
   */
  claimSweep(campaignId: string, provider: string, claimToken: string, opts: SweepOptions): Promise<SweepClaim>;
  /**
   * The provider answered "later" for this recipient: deferred until the next retry of `policy`, or
   * rejected (a soft bounce, never suppressed) once the deferral window since the first "later" is over.
   */
  settleDeferred(
    campaignId: string,
    seq: number,
    provider: string,
    reason: string,
    policy: DeferralPolicy,
    now: Date,
    retryAfterMs?: number,
  ): Promise<DeferOutcome>;
  /** sending -> held (outcome unknown, for an operator to release), with why. */
  holdRows(campaignId: string, seqs: number[], reason: string): Promise<void>;
  listHeld(campaignId: string): Promise<HeldRow[]>;
  /** Held rows -> pending (resend) or accepted (mark-sent), recording who and when. */
  releaseHeld(campaignId: string, input: ReleaseHeldInput): Promise<ReleaseHeldResult>;
  /** The earliest retry time among the campaign's deferred rows (undefined when none is deferred). */
  nextDeferral(campaignId: string): Promise<Date | undefined>;
  /** Current state of some rows of a campaign (rows not found are left out). */
  getRecipients(campaignId: string, seqs: number[]): Promise<RecipientRow[]>;
  getRecipient(campaignId: string, seq: number): Promise<RecipientRow | undefined>;
  tallyRange(campaignId: string, fromSeq: number, toSeq: number): Promise<RangeTally>;
  /** The same tally over some rows only (a sweep's). */
  tallyRows(campaignId: string, seqs: number[]): Promise<RangeTally>;
  /** Rows in state `sending` across all campaigns: claimed or handed to a provider, not settled (a metrics gauge). */
  countInFlight(): Promise<number>;
  listRecipients(campaignId: string): Promise<RecipientRow[]>;
}

/** The suppression list (every campaign) and the per-list suppressions (unsubscribe scope `list`). */
export interface SuppressionStore {
  addSuppression(email: string, reason: string, source: string): Promise<void>;
  /** Adds many addresses with one reason and source (already listed ones are left as they are); returns how many were new. */
  addSuppressions(emails: string[], reason: string, source: string): Promise<number>;
  removeSuppression(email: string): Promise<boolean>;
  isSuppressed(email: string): Promise<boolean>;
  listSuppressions(): Promise<SuppressionRow[]>;
  /** Suppress an address for campaigns of one list only (unsubscribe scope `list`). */
  addListSuppression(list: string, email: string, reason: string, source: string): Promise<void>;
  listListSuppressions(): Promise<ListSuppressionRow[]>;
}

/** What providers report about sent messages, and the webhook tokens already seen. */
export interface EventStore {
  /**
   * Store a provider event, linked to its ledger row when `campaignId` (and `seq`, if given) name a
   * row of that address; with `suppress`, add the address to the suppression list (or the list's,
   * when `suppress.list` is set) in the same transaction, also when the event was stored before.
   */
  recordEvent(event: DeliveryEventInput, suppress?: { reason: string; source: string; list?: string }): Promise<RecordEventResult>;
  listEvents(filter?: { campaignId?: string; email?: string }): Promise<DeliveryEvent[]>;
  /**
   * Remember a webhook's signature token; false if it was seen before (a replay). Tokens seen
   * before `forgetBefore` are dropped (older requests are refused as stale anyway).
   */
  rememberWebhookToken(provider: string, token: string, forgetBefore: Date): Promise<boolean>;
  forgetWebhookToken(provider: string, token: string): Promise<void>;
}

/** A ledger row as an operator reads it: its outcome and the last thing its ESP reported about it. */
export interface RecipientOutcome {
  seq: number;
  email: string;
  state: RecipientState;
  provider: string | null;
  providerMessageId: string | null;
  /** The last answer or reason recorded on the row (a rejection, a deferral, a hold). */
  answer: string | null;
  attempts: number;
  /** When the row last changed. */
  updatedAt: Date;
  /** The last event its ESP reported for it (delivered, bounced, complained, unsubscribed...), by occurrence. */
  lastEvent: { type: DeliveryEventType; provider: string; occurredAt: Date; reason: string } | null;
}

export interface OutcomePage {
  /** Only rows in these states (all when absent or empty). */
  states?: RecipientState[];
  /** Only rows sent (or tried) through this provider. */
  provider?: string;
  /** Rows after this seq (keyset paging: pass the last seq of the previous page). */
  afterSeq?: number;
  limit: number;
}

/** The kinds of rows a retry campaign takes from the first one. */
export type RetryKind = 'deferred' | 'rejected-soft' | 'held';
export const RETRY_KINDS: readonly RetryKind[] = ['deferred', 'rejected-soft', 'held'];

/** One row a retry takes (the audience of the follow-up campaign). */
export interface RetryRow {
  seq: number;
  kind: RetryKind;
  email: string;
  fields: Record<string, string>;
}

/** Everything the store knows about one address. */
export interface AddressHistory {
  email: string;
  /** Its row in every campaign that had it, oldest campaign row first. */
  rows: Array<RecipientOutcome & { campaignId: string; createdAt: Date }>;
  /** Every event its ESPs reported about it, by occurrence. */
  events: DeliveryEvent[];
  suppression: SuppressionRow | null;
  listSuppressions: ListSuppressionRow[];
}

/** Ledger rows accepted per minute per provider (minute: `YYYY-MM-DDTHH:MM`, UTC). */
export interface SendsPerMinute {
  minute: string;
  provider: string;
  sent: number;
}

export interface StateCount {
  state: RecipientState;
  provider: string | null;
  rows: number;
}

export interface EventCount {
  provider: string;
  type: DeliveryEventType;
  rows: number;
}

/** Read views over the ledger and events for operators: keyset-paged, so memory stays flat with campaign size. */
export interface LedgerViewStore {
  /** One page of a campaign's rows (by seq) with their last ESP event. */
  pageOutcomes(campaignId: string, page: OutcomePage): Promise<RecipientOutcome[]>;
  addressHistory(email: string): Promise<AddressHistory>;
  /**
   * One page of the rows a retry of `campaignId` would take, by seq: rows of the given kinds, never
   * one whose address is suppressed (everywhere, or for the campaign's list), whose address hard-bounced
   * (a `failed-permanent` event anywhere), that its ESP reported delivered, complained or unsubscribed,
   * or whose address an earlier retry of the campaign took (retry that one instead).
   */
  pageRetryRows(campaignId: string, kinds: readonly RetryKind[], afterSeq: number, limit: number): Promise<RetryRow[]>;
  /** How many rows of these kinds the campaign has, before any exclusion. */
  countRetryKinds(campaignId: string, kinds: readonly RetryKind[]): Promise<Record<RetryKind, number>>;
  sendsPerMinute(campaignId: string): Promise<SendsPerMinute[]>;
  /** How many of the campaign's rows are in each state, by provider. */
  stateCounts(campaignId: string): Promise<StateCount[]>;
  /** How many of the campaign's rows have at least one event of each type, by the provider that reported it. */
  eventCounts(campaignId: string): Promise<EventCount[]>;
  /** Campaigns created as retries of this one. */
  retriesOf(campaignId: string): Promise<string[]>;
}

/** Providers' sending limits, shared by every worker and campaign on the store. */
export interface RateStore {
  /**
   * Reserve up to `want` sends through `provider` at `nowMs` under `limits`, atomically across
   * every worker and campaign on this store (grants are recorded; pruned past the longest window).
   */
  reserveSends(provider: string, want: number, limits: SendRateLimits, nowMs: number): Promise<RateReservation>;
}

/** Which of a campaign's sends make a reputation window (see ReputationStore). */
export interface SendWindowQuery {
  /** At most this many sends, the newest. */
  window: number;
  /** Only sends settled at or after this time (an operator resumed a reputation hold then). */
  since?: Date;
}

/** The reputation breaker's windows (src/store/reputation.ts; judged by src/reputation.ts). */
export interface ReputationStore {
  /**
   * For each provider: the campaign's last sends through it (rows it answered for: accepted, or
   * rejected once handed over or as a hard bounce), and how many of them hard-bounced (answer or
   * later event) or drew a complaint.
   */
  sendWindows(campaignId: string, providers: string[], q: SendWindowQuery): Promise<SendWindow[]>;
}

/** What a quota take got: how many sends, each counted period's use after it, and the limit that ran out when short. */
export interface QuotaTake {
  /** Sends that may go (0..want); already counted. */
  granted: number;
  usage: QuotaUsage[];
  /** When granted < want: the limit that binds (its use, allowance and reset). */
  spent?: QuotaUsage;
}

/** Providers' hourly, daily and warm-up counters, shared by every worker and campaign on the store. */
export interface QuotaStore {
  /**
   * Take up to `want` sends through `provider` from each of `periods` (computed on the caller's
   * quota clock by quotaPeriods in src/quota.ts), atomically across every worker and campaign.
   */
  takeQuota(provider: string, want: number, periods: QuotaPeriod[]): Promise<QuotaTake>;
  /** The periods' use so far (nothing taken). */
  quotaUsage(provider: string, periods: QuotaPeriod[]): Promise<QuotaUsage[]>;
}

/** The whole data plane, as activities, the CLI and compliance code use it. */
export interface Store
  extends CampaignStore, AudienceStore, LedgerStore, SuppressionStore, EventStore, RateStore, QuotaStore, LedgerViewStore, ReputationStore {
  readonly dialect: 'sqlite' | 'postgres';
  /** Create tables if missing. Idempotent. */
  migrate(): Promise<void>;
  close(): Promise<void>;
}
