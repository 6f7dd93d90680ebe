#!/usr/bin/env node
/**
 * A production worker: `npm run worker` (later `mailover worker`).
 * Environment: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, MAILOVER_TASK_QUEUE, TEMPORAL_TLS_CERT +
 * TEMPORAL_TLS_KEY (mTLS) or TEMPORAL_API_KEY, MAILOVER_CONFIG (providers YAML),
 * DATABASE_URL (PostgreSQL) or MAILOVER_DB (SQLite file), MAILOVER_STICKY_QUEUE_TIMEOUT_MS,
 * MAILOVER_PAYLOAD_KEYS (payload encryption).
 * MAILOVER_METRICS_PORT / MAILOVER_METRICS_HOST (the /metrics endpoint; or `metrics:` in the config file).
 * MAILOVER_FAULT_KILL_IN_TRANSACTION (the fault suite only, see storeFaultsFromEnv).
 * Stops gracefully on SIGTERM/SIGINT.
 */
import { DefaultLogger, NativeConnection, Runtime, type LogLevel } from '@temporalio/worker';

const LOG_LEVELS: LogLevel[] = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'];

/** MAILOVER_LOG_LEVEL: TRACE, DEBUG, INFO (default), WARN or ERROR. */
function logLevel(env: NodeJS.ProcessEnv): LogLevel {
  const v = (env.MAILOVER_LOG_LEVEL || 'INFO').toUpperCase() as LogLevel;
  if (!LOG_LEVELS.includes(v)) throw new Error(`MAILOVER_LOG_LEVEL: expected one of ${LOG_LEVELS.join(', ')}, got '${env.MAILOVER_LOG_LEVEL}'`);
  return v;
}
import { describeEncryption } from './codec/data-converter';
import { Client } from '@temporalio/client';
import { ConfigError, loadConfig, type MailoverConfig, type MetricsConfig } from './config';
import { freeLocalPort } from './local-ports';
import { workerMetrics } from './metrics/scrape-sources';
import { MetricsServer, runtimeMetrics } from './metrics/server';
import { ProviderRegistry } from './providers/registry';
import { describeStore, openStore, type StoreFaults } from './store/open-store';
import { temporalSettingsFromEnv, type TemporalSettings } from './temporal-connection';
import { createCampaignWorker } from './worker';

/**
 * The metrics endpoint: `metrics: { port, host }` in the config file; MAILOVER_METRICS_PORT (and
 * MAILOVER_METRICS_HOST) turn it on or override the file. Undefined: no endpoint.
 */
export function metricsSettings(fromFile: MetricsConfig | undefined, env: NodeJS.ProcessEnv = process.env): MetricsConfig | undefined {
  const portVar = env.MAILOVER_METRICS_PORT;
  if (portVar === undefined || portVar === '') return fromFile && { ...fromFile, host: env.MAILOVER_METRICS_HOST || fromFile.host };
  const port = Number(portVar);
  if (!/^\d+$/.test(portVar) || port > 65535) throw new ConfigError(`MAILOVER_METRICS_PORT: expected a port 0-65535 (0: any free port), got '${portVar}'`);
  return { port, host: env.MAILOVER_METRICS_HOST || fromFile?.host || '0.0.0.0' };
}

/**
 * Fault injection for the fault suite: with MAILOVER_FAULT_KILL_IN_TRANSACTION=N the worker
 * kills itself (SIGKILL) inside its Nth ledger transaction, after the first statement and
 * before the commit. Unset in production (no faults).
 */
export function storeFaultsFromEnv(env: NodeJS.ProcessEnv = process.env): StoreFaults | undefined {
  const killInTransaction = Number(env.MAILOVER_FAULT_KILL_IN_TRANSACTION ?? 0);
  return killInTransaction > 0 ? { killInTransaction } : undefined;
}

/** Logs a failing scrape source at most once a minute. */
function scrapeErrorLogger(): (source: string, err: unknown) => void {
  const lastLogged = new Map<string, number>();
  return (source, err) => {
    const now = Date.now();
    if (now - (lastLogged.get(source) ?? 0) < 60_000) return;
    lastLogged.set(source, now);
    Runtime.instance().logger.warn(`metrics: ${source} could not be read for this scrape: ${err instanceof Error ? err.message : String(err)}`);
  };
}

