/** Builds a mailover worker: campaign workflows plus their activities, on one task queue. */
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities } from '../activities';
import type { BounceSettings, UnsubscribeSettings } from './compliance/settings';
import type { InFlightPolicy } from './config';
import type { ProviderRegistry } from './providers/registry';
import type { Store } from './store/types';

export const DEFAULT_TASK_QUEUE = 'mailover';

export interface CampaignWorkerOptions {
  connection: NativeConnection;
  namespace?: string;
  taskQueue?: string;
  store: Store;
  providers: ProviderRegistry;
  inFlightPolicy?: InFlightPolicy;
  /** Unsubscribe links and VERP bounce addresses (the config's unsubscribe: and bounces: sections). */
  compliance?: { unsubscribe?: UnsubscribeSettings; bounces?: BounceSettings };
  /** A prebuilt workflow bundle (tests share one); by default workflows/ is bundled at start. */
  workflowBundle?: { code: string } | { codePath: string };
  /** Extra Worker options (concurrency, shutdown grace, identity...). */
  workerOptions?: Partial<WorkerOptions>;
}

export function workflowsPath(): string {
  return require.resolve('../workflows');
}

export async function createCampaignWorker(opts: CampaignWorkerOptions): Promise<Worker> {
  const activities = createActivities({ store: opts.store, providers: opts.providers, inFlightPolicy: opts.inFlightPolicy ?? 'resend', compliance: opts.compliance });
  return Worker.create({
    connection: opts.connection,
    namespace: opts.namespace ?? 'default',
    taskQueue: opts.taskQueue ?? DEFAULT_TASK_QUEUE,
    ...(opts.workflowBundle ? { workflowBundle: opts.workflowBundle } : { workflowsPath: workflowsPath() }),
    activities,
    shutdownGraceTime: '10 seconds',
    ...opts.workerOptions,
  });
}
