/** Builds a mailover worker: campaign workflows plus their activities, on one task queue. */
import type { DataConverter } from '@temporalio/common';
import { type NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities } from '../activities';
import { DEFAULT_HEALTH_SETTINGS } from '../workflows/provider-health-api';
import type { AlertTarget, HealthConfig, InFlightPolicy } from './config';
import type { DrillSettings } from './drill-settings';
import { activityFailureCounter } from './metrics/activity-failures';
import type { MailoverMetrics } from './metrics/metrics';
import type { BounceSettings, UnsubscribeSettings } from './compliance/settings';
import type { ProviderRegistry } from './providers/registry';
import type { ReputationSettings } from './reputation';
import type { Store } from './store/types';

export const DEFAULT_TASK_QUEUE = 'mailover';

export interface CampaignWorkerOptions {
  connection: NativeConnection;
  namespace?: string;
  taskQueue?: string;
  store: Store;
  providers: ProviderRegistry;
  inFlightPolicy?: InFlightPolicy;
  /** Shared provider health settings; defaults when absent. */
  health?: HealthConfig;
  /** Failover drill settings (`drills:` in the config). */
  drills?: DrillSettings;
  /** Alert targets for operational events (the notify activity). */
  alerts?: AlertTarget[];
  /** Prometheus metrics the activities count into. */
  metrics?: MailoverMetrics;
  /** The reputation breaker's thresholds and window (`reputation:`); defaults when absent. */
  reputation?: ReputationSettings;
  /** Unsubscribe links and VERP bounce addresses (the config's unsubscribe: and bounces: sections). */
  compliance?: { unsubscribe?: UnsubscribeSettings; bounces?: BounceSettings };
  /** The quotas' clock (epoch ms); default the wall clock. Tests move it to reach a quota's reset. */
  quotaClock?: () => number;
  /** A prebuilt workflow bundle (tests share one); by default workflows/ is bundled at start. */
  workflowBundle?: { code: string } | { codePath: string };
  /** Payload encryption (src/codec/data-converter.ts); clients must use the same one. */
  dataConverter?: DataConverter;
  /** Extra Worker options (concurrency, shutdown grace, identity...). */
  workerOptions?: Partial<WorkerOptions>;
}

export function workflowsPath(): string {
  return require.resolve('../workflows');
}

export async function createCampaignWorker(opts: CampaignWorkerOptions): Promise<Worker> {
  const activities = createActivities({
    store: opts.store,
    providers: opts.providers,
    inFlightPolicy: opts.inFlightPolicy ?? 'resend',
    health: opts.health ?? { ...DEFAULT_HEALTH_SETTINGS },
    drills: opts.drills,
    alerts: opts.alerts,
    metrics: opts.metrics,
    compliance: opts.compliance,
    ...(opts.reputation ? { reputation: opts.reputation } : {}),
    quotaClock: opts.quotaClock,
  });
  if (opts.metrics) opts.metrics.knowActivities(Object.keys(activities));
  return Worker.create({
    connection: opts.connection,
    namespace: opts.namespace ?? 'default',
    taskQueue: opts.taskQueue ?? DEFAULT_TASK_QUEUE,
    ...(opts.workflowBundle ? { workflowBundle: opts.workflowBundle } : { workflowsPath: workflowsPath() }),
    activities,
    ...(opts.dataConverter ? { dataConverter: opts.dataConverter } : {}),
    shutdownGraceTime: '10 seconds',
    ...(opts.metrics ? { interceptors: { activity: [activityFailureCounter(opts.metrics)] } } : {}),
    ...opts.workerOptions,
  });
}
