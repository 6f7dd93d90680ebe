/**
 * One campaign scenario's real parts: a Temporal dev server, two SMTP sinks acting as two
 * independent providers (optionally a Mailgun-compatible API, and local ESPs of any registered
 * kind), a store (SQLite in a temp dir, or PostgreSQL), and an in-process worker on its own task
 * queue. The ESPs are started and configured through their provider modules' emulators.
 * Everything is stopped in close().
 */
import { strict as assert } from 'assert';
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { Client } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { type Worker } from '@temporalio/worker';
import { startCampaign } from '../../src/client';
import { markProviderUp, providerHealth } from '../../src/provider-health-client';
import { DEFAULT_HEALTH_SETTINGS } from '../../workflows/provider-health-api';
import type { AlertTarget, HealthConfig, ProviderDefinition } from '../../src/config';
import type { DrillSettings } from '../../src/drill-settings';
import type { MailoverMetrics } from '../../src/metrics/metrics';
import type { ReputationSettings } from '../../src/reputation';
import type { BounceSettings, UnsubscribeSettings } from '../../src/compliance/settings';
import { mailgunModule } from '../../src/providers/mailgun';
import type { MailgunServer } from '../../src/providers/mailgun/emulator';
import type { MailgunProviderConfig } from '../../src/providers/mailgun/provider';
import { providerModule } from '../../src/providers/modules';
import type { EspEmulator } from '../../src/providers/provider-module';
import { ProviderRegistry } from '../../src/providers/registry';
import { smtpModule } from '../../src/providers/smtp';
import type { SmtpSink } from '../../src/providers/smtp/emulator';
import { openStore } from '../../src/store/open-store';
import type { AudienceRow, CampaignTemplate, Store } from '../../src/store/types';
import { createCampaignWorker } from '../../src/worker';
import type { CampaignOptions } from '../../workflows/campaign-api';
import type { SendWindowSpec } from '../../workflows/send-window';
import { TcpProxy } from './tcp-proxy';
import { workflowBundle } from './temporal';

let counter = 0;
export const uniqueId = (prefix: string) => `${prefix}-${process.pid}-${Date.now().toString(36)}-${++counter}`;

export function audience(n: number, domain = 'example.com'): AudienceRow[] {
  return Array.from({ length: n }, (_, i) => ({ email: `user${i + 1}@${domain}`, fields: { first_name: `User${i + 1}` } }));
}

/** A marketing template: merge field, unsubscribe link and postal address (engine fields). */
export const TEMPLATE = {
  subject: 'Hello {{first_name}}',
  text: 'Hi {{first_name}}, our news.\n\nUnsubscribe: {{unsubscribe_url}}\n{{postal_address}}',
  html: '<p>Hi {{first_name}}</p><p><a href="{{unsubscribe_url}}">Unsubscribe</a> | {{postal_address}}</p>',
};
export const POSTAL_ADDRESS = 'Mailover Test Ltd, 1 Test Street, Testville';

/** Test signing keys (in production they come from the environment). */
export const TEST_UNSUBSCRIBE_KEY = 'test-unsubscribe-key-0123456789';
export const TEST_BOUNCE_KEY = 'test-bounce-key-0123456789abcdef';
export const TEST_WEBHOOK_KEY = 'test-webhook-signing-key-0123456789';

/** The worker's compliance settings in tests: unsubscribe links on a placeholder base URL unless a test serves them. */
export function testCompliance(over: { unsubscribe?: Partial<UnsubscribeSettings>; bounces?: BounceSettings } = {}): {
  unsubscribe: UnsubscribeSettings;
  bounces?: BounceSettings;
} {
  return {
    unsubscribe: {
      baseUrl: 'http://unsubscribe.mailover.test',
      signingKey: TEST_UNSUBSCRIBE_KEY,
      scope: 'all',
      mailto: 'unsubscribe@bounces.mailover.test',
      ...over.unsubscribe,
    },
    ...(over.bounces ? { bounces: over.bounces } : {}),
  };
}

/** Fast timings for tests: a killed worker's batch is retried after 2 s, transient retries start at 100 ms. */
/**
 * One batch in flight, in seq order: for tests that count an ESP's calls or aim a fault at the call
 * after another (the window itself, several batches at once, is tested in window.test.ts).
 */
export const ONE_AT_A_TIME: CampaignOptions = { batchesInFlight: 1 };
export const FAST: CampaignOptions = { heartbeatTimeoutMs: 2_000, sendInitialIntervalMs: 100, sendMaxIntervalMs: 500, sendMaxAttempts: 4 };