/** What a worker reads and checks before it connects to anything. */
export interface WorkerStartup {
  /** The config file, every secret resolved from the environment. */
  config: MailoverConfig;
  settings: TemporalSettings;
  metrics?: MetricsConfig;
  logLevel: LogLevel;
}

/**
 * Every check a worker makes at start-up before it connects anywhere: the config file (literal
 * secrets, unset environment variables, duplicate names, each provider's settings...), the Temporal
 * settings (TLS files, payload keys), the metrics settings and the log level. Throws the first
 * problem as one message. `mailover campaign start --dry-run` runs it too.
 */
export function workerStartup(configPath?: string, env: NodeJS.ProcessEnv = process.env): WorkerStartup {
  const config = loadConfig(configPath ?? env.MAILOVER_CONFIG ?? './mailover.yaml', env);
  return { config, settings: temporalSettingsFromEnv(env), metrics: metricsSettings(config.metrics, env), logLevel: logLevel(env) };
}

/** Runs a worker until SIGTERM/SIGINT. */
export async function runWorker(configPath?: string): Promise<void> {
  const { config, settings, metrics: metricsConfig, logLevel: level } = workerStartup(configPath);
  // The SDK's runtime metrics are served on a private local port and appended to /metrics.
  const runtime = metricsConfig ? runtimeMetrics(Number(process.env.MAILOVER_TEMPORAL_METRICS_PORT || 0) || (await freeLocalPort())) : undefined;
  Runtime.install({
    logger: new DefaultLogger(level),
    shutdownSignals: ['SIGINT', 'SIGTERM'],
    ...(runtime ? { telemetryOptions: runtime.telemetryOptions } : {}),
  });
  const store = await openStore({ faults: storeFaultsFromEnv() });
  const providers = new ProviderRegistry(config.providers);
  const connection = await NativeConnection.connect({ address: settings.address, tls: settings.tls, apiKey: settings.apiKey });
  // Scrape-time gauges read Temporal (queries, visibility counts) through a client on the worker's connection.
  const metrics = metricsConfig
    ? workerMetrics({
        client: new Client({ connection, namespace: settings.namespace, dataConverter: settings.dataConverter }),
        taskQueue: settings.taskQueue,
        providers: providers.names(),
        alertTargets: config.alerts.map((a) => a.name),
        store,
      })
    : undefined;
  const bundlePath = process.env.MAILOVER_WORKFLOW_BUNDLE;
  const worker = await createCampaignWorker({
    connection,
    namespace: settings.namespace,
    taskQueue: settings.taskQueue,
    store,
    providers,
    inFlightPolicy: config.inFlight,
    health: config.health,
    dataConverter: settings.dataConverter,
    drills: config.drills,
    alerts: config.alerts,
    metrics,
    compliance: config.compliance,
    reputation: config.reputation,
    workflowBundle: bundlePath ? { codePath: bundlePath } : undefined,
    // After a worker dies, its campaigns' next workflow task waits this long on the dead worker's
    // sticky queue before any other worker may take it.
    workerOptions: { stickyQueueScheduleToStartTimeout: Number(process.env.MAILOVER_STICKY_QUEUE_TIMEOUT_MS ?? 5_000) },
  });
  let metricsServer: MetricsServer | undefined;
  if (metrics && metricsConfig) {
    metrics.onScrapeError = scrapeErrorLogger();
    metricsServer = await MetricsServer.start({
      metrics,
      host: metricsConfig.host,
      port: metricsConfig.port,
      temporalRuntimeUrl: runtime?.url,
      health: () => ({ ok: worker.getState() === 'RUNNING', state: worker.getState() }),
    });
    console.log(`mailover worker metrics: ${metricsServer.url}`);
  }
  const alertNames = config.alerts.length ? `, alerts ${config.alerts.map((a) => a.name).join(', ')}` : '';
  console.log(
    `mailover worker ready: pid ${process.pid}, temporal ${settings.address}/${settings.namespace}, task queue ${settings.taskQueue}, store ${describeStore(store)}, providers ${providers.names().join(', ')}${alertNames}, ${describeEncryption(settings.dataConverter)}`,
  );
  try {
    await worker.run();
  } finally {
    await metricsServer?.close();
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
