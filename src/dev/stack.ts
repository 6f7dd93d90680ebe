/**
 * The embedded dev stack behind `mailover dev` and `npm start`: the Temporal dev server (with
 * its Web UI, persisted under the data directory), a worker, and local ESPs: the emulators
 * ./dev-esps.ts chooses, each started and configured through its provider module. It writes the
 * provider file other `mailover` commands use (data/mailover.dev.yaml) and stops everything in
 * stop().
 */
import { mkdirSync, writeFileSync } from 'fs';
import { join, resolve } from 'path';
import type { DataConverter } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, type Worker } from '@temporalio/worker';
import { stringify } from 'yaml';
import { dataConverterFromEnv } from '../codec/data-converter';
import type { AlertTarget } from '../config';
import { parseDrillSettings } from '../drill-settings';
import { providerModule, withSecretsAsEnvReferences } from '../providers/modules';
import type { EspEmulator, ProviderDefinitionBase, ProviderModule } from '../providers/provider-module';
import { ProviderRegistry } from '../providers/registry';
import { openStore } from '../store/open-store';
import type { Store } from '../store/types';
import { freeLocalPort, listenPreferring, preferredPort } from '../local-ports';
import { workerMetrics } from '../metrics/scrape-sources';
import { MetricsServer, runtimeMetrics } from '../metrics/server';
import { ensureTemporalCli } from '../temporal-cli';
import { createCampaignWorker } from '../worker';
import { startComplianceServices, type ComplianceServices } from '../compliance/services';
import type { ComplianceSettings } from '../compliance/settings';
import { campaignSearchAttributes } from '../../workflows/search-attributes';
import { DEV_CONFIG_FILE, DEV_ESPS } from './dev-esps';
import { childProcesses, isTemporalDevServer, stopChildrenWithThisProcess } from './orphan-guard';

/** Failover drills of the dev stack: seeds at the local inboxes (`mailover drill run --wait`). */
const DEV_DRILLS_FILE = { from: 'mailover drills <drills@mailover.dev>', seeds: ['ops@mailover.dev', 'oncall@mailover.dev'], recipients: 20, batchSize: 5 };
/**
 * Dev signing keys (fakes), written to the provider file as environment references like any
 * secret; the ESPs' own fake secrets go there as MAILOVER_DEV_<PROVIDER>_<SECRET>.
 */
export const DEV_KEYS = {
  MAILOVER_DEV_UNSUBSCRIBE_KEY: 'dev-unsubscribe-signing-key-0123',
  MAILOVER_DEV_BOUNCE_KEY: 'dev-bounce-signing-key-0123456789',
} as const;
export const DEV_BOUNCE_DOMAIN = 'bounces.mailover.dev';

export interface DevStackOptions {
  dataDir: string;
  /** Temporal frontend port; 0 = any free port. Default 7233, or a free one if taken. */
  port?: number;
  uiPort?: number;
  /** Ports of the local ESPs by provider name (0 = any free port, the default). */
  espPorts?: Record<string, number>;
  /** Port of the compliance HTTP server (webhooks, unsubscribe); default 8025, or a free one if taken. */
  webhooksPort?: number;
  /** Port of the inbound bounce listener; default any free port. */
  bouncePort?: number;
  /** Port of the worker's Prometheus endpoint (/metrics, and /healthz); default 9464, or a free one if taken. */
  metricsPort?: number;
  /** Where the dev worker sends its alerts (circuit, switch, holding, failed, drill finished); default none. */
  alerts?: AlertTarget[];
  taskQueue?: string;
  /** Payload encryption for the worker and the client; default from MAILOVER_PAYLOAD_KEYS (unset: off). */
  dataConverter?: DataConverter;
  log?: (line: string) => void;
}

export interface DevStack {
  env: TestWorkflowEnvironment;
  address: string;
  uiUrl: string;
  taskQueue: string;
  store: Store;
  providers: ProviderRegistry;
  /** The local ESPs, in the order of ./dev-esps.ts. */
  esps: DevEsp[];
  /** The local ESP of a provider name (an error for a name the stack does not run). */
  esp(name: string): DevEsp;
  configPath: string;
  worker: Worker;
  dataConverter?: DataConverter;
  compliance: ComplianceServices;
  /** The worker's Prometheus endpoint: mailover's series and the Temporal SDK's runtime metrics. */
  metricsUrl: string;
  stop(): Promise<void>;
}

