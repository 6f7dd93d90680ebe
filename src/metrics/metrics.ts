/**
 * The worker's Prometheus metrics (prom-client, one registry per worker process).
 *
 * Counted where things happen: messages and batch latency in the sendBatch activity (only rows
 * a send attempt settled itself, so retries never double count), provider switches and alert
 * delivery attempts and reputation pauses in the notify activity, reputation rates where the
 * sendBatch activity judges them, failed activity attempts by an activity interceptor
 * (src/worker.ts). Read at scrape time: provider circuit states, campaigns by status and ledger
 * rows in flight (see scrape-sources.ts); a source that fails leaves its samples out of that
 * scrape and counts `mailover_scrape_errors_total`, it never fails the scrape.
 *
 * Every series whose labels are known up front exists from the start at 0 (per configured
 * provider, provider pair, alert target, scrape source and activity type), so `increase()` and
 * `rate()` see the first event of each.
 *
 * Labels are bounded: provider and alert target names come from the config, outcomes, switch
 * causes, sources and activity types are fixed sets; free text (reasons, campaign ids) is never a label.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CircuitState } from '../../workflows/provider-health-api';
import type { OpsEvent } from '../ops-events';
import { SWITCH_CAUSES, type SwitchCause } from '../../workflows/failover';
import { ratePercent, REPUTATION_MEASURES, type SendWindow } from '../reputation';

export type MessageOutcome = 'accepted' | 'rejected' | 'suppressed';
export const MESSAGE_OUTCOMES: readonly MessageOutcome[] = ['accepted', 'rejected', 'suppressed'];

/**
 * Why a campaign changed provider (the switch's cause, decided from what happened: workflows/failover.ts),
 * or `unknown` for an event raised by a workflow run from before causes were recorded.
 */
export type SwitchReasonClass = SwitchCause | 'unknown';

