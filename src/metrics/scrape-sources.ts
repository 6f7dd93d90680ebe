/**
 * What the scrape-time gauges read: provider circuits (each provider's health workflow, by query),
 * campaigns by status (Temporal visibility counts) and ledger rows in flight (the store).
 * Every Temporal call has a deadline, so a slow server makes a scrape lose samples, not hang.
 *
 * Start-up is not an error: while a worker starts, its task queue has no poller yet and the health
 * workflows are replayed, so their queries fail or time out. A provider's circuit that has not been
 * read yet, in the first `startupGraceMs` after the sources were made, is left out of the scrape
 * without counting an error; once read (or after the grace period) a failed read counts.
 */
import type { Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/common';
import { healthStateQuery, providerHealthWorkflowId, type CircuitState } from '../../workflows/provider-health-api';
import type { Store } from '../store/types';
import { MailoverMetrics, RUNNING_CAMPAIGN_STATUSES, type RunningCampaignStatus, type ScrapeSources } from './metrics';

export const CAMPAIGN_WORKFLOW_TYPE = 'campaignWorkflow';

export interface TemporalScrapeOptions {
  client: Client;
  taskQueue: string;
  /** Configured provider names. */
  providers: string[];
  store: Store;
  /** Where per-provider query failures are counted. */
  metrics: MailoverMetrics;
  /** Deadline of each Temporal call. Default 3 s. */
  timeoutMs?: number;
  /** How long after start a circuit not read yet may fail without counting as a scrape error. Default 60 s. */
  startupGraceMs?: number;
}

/** A visibility query string literal (a quote inside is escaped). */
const lit = (s: string) => `'${s.replace(/'/g, "\\'")}'`;

export function temporalScrapeSources(opts: TemporalScrapeOptions): ScrapeSources {
  const { client, taskQueue, providers, store, metrics } = opts;
  const timeoutMs = opts.timeoutMs ?? 3_000;
  const graceUntil = Date.now() + (opts.startupGraceMs ?? 60_000);
  /** Providers whose circuit has been read at least once. */
  const read = new Set<string>();
  const withDeadline = <T>(fn: () => Promise<T>) => client.withDeadline(Date.now() + timeoutMs, fn);

  async function circuitOf(provider: string): Promise<CircuitState> {
    const handle = client.workflow.getHandle(providerHealthWorkflowId(taskQueue, provider));
    try {
      const state = await withDeadline(() => handle.query(healthStateQuery));
      return state.circuit;
    } catch (err) {
      // No health workflow yet: nothing has ever opened this provider's circuit.
      if (err instanceof WorkflowNotFoundError) return 'closed';
      throw err;
    }
  }

  return {
    async circuitStates() {
      const states = new Map<string, CircuitState>();
      await Promise.all(
        providers.map(async (p) => {
          try {
            states.set(p, await circuitOf(p));
            read.add(p);
          } catch (err) {
            if (read.has(p) || Date.now() >= graceUntil) metrics.countScrapeError('circuit', err);
          }
        }),
      );
      return states;
    },

    async campaignsByStatus() {
      const base = `WorkflowType = ${lit(CAMPAIGN_WORKFLOW_TYPE)} AND ExecutionStatus = 'Running' AND TaskQueue = ${lit(taskQueue)}`;
      const count = async (extra?: string) => (await withDeadline(() => client.workflow.count(extra ? `${base} AND ${extra}` : base))).count;
      const known = RUNNING_CAMPAIGN_STATUSES.filter((s) => s !== 'starting');
      const [total, ...byStatus] = await Promise.all([count(), ...known.map((s) => count(`CampaignStatus = ${lit(s)}`))]);
      const result = { starting: 0 } as Record<RunningCampaignStatus, number>;
      known.forEach((s, i) => (result[s] = byStatus[i]));
      // A campaign has no CampaignStatus until its audience and providers are checked: starting.
      result.starting = Math.max(0, total - byStatus.reduce((a, b) => a + b, 0));
      return result;
    },

    ledgerRowsInFlight() {
      return store.countInFlight();
    },
  };
}

/**
 * A worker's metrics: the registry (with its providers' and alert targets' series at zero) and
 * the scrape-time gauges read through `client`. Used by `mailover worker` and the dev stack.
 */
export function workerMetrics(opts: Omit<TemporalScrapeOptions, 'metrics' | 'timeoutMs'> & { alertTargets: string[] }): MailoverMetrics {
  const metrics = new MailoverMetrics({ providers: opts.providers, alertTargets: opts.alertTargets });
  metrics.setScrapeSources(temporalScrapeSources({ client: opts.client, taskQueue: opts.taskQueue, providers: opts.providers, store: opts.store, metrics }));
  return metrics;
}