/** One local ESP of the stack: the emulator standing in for a provider, and its module. */
export interface DevEsp {
  name: string;
  module: ProviderModule;
  emulator: EspEmulator;
  /** The definition the worker sends through it with (secrets as values). */
  definition: ProviderDefinitionBase;
  /** Where its events are posted, when its kind has webhooks. */
  webhookUrl?: string;
}

/** Where the Temporal runtime's own Prometheus exporter answers (installed once per process). */
let runtimeMetricsUrl: string | undefined;

export async function startDevStack(opts: DevStackOptions): Promise<DevStack> {
  const log = opts.log ?? (() => undefined);
  const dataDir = resolve(opts.dataDir);
  mkdirSync(dataDir, { recursive: true });
  if (runtimeMetricsUrl === undefined) {
    const runtime = runtimeMetrics(await freeLocalPort());
    Runtime.install({ logger: new DefaultLogger('ERROR'), telemetryOptions: runtime.telemetryOptions });
    runtimeMetricsUrl = runtime.url;
  }
  const dataConverter = opts.dataConverter ?? dataConverterFromEnv();
  const cli = ensureTemporalCli(log);
  const port = await preferredPort(opts.port ?? 7233);
  const uiPort = await preferredPort(opts.uiPort ?? 8233);
  log(`starting the Temporal dev server (${cli.path ?? 'SDK download'}) on 127.0.0.1:${port}, Web UI on ${uiPort}`);
  const serversBefore = childProcesses(process.pid, isTemporalDevServer);
  const env = await TestWorkflowEnvironment.createLocal({
    ...(dataConverter ? { client: { dataConverter } } : {}),
    server: {
      executable: cli.executable,
      ip: '127.0.0.1',
      port,
      ui: true,
      uiPort,
      dbFilename: join(dataDir, 'temporal-dev.db'),
      searchAttributes: campaignSearchAttributes,
      log: { format: 'pretty', level: 'error' },
    },
  });
  // Should this process be killed outright, the dev server it started goes with it.
  stopChildrenWithThisProcess(isTemporalDevServer, serversBefore);
  const stops: Array<() => Promise<unknown>> = [() => env.teardown()];
  const stop = async () => {
    for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  };
  try {
    const esps: DevEsp[] = [];
    for (const plan of DEV_ESPS) {
      const module = providerModule(plan.kind);
      const support = module.emulator;
      if (!support) throw new Error(`dev stack: the ${module.title} module (kind ${plan.kind}) has no emulator`);
      const emulator = await support.start({ name: plan.name, port: opts.espPorts?.[plan.name] ?? 0 });
      stops.push(() => emulator.stop());
      const webhookSigningKey = module.webhooks && emulator.setWebhook ? `dev-webhook-signing-key-${plan.name}` : undefined;
      const definition = { ...support.config(emulator, { webhookSigningKey }), ...plan.settings, name: plan.name, kind: module.kind };
      esps.push({ name: plan.name, module, emulator, definition });
    }
    const defs = esps.map((e) => e.definition);
    // The ports and the unsubscribe link's base are filled in once the servers listen.
    const unsubscribe = { baseUrl: '', mailto: `unsubscribe@${DEV_BOUNCE_DOMAIN}`, signingKey: DEV_KEYS.MAILOVER_DEV_UNSUBSCRIBE_KEY, scope: 'all' as const };
    const compliance: ComplianceSettings = {
      webhooks: { host: '127.0.0.1', port: 0, maxAgeSeconds: 300, maxBodyBytes: 64 * 1024 },
      unsubscribe,
      bounces: {
        domain: DEV_BOUNCE_DOMAIN,
        localPart: 'bounces',
        signingKey: DEV_KEYS.MAILOVER_DEV_BOUNCE_KEY,
        host: '127.0.0.1',
        port: opts.bouncePort ?? 0,
        maxMessageBytes: 1024 * 1024,
      },
    };
    const store = await openStore({ databaseUrl: '', sqlitePath: join(dataDir, 'mailover.db') });
    stops.push(() => store.close());
    const services = await listenPreferring(opts.webhooksPort ?? 8025, (port) =>
      startComplianceServices({ providers: defs, compliance }, store, { http: port }),
    );
    stops.push(() => services.stop());
    compliance.webhooks.port = services.http.port;
    unsubscribe.baseUrl = services.http.url; // the same object the compliance server was given
    compliance.bounces!.port = services.bounces!.port;
    for (const e of esps) {
      const key = e.module.webhooks?.signingKey(e.definition);
      if (!key || !e.emulator.setWebhook) continue;
      e.webhookUrl = `${services.http.url}/webhooks/${e.name}`;
      e.emulator.setWebhook(e.webhookUrl, key);
    }

    const configPath = join(dataDir, DEV_CONFIG_FILE);
    // Secrets go into the file as environment references, never as values.
    const envRef = (name: string) => `\${${name}}`;
    const espSecrets = withSecretsAsEnvReferences(defs, (d, field) => `MAILOVER_DEV_${d.name.toUpperCase().replace(/[^A-Z0-9]+/g, '_')}_${field.envSuffix}`);
    const fileDefs = espSecrets.defs;
    const fileCompliance = {
      webhooks: compliance.webhooks,
      unsubscribe: { ...compliance.unsubscribe, signingKey: envRef('MAILOVER_DEV_UNSUBSCRIBE_KEY' satisfies keyof typeof DEV_KEYS) },
      bounces: { ...compliance.bounces, signingKey: envRef('MAILOVER_DEV_BOUNCE_KEY' satisfies keyof typeof DEV_KEYS) },
    };
    const envLine = [...Object.entries(espSecrets.env), ...Object.entries(DEV_KEYS)].map(([k, v]) => `${k}=${v}`).join(' ');
    writeFileSync(
      configPath,
      `# Written by \`mailover dev\`: the local ESPs and compliance services of the dev stack.\n# A worker (or \`mailover webhooks\`) using it needs these fake keys: ${envLine}\n` +
        stringify({ inFlight: 'resend', providers: fileDefs, drills: DEV_DRILLS_FILE, ...fileCompliance }),
    );
    const providers = new ProviderRegistry(defs);
    stops.push(() => providers.closeAll());
    const taskQueue = opts.taskQueue ?? 'mailover';
    const drills = parseDrillSettings(
      DEV_DRILLS_FILE,
      defs.map((d) => d.name),
      [],
    );
    const alerts = opts.alerts ?? [];
    const metrics = workerMetrics({ client: env.client, taskQueue, providers: providers.names(), alertTargets: alerts.map((a) => a.name), store });
    const worker = await createCampaignWorker({
      connection: env.nativeConnection,
      taskQueue,
      store,
      providers,
      dataConverter,
      metrics,
      alerts,
      drills,
      compliance: { unsubscribe: compliance.unsubscribe, bounces: compliance.bounces },
    });
    const running = worker.run();
    stops.push(async () => {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
    });
    // Like `mailover worker`'s: /metrics, and /healthz answering 200 while the worker runs.
    const metricsServer = await listenPreferring(opts.metricsPort ?? 9464, (port) =>
      MetricsServer.start({
        metrics,
        host: '127.0.0.1',
        port,
        temporalRuntimeUrl: runtimeMetricsUrl,
        health: () => ({ ok: worker.getState() === 'RUNNING', state: worker.getState() }),
      }),
    );
    stops.push(() => metricsServer.close());
    return {
      env,
      address: `127.0.0.1:${port}`,
      uiUrl: `http://127.0.0.1:${uiPort}`,
      taskQueue,
      store,
      providers,
      esps,
      esp(name) {
        const e = esps.find((x) => x.name === name);
        if (!e) throw new Error(`the dev stack runs no provider '${name}' (it runs ${esps.map((x) => x.name).join(', ')})`);
        return e;
      },
      configPath,
      worker,
      dataConverter,
      compliance: services,
      metricsUrl: metricsServer.url,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
