#!/usr/bin/env node
/**
 * A production worker: `npm run worker` (later `mailover worker`).
 * Environment: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, MAILOVER_TASK_QUEUE, TEMPORAL_TLS_CERT +
 * TEMPORAL_TLS_KEY (mTLS) or TEMPORAL_API_KEY, MAILOVER_CONFIG (providers YAML),
 * DATABASE_URL (PostgreSQL) or MAILOVER_DB (SQLite file), MAILOVER_STICKY_QUEUE_TIMEOUT_MS.
 * Stops gracefully on SIGTERM/SIGINT.
 */
import { DefaultLogger, NativeConnection, Runtime, type LogLevel } from '@temporalio/worker';

const LOG_LEVELS: LogLevel[] = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'];

/** MAILOVER_LOG_LEVEL: TRACE, DEBUG, INFO (default), WARN or ERROR. */
function logLevel(): LogLevel {
  const v = (process.env.MAILOVER_LOG_LEVEL || 'INFO').toUpperCase() as LogLevel;
  if (!LOG_LEVELS.includes(v)) throw new Error(`MAILOVER_LOG_LEVEL: expected one of ${LOG_LEVELS.join(', ')}, got '${process.env.MAILOVER_LOG_LEVEL}'`);
  return v;
}
import { loadConfig } from './config';
import { ProviderRegistry } from './providers/registry';
import { describeStore, openStore } from './store/open-store';
import { temporalSettingsFromEnv } from './temporal-connection';
import { createCampaignWorker } from './worker';

/** Runs a worker until SIGTERM/SIGINT. */
export async function runWorker(configPath?: string): Promise<void> {
  const config = loadConfig(configPath);
  const settings = temporalSettingsFromEnv();
  Runtime.install({ logger: new DefaultLogger(logLevel()), shutdownSignals: ['SIGINT', 'SIGTERM'] });
  const store = await openStore();
  const providers = new ProviderRegistry(config.providers);
  const connection = await NativeConnection.connect({ address: settings.address, tls: settings.tls, apiKey: settings.apiKey });
  const bundlePath = process.env.MAILOVER_WORKFLOW_BUNDLE;
  const worker = await createCampaignWorker({
    connection,
    namespace: settings.namespace,
    taskQueue: settings.taskQueue,
    store,
    providers,
    inFlightPolicy: config.inFlight,
    compliance: config.compliance,
    workflowBundle: bundlePath ? { codePath: bundlePath } : undefined,
    // After a worker dies, its campaigns' next workflow task waits this long on the dead worker's
    // sticky queue before any other worker may take it.
    workerOptions: { stickyQueueScheduleToStartTimeout: Number(process.env.MAILOVER_STICKY_QUEUE_TIMEOUT_MS ?? 5_000) },
  });
  console.log(
    `mailover worker ready: pid ${process.pid}, temporal ${settings.address}/${settings.namespace}, task queue ${settings.taskQueue}, store ${describeStore(store)}, providers ${providers.names().join(', ')}`,
  );
  try {
    await worker.run();
  } finally {
    await providers.closeAll();
    await store.close();
    await connection.close();
  }
}

if (require.main === module) {
  runWorker().catch((err) => {
    console.error(`mailover worker: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