export interface HarnessOptions {
  env: TestWorkflowEnvironment;
  /** 'sqlite' (default) or a PostgreSQL URL */
  database?: 'sqlite' | string;
  sinkAuth?: { user: string; pass: string };
  inFlightPolicy?: 'resend' | 'hold';
  /** Put a TCP proxy with programmable network faults between the worker and the primary sink. */
  proxyPrimary?: boolean;
  /** Also run a Mailgun-compatible API and configure a provider `mailgun` on it (with these settings). */
  mailgun?: boolean | Partial<MailgunProviderConfig>;
  /**
   * Also run local ESPs of any registered kind (its module's emulator) and configure a provider
   * on each: the emulator's own definition with `settings` merged in.
   */
  esps?: Array<{ kind: string; name: string; settings?: Record<string, unknown> }>;
  /** Shared provider health settings of the worker (circuit thresholds, cool-down, failback, probe). */
  health?: HealthConfig;
  /** Provider settings merged into the SMTP sinks' definitions (e.g. rateLimit), by provider name. */
  providerExtras?: Record<string, Partial<ProviderDefinition>>;
  /** Payload encryption for the worker and `client` (src/codec); default none, like the embedded demo. */
  dataConverter?: DataConverter;
  /** Failover drill settings for the worker (`drills:` in a provider file). */
  drills?: DrillSettings;
  /** Alert targets and metrics for the in-process worker. */
  alerts?: AlertTarget[];
  metrics?: MailoverMetrics;
  /** The worker's reputation breaker settings (defaults when absent). */
  reputation?: ReputationSettings;
  /** The quotas' clock of the in-process worker (tests move it to reach a quota's reset); default the wall clock. */
  quotaClock?: () => number;
}

export type WorkerCompliance = ReturnType<typeof testCompliance>;

export const MAILGUN_KEY = 'key-test-0123456789abcdef';
export const MAILGUN_DOMAIN = 'mg.mailover.test';

export class Harness {
  readonly taskQueue = uniqueId('tq');
  private worker?: Worker;
  private running?: Promise<void>;
  private codecClient?: Client;
  /** What the next startWorker() renders unsubscribe links and bounce addresses with (set it before). */
  compliance: WorkerCompliance = testCompliance();

  private constructor(
    readonly env: TestWorkflowEnvironment,
    readonly store: Store,
    readonly primary: SmtpSink,
    readonly secondary: SmtpSink,
    readonly providerDefs: ProviderDefinition[],
    readonly registry: ProviderRegistry,
    readonly dir: string,
    private readonly opts: HarnessOptions,
    readonly mailgun?: MailgunServer,
    readonly proxy?: TcpProxy,
    /** Every local ESP (the SMTP sinks, the Mailgun API and `esps`), in that order. */
    readonly emulators: EspEmulator[] = [],
  ) {}

  /** The local ESP a provider of this name sends to. */
  esp(name: string): EspEmulator {
    const e = this.emulators.find((x) => x.name === name);
    if (!e) throw new Error(`no local ESP '${name}' (have ${this.emulators.map((x) => x.name).join(', ')})`);
    return e;
  }

  static async create(opts: HarnessOptions): Promise<Harness> {
    const dir = mkdtempSync(join(tmpdir(), 'mailover-test-'));
    const store = await openStore(
      opts.database && opts.database !== 'sqlite' ? { databaseUrl: opts.database } : { databaseUrl: '', sqlitePath: join(dir, 'mailover.db') },
    );
    const sinks = smtpModule.emulator!;
    const primary = await sinks.start({ name: 'smtp-primary', credentials: opts.sinkAuth });
    const secondary = await sinks.start({ name: 'smtp-secondary', credentials: opts.sinkAuth });
    const proxy = opts.proxyPrimary ? await TcpProxy.start({ host: primary.host, port: primary.port }) : undefined;
    const defs: ProviderDefinition[] = [primary, secondary].map((s) => ({
      ...sinks.config(s),
      host: '127.0.0.1',
      port: s === primary && proxy ? proxy.port : s.port,
      pool: { maxConnections: 4 },
      timeouts: { connectionMs: 2_000, greetingMs: 2_000, socketMs: 5_000 },
      ...(opts.providerExtras?.[s.name] as object | undefined),
    }));
    const emulators: EspEmulator[] = [primary, secondary];
    let mailgun: MailgunServer | undefined;
    if (opts.mailgun) {
      mailgun = await mailgunModule.emulator!.start({ name: 'mailgun', credentials: { user: 'api', pass: MAILGUN_KEY } });
      emulators.push(mailgun);
      const extra = typeof opts.mailgun === 'object' ? opts.mailgun : {};
      defs.push({ ...mailgunModule.emulator!.config(mailgun), domain: MAILGUN_DOMAIN, timeoutMs: 2_000, lookupSettleMs: 0, ...extra });
    }
    for (const { kind, name, settings } of opts.esps ?? []) {
      const support = providerModule(kind).emulator;
      if (!support) throw new Error(`harness: kind '${kind}' has no emulator`);
      const esp = await support.start({ name });
      emulators.push(esp);
      // A kind registered at run time has its own definition type; ProviderDefinition types the built-in ones.
      defs.push({ ...support.config(esp), ...settings, name } as unknown as ProviderDefinition);
    }
    return new Harness(opts.env, store, primary, secondary, defs, new ProviderRegistry(defs), dir, opts, mailgun, proxy, emulators);
  }