/** Node default metrics that are gauges named like counters. */
const MISNAMED_DEFAULT_GAUGES = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** Where the scrape-time samples come from (mailover_scrape_errors_total's `source`). */
export const SCRAPE_SOURCES = ['circuit', 'campaigns', 'ledger', 'temporal_runtime'] as const;
export type ScrapeSource = (typeof SCRAPE_SOURCES)[number];

export type AlertResult = 'delivered' | 'failed';

/** Circuit state as a number for a gauge: 0 closed, 1 half-open, 2 open. */
export const CIRCUIT_STATE_VALUE: Record<CircuitState, number> = { closed: 0, 'half-open': 1, open: 2 };

/** Campaign statuses of running campaign workflows (the CampaignStatus search attribute). */
export const RUNNING_CAMPAIGN_STATUSES = ['starting', 'scheduled', 'running', 'waiting', 'paused', 'holding'] as const;
export type RunningCampaignStatus = (typeof RUNNING_CAMPAIGN_STATUSES)[number];

/** What the scrape-time gauges read (Temporal and the store); see scrape-sources.ts. */
export interface ScrapeSources {
  /** Per configured provider; a provider whose state cannot be read is left out. */
  circuitStates(): Promise<Map<string, CircuitState>>;
  campaignsByStatus(): Promise<Record<RunningCampaignStatus, number>>;
  ledgerRowsInFlight(): Promise<number>;
}

/** The switch's recorded cause; never read from its reason text (an operator's words are not a class). */
export function switchReasonClass(e: Extract<OpsEvent, { kind: 'provider-switched' }>): SwitchReasonClass {
  return e.cause ?? (e.failback ? 'failback' : 'unknown');
}

export class MailoverMetrics {
  readonly registry = new Registry();
  private readonly messages: Counter<'provider' | 'outcome'>;
  private readonly batchSeconds: Histogram<'provider'>;
  private readonly switches: Counter<'from' | 'to' | 'reason_class'>;
  private readonly alertAttempts: Counter<'target' | 'result'>;
  private readonly scrapeErrors: Counter<'source'>;
  private readonly activityFailures: Counter<'activity_type'>;
  private readonly circuit: Gauge<'provider'>;
  private readonly campaigns: Gauge<'status'>;
  private readonly inFlight: Gauge;
  private readonly reputationRate: Gauge<'provider' | 'measure'>;
  private readonly reputationPauses: Counter<'provider' | 'measure'>;
  private readonly quotaUsed: Gauge<'provider' | 'limit'>;
  private readonly quotaAllowance: Gauge<'provider' | 'limit'>;
  private readonly quotaHeldBack: Counter<'provider' | 'limit'>;
  private sources?: ScrapeSources;
  /** Called with (source, error) when a scrape-time source fails (the worker logs it). */
  onScrapeError: (source: string, err: unknown) => void = () => {};

  constructor(opts: { providers?: string[]; alertTargets?: string[]; defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.messages = new Counter({
      name: 'mailover_messages_total',
      help: 'Recipients settled by send attempts on this worker, by provider and outcome (accepted, rejected, suppressed).',
      labelNames: ['provider', 'outcome'],
      registers,
    });
    this.batchSeconds = new Histogram({
      name: 'mailover_batch_send_seconds',
      help: 'Duration of one sendBatch attempt (claim, send, settle), by provider.',
      labelNames: ['provider'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    });
    this.switches = new Counter({
      name: 'mailover_provider_switches_total',
      help: 'Campaign provider switches, by from, to and reason class (what caused it: provider-refused, retries-exhausted, shared-health, operator, failback).',
      labelNames: ['from', 'to', 'reason_class'],
      registers,
    });
    this.alertAttempts = new Counter({
      name: 'mailover_alert_attempts_total',
      help: 'Alert delivery attempts, by target name and result (delivered, failed): every attempt counts, so an event retried 3 times against a target that is down adds 3 failed.',
      labelNames: ['target', 'result'],
      registers,
    });
    this.scrapeErrors = new Counter({
      name: 'mailover_scrape_errors_total',
      help: 'Scrape-time sources that could not be read (circuit, campaigns, ledger, temporal_runtime); their samples were left out.',
      labelNames: ['source'],
      registers,
    });
    this.activityFailures = new Counter({
      name: 'mailover_activity_failures_total',
      help: 'Activity attempts on this worker that ended with an error (retried or not), by activity type.',
      labelNames: ['activity_type'],
      registers,
    });
    this.circuit = new Gauge({
      name: 'mailover_provider_circuit_state',
      help: "Each configured provider's shared circuit: 0 closed, 1 half-open, 2 open (from its provider-health workflow; closed when it has none yet).",
      labelNames: ['provider'],
      registers,
    });
    this.campaigns = new Gauge({
      name: 'mailover_campaigns',
      help: 'Running campaign workflows on this task queue, by CampaignStatus (starting, scheduled, running, waiting, paused, holding).',
      labelNames: ['status'],
      registers,
    });
    this.inFlight = new Gauge({
      name: 'mailover_ledger_rows_in_flight',
      help: 'Ledger rows in state sending (claimed or handed to a provider, not settled), all campaigns in the store.',
      registers,
    });
    this.reputationRate = new Gauge({
      name: 'mailover_reputation_rate',
      help: "Hard-bounce and complaint rate (0..1, by provider and measure: hard-bounces, complaints) of the last reputation window this worker judged: a campaign's last sends on the provider, once it held the minimum.",
      labelNames: ['provider', 'measure'],
      registers,
    });
    this.reputationPauses = new Counter({
      name: 'mailover_reputation_pauses_total',
      help: 'Campaigns paused by the reputation breaker (hold kind reputation), by provider and measure (hard-bounces, complaints).',
      labelNames: ['provider', 'measure'],
      registers,
    });
    this.quotaUsed = new Gauge({
      name: 'mailover_provider_quota_used',
      help: "Sends taken from a provider's current hour or day (limit: hour, day, warmup), as this worker last saw the store's counter (shared by every worker).",
      labelNames: ['provider', 'limit'],
      registers,
    });
    this.quotaAllowance = new Gauge({
      name: 'mailover_provider_quota_allowance',
      help: "A provider's allowance for its current hour or day (limit: hour, day, or warmup: the warm-up ramp's allowance today).",
      labelNames: ['provider', 'limit'],
      registers,
    });
    this.quotaHeldBack = new Counter({
      name: 'mailover_quota_held_back_total',
      help: 'Recipients a send attempt on this worker held back because a quota or warm-up allowance of the provider was spent (sent later or elsewhere), by provider and limit.',
      labelNames: ['provider', 'limit'],
      registers,
    });
    // Zero series for the known label values: dashboards show 0 rather than nothing, and
    // increase() counts the first event of a series (a series born at 1 has nothing to compare with).
    const providers = opts.providers ?? [];
    for (const provider of providers) {
      for (const outcome of MESSAGE_OUTCOMES) this.messages.inc({ provider, outcome }, 0);
      this.batchSeconds.zero({ provider });
      for (const measure of REPUTATION_MEASURES) this.reputationPauses.inc({ provider, measure }, 0);
      for (const to of providers) if (to !== provider) for (const reason_class of SWITCH_CAUSES) this.switches.inc({ from: provider, to, reason_class }, 0);
    }
    for (const target of opts.alertTargets ?? []) for (const result of ['delivered', 'failed'] as const) this.alertAttempts.inc({ target, result }, 0);
    for (const source of SCRAPE_SOURCES) this.scrapeErrors.inc({ source }, 0);
    if (opts.defaultMetrics !== false) {
      collectDefaultMetrics({ register: this.registry });
      // prom-client names these gauges with a counter's `_total` (promtool check metrics refuses them); nothing here reads them.
      for (const name of MISNAMED_DEFAULT_GAUGES) this.registry.removeSingleMetric(name);
    }
  }

  /** The worker's activity types: their failure counters start at 0. */
  knowActivities(types: Iterable<string>): void {
    for (const activity_type of types) this.activityFailures.inc({ activity_type }, 0);
  }

  /** One activity attempt ended with an error. */
  countActivityFailure(activityType: string): void {
    this.activityFailures.inc({ activity_type: activityType });
  }

  /** Where the scrape-time gauges read from (set once the worker has its Temporal client and store). */
  setScrapeSources(sources: ScrapeSources): void {
    this.sources = sources;
  }

  countMessages(provider: string, outcome: MessageOutcome, n = 1): void {
    if (n > 0) this.messages.inc({ provider, outcome }, n);
  }

  /** A quota take's answer: each counted period's use and allowance (the day counter's limit is day or warmup, whichever holds). */
  observeQuota(provider: string, usage: ReadonlyArray<{ limit: string; used: number; allowance: number }>): void {
    for (const u of usage) {
      // The day counter's series is one of day/warmup at a time: the other one is removed.
      if (u.limit === 'day' || u.limit === 'warmup') {
        const other = u.limit === 'day' ? 'warmup' : 'day';
        this.quotaUsed.remove({ provider, limit: other });
        this.quotaAllowance.remove({ provider, limit: other });
      }
      this.quotaUsed.set({ provider, limit: u.limit }, u.used);
      this.quotaAllowance.set({ provider, limit: u.limit }, u.allowance);
    }
  }

  countQuotaHeldBack(provider: string, limit: string, n: number): void {
    if (n > 0) this.quotaHeldBack.inc({ provider, limit }, n);
  }

  observeBatch(provider: string, seconds: number): void {
    this.batchSeconds.observe({ provider }, seconds);
  }

  countEvent(e: OpsEvent): void {
    if (e.kind === 'provider-switched') this.switches.inc({ from: e.from, to: e.to, reason_class: switchReasonClass(e) });
    if (e.kind === 'reputation-paused') this.reputationPauses.inc({ provider: e.provider, measure: e.measure });
  }

  /** The rates of a reputation window just judged (one campaign's last sends on its provider). */
  setReputationRates(w: SendWindow): void {
    for (const measure of REPUTATION_MEASURES) this.reputationRate.set({ provider: w.provider, measure }, ratePercent(w, measure) / 100);
  }

  countAlert(target: string, result: AlertResult): void {
    this.alertAttempts.inc({ target, result });
  }

  countScrapeError(source: ScrapeSource, err: unknown): void {
    this.scrapeErrors.inc({ source });
    this.onScrapeError(source, err);
  }

  /**
   * Reads the scrape-time sources into their gauges. A source that fails has its gauge emptied
   * (no stale values) and is counted in mailover_scrape_errors_total of the same scrape.
   */
  async refresh(): Promise<void> {
    const [states, counts, inFlight] = await Promise.all([
      this.read('circuit', (s) => s.circuitStates()),
      this.read('campaigns', (s) => s.campaignsByStatus()),
      this.read('ledger', (s) => s.ledgerRowsInFlight()),
    ]);
    if (!this.sources) return;
    this.circuit.reset();
    for (const [provider, state] of states ?? []) this.circuit.set({ provider }, CIRCUIT_STATE_VALUE[state]);
    this.campaigns.reset();
    if (counts) for (const status of RUNNING_CAMPAIGN_STATUSES) this.campaigns.set({ status }, counts[status]);
    this.inFlight.reset();
    if (inFlight !== undefined) this.inFlight.set(inFlight);
  }

  /** The exposition text of this registry, scrape-time gauges read first. */
  async text(): Promise<string> {
    await this.refresh();
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private async read<T>(source: ScrapeSource, get: (s: ScrapeSources) => Promise<T>): Promise<T | undefined> {
    if (!this.sources) return undefined;
    try {
      return await get(this.sources);
    } catch (err) {
      this.countScrapeError(source, err);
      return undefined;
    }
  }
}
