/**
 * The worker's Prometheus metrics (prom-client, one registry per worker process).
 *
 * Counted where things happen: messages and batch latency in the sendBatch activity (only rows
 * a send attempt settled itself, so retries never double count), provider switches and alert
 * deliveries in the notify activity. Read at scrape time: provider circuit states, campaigns by
 * status and ledger rows in flight (see scrape-sources.ts); a source that fails leaves its samples
 * out of that scrape and counts `mailover_scrape_errors_total`, it never fails the scrape.
 *
 * Labels are bounded: provider and alert target names come from the config, outcomes and reason
 * classes are fixed sets; free text (reasons, campaign ids) is never a label.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CircuitState } from '../../workflows/provider-health-api';
import type { OpsEvent } from '../ops-events';

export type MessageOutcome = 'accepted' | 'rejected' | 'suppressed';
export const MESSAGE_OUTCOMES: readonly MessageOutcome[] = ['accepted', 'rejected', 'suppressed'];

/** Why a campaign changed provider, as a bounded label. */
export type SwitchReasonClass = 'failover' | 'failback' | 'drill';

export type AlertResult = 'delivered' | 'failed';

/** Circuit state as a number for a gauge: 0 closed, 1 half-open, 2 open. */
export const CIRCUIT_STATE_VALUE: Record<CircuitState, number> = { closed: 0, 'half-open': 1, open: 2 };

/** Campaign statuses of running campaign workflows (the CampaignStatus search attribute). */
export const RUNNING_CAMPAIGN_STATUSES = ['starting', 'running', 'paused', 'holding'] as const;
export type RunningCampaignStatus = (typeof RUNNING_CAMPAIGN_STATUSES)[number];

/** What the scrape-time gauges read (Temporal and the store); see scrape-sources.ts. */
export interface ScrapeSources {
  /** Per configured provider; a provider whose state cannot be read is left out. */
  circuitStates(): Promise<Map<string, CircuitState>>;
  campaignsByStatus(): Promise<Record<RunningCampaignStatus, number>>;
  ledgerRowsInFlight(): Promise<number>;
}

export function switchReasonClass(e: Extract<OpsEvent, { kind: 'provider-switched' }>): SwitchReasonClass {
  if (e.failback) return 'failback';
  // Drill campaigns force a provider down with a reason that names the drill.
  if (/\bdrill\b/i.test(e.reason)) return 'drill';
  return 'failover';
}

export class MailoverMetrics {
  readonly registry = new Registry();
  private readonly messages: Counter<'provider' | 'outcome'>;
  private readonly batchSeconds: Histogram<'provider'>;
  private readonly switches: Counter<'from' | 'to' | 'reason_class'>;
  private readonly alerts: Counter<'target' | 'result'>;
  private readonly scrapeErrors: Counter<'source'>;
  private readonly circuit: Gauge<'provider'>;
  private readonly campaigns: Gauge<'status'>;
  private readonly inFlight: Gauge;
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
      help: 'Campaign provider switches, by from, to and reason class (failover, failback, drill).',
      labelNames: ['from', 'to', 'reason_class'],
      registers,
    });
    this.alerts = new Counter({
      name: 'mailover_alerts_total',
      help: 'Alert delivery attempts, by target name and result (delivered, failed).',
      labelNames: ['target', 'result'],
      registers,
    });
    this.scrapeErrors = new Counter({
      name: 'mailover_scrape_errors_total',
      help: 'Scrape-time sources that could not be read (circuit, campaigns, ledger, temporal_runtime); their samples were left out.',
      labelNames: ['source'],
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
      help: 'Running campaign workflows on this task queue, by CampaignStatus (starting, running, paused, holding).',
      labelNames: ['status'],
      registers,
    });
    this.inFlight = new Gauge({
      name: 'mailover_ledger_rows_in_flight',
      help: 'Ledger rows in state sending (claimed or handed to a provider, not settled), all campaigns in the store.',
      registers,
    });
    // Zero series for the known label values, so dashboards show 0 rather than nothing.
    for (const provider of opts.providers ?? []) {
      for (const outcome of MESSAGE_OUTCOMES) this.messages.inc({ provider, outcome }, 0);
      this.batchSeconds.zero({ provider });
    }
    for (const target of opts.alertTargets ?? []) for (const result of ['delivered', 'failed'] as const) this.alerts.inc({ target, result }, 0);
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** Where the scrape-time gauges read from (set once the worker has its Temporal client and store). */
  setScrapeSources(sources: ScrapeSources): void {
    this.sources = sources;
  }

  countMessages(provider: string, outcome: MessageOutcome, n = 1): void {
    if (n > 0) this.messages.inc({ provider, outcome }, n);
  }

  observeBatch(provider: string, seconds: number): void {
    this.batchSeconds.observe({ provider }, seconds);
  }

  countEvent(e: OpsEvent): void {
    if (e.kind === 'provider-switched') this.switches.inc({ from: e.from, to: e.to, reason_class: switchReasonClass(e) });
  }

  countAlert(target: string, result: AlertResult): void {
    this.alerts.inc({ target, result });
  }

  countScrapeError(source: string, err: unknown): void {
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

  private async read<T>(source: string, get: (s: ScrapeSources) => Promise<T>): Promise<T | undefined> {
    if (!this.sources) return undefined;
    try {
      return await get(this.sources);
    } catch (err) {
      this.countScrapeError(source, err);
      return undefined;
    }
  }
}