  /** The environment's client, or one with the harness's data converter when it has one. */
  get client(): Client {
    if (!this.opts.dataConverter) return this.env.client;
    this.codecClient ??= new Client({ connection: this.env.connection, namespace: 'default', dataConverter: this.opts.dataConverter });
    return this.codecClient;
  }

  /** Start an in-process worker; `wrapStore` lets a test put faults between the worker and the store. */
  async startWorker(wrapStore: (s: Store) => Store = (s) => s): Promise<void> {
    this.worker = await createCampaignWorker({
      connection: this.env.nativeConnection,
      taskQueue: this.taskQueue,
      store: wrapStore(this.store),
      providers: this.registry,
      inFlightPolicy: this.opts.inFlightPolicy,
      health: this.opts.health,
      dataConverter: this.opts.dataConverter,
      drills: this.opts.drills,
      alerts: this.opts.alerts,
      metrics: this.opts.metrics,
      compliance: this.compliance,
      ...(this.opts.reputation ? { reputation: this.opts.reputation } : {}),
      quotaClock: this.opts.quotaClock,
      workflowBundle: await workflowBundle(),
    });
    this.running = this.worker.run();
  }

  async stopWorker(): Promise<void> {
    if (!this.worker) return;
    if (this.worker.getState() === 'RUNNING') this.worker.shutdown();
    await this.running;
    this.worker = undefined;
  }

  /** Store the campaign and its audience, then start its workflow. */
  async launch(
    campaignId: string,
    rows: AudienceRow[],
    opts: {
      providers?: string[];
      batchSize?: number;
      options?: CampaignOptions;
      list?: string;
      template?: CampaignTemplate;
      /** Send nothing before this time (`campaign start --at`). */
      startAt?: Date;
      /** Send only inside this window (as parsed from a campaign file). */
      window?: SendWindowSpec;
    } = {},
  ) {
    const providers = opts.providers ?? [this.primary.name, this.secondary.name];
    const batchSize = opts.batchSize ?? 50;
    await this.store.createCampaign({
      id: campaignId,
      from: 'News <news@mailover.test>',
      template: opts.template ?? TEMPLATE,
      providers,
      batchSize,
      postalAddress: POSTAL_ADDRESS,
      ...(opts.list ? { list: opts.list } : {}),
      ...(opts.window ? { window: opts.window } : {}),
    });
    await this.store.importAudience(campaignId, rows);
    return startCampaign(this.client, {
      campaignId,
      providers,
      batchSize,
      total: rows.length,
      taskQueue: this.taskQueue,
      options: { ...FAST, ...opts.options },
      ...(opts.startAt ? { startAt: opts.startAt } : {}),
      ...(opts.window ? { window: opts.window } : {}),
    });
  }

  /**
   * Tests that share one harness: a provider an earlier test broke has its shared circuit open
   * (every later campaign would avoid it). Mark every provider up, as an operator would after a fix.
   */
  async providersRecovered(): Promise<void> {
    for (const name of this.registry.names()) {
      const state = await providerHealth(this.client, this.taskQueue, name);
      if (state && (state.circuit !== 'closed' || state.manualDown !== undefined)) {
        await markProviderUp(this.client, this.taskQueue, name, { ...DEFAULT_HEALTH_SETTINGS, ...this.opts.health }, 'test: recovered');
      }
    }
  }

  /** Per address, how many messages every local ESP (both SMTP sinks, the Mailgun API and `esps`) accepted. */
  deliveries(): Map<string, number> {
    const all = new Map<string, number>();
    for (const e of this.emulators) for (const [addr, n] of e.countByRecipient()) all.set(addr, (all.get(addr) ?? 0) + n);
    return all;
  }

  async close(): Promise<void> {
    await this.stopWorker();
    await this.registry.closeAll();
    for (const e of this.emulators) await e.stop();
    await this.proxy?.stop();
    await this.store.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** user1..userN@example.com each accepted exactly once across every provider (the `except` ones never); nobody else mailed. */
export function assertExactlyOnce(h: Harness, n: number, except: string[] = []): void {
  const got = h.deliveries();
  const missing: string[] = [];
  const dupes: string[] = [];
  for (let i = 1; i <= n; i++) {
    const addr = `user${i}@example.com`;
    const count = got.get(addr) ?? 0;
    if (except.includes(addr)) {
      assert.equal(count, 0, `${addr} must not be sent`);
      continue;
    }
    if (count === 0) missing.push(addr);
    if (count > 1) dupes.push(`${addr} x${count}`);
  }
  assert.deepEqual({ missing: missing.slice(0, 10), dupes: dupes.slice(0, 10) }, { missing: [], dupes: [] });
  assert.equal(got.size, n - except.length, 'nobody outside the audience was mailed');
}
