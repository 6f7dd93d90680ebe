/**
 * Monitoring as an operator runs it: promtool on deploy/prometheus (config, rules, the rules' unit
 * tests) and on real /metrics (worker and webhooks server); a real Prometheus (Debian's, from the
 * same package as promtool) scraping a worker process and a webhooks server with the deploy config
 * and alert rules, evaluating the Grafana dashboard's queries: all of them answer on a healthy
 * worker, and the switch panel shows the first failover of the worker's life.
 */
import { strict as assert } from 'assert';
import { spawn, spawnSync, type ChildProcess } from 'child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { dirname, join } from 'path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { parse, stringify } from 'yaml';
import { startComplianceServices, type ComplianceServices } from '../../src/compliance/services';
import { parseConfig } from '../../src/config';
import { freeLocalPort } from '../../src/local-ports';
import { MailoverMetrics } from '../../src/metrics/metrics';
import { temporalScrapeSources } from '../../src/metrics/scrape-sources';
import { ensurePromtool, findPromtool, PROMTOOL_INSTALL_COMMAND, type PromtoolHost } from '../../src/promtool';
import { markProviderDown, markProviderUp } from '../../src/provider-health-client';
import { DEFAULT_HEALTH_SETTINGS, providerHealthWorkflowId } from '../../workflows/provider-health-api';
import { audience, Harness, uniqueId } from '../support/harness';
import { startDevServer, writeWorkflowBundle } from '../support/temporal';
import { waitUntil } from '../support/wait';
import { WorkerProcess } from '../support/worker-process';

const ROOT = join(__dirname, '..', '..', '..');
const PROMETHEUS_DIR = join(ROOT, 'deploy', 'prometheus');
const DASHBOARD = join(ROOT, 'deploy', 'grafana', 'dashboards', 'mailover.json');

/** promtool with its arguments (stdin optional): exit code and output. */
function promtool(args: string[], opts: { input?: string; cwd?: string } = {}) {
  const r = spawnSync(ensurePromtool(), args, { input: opts.input, cwd: opts.cwd ?? ROOT, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

interface DashboardTarget {
  panel: string;
  refId: string;
  expr: string;
}

function dashboardTargets(): DashboardTarget[] {
  const dash = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Array<{ title: string; targets?: Array<{ refId: string; expr: string }> }> };
  return dash.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, refId: t.refId, expr: t.expr })));
}

/** Grafana's $__rate_interval, for a Prometheus that scrapes every second. */
const RATE_INTERVAL = '30s';
const forPrometheus = (expr: string) => expr.replace(/\$__rate_interval/g, RATE_INTERVAL);

interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

/** A Prometheus server (the Debian package's binary) with a config made from deploy/prometheus/prometheus.yml. */
class PrometheusProcess {
  private log = '';
  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
    private readonly exited: Promise<void>,
  ) {}

  static async start(dir: string, targets: Record<string, string[]>): Promise<PrometheusProcess> {
    // The server from the same package as promtool (Debian's prometheus), beside it.
    const binary = join(dirname(ensurePromtool()), 'prometheus');
    assert.ok(existsSync(binary), `no Prometheus server beside promtool (${binary}): ${PROMTOOL_INSTALL_COMMAND}`);
    const config = parse(readFileSync(join(PROMETHEUS_DIR, 'prometheus.yml'), 'utf8')) as {
      global: Record<string, string>;
      rule_files: string[];
      alerting?: unknown;
      scrape_configs: Array<Record<string, unknown> & { job_name: string }>;
    };
    // As deployed, but every second, the rules by absolute path, and the jobs' targets given (no Docker DNS here; no Alertmanager).
    config.global = { ...config.global, scrape_interval: '1s', evaluation_interval: '1s' };
    config.rule_files = config.rule_files.map((f) => join(PROMETHEUS_DIR, f));
    delete config.alerting;
    for (const job of config.scrape_configs) {
      const hosts = targets[job.job_name];
      assert.ok(hosts, `a target for job ${job.job_name}`);
      delete job.dns_sd_configs;
      job.static_configs = [{ targets: hosts }];
    }
    assert.deepEqual(config.scrape_configs.map((j) => j.job_name).sort(), Object.keys(targets).sort(), 'the deploy config scrapes exactly these jobs');
    writeFileSync(join(dir, 'prometheus.yml'), stringify(config));
    const port = await freeLocalPort();
    const child = spawn(
      binary,
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'tsdb')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const p = new PrometheusProcess(child, `http://127.0.0.1:${port}`, exited);
    child.stdout!.on('data', (c: Buffer) => (p.log += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (p.log += c.toString()));
    await waitUntil(async () => (await fetch(`${p.url}/-/ready`)).ok, `Prometheus to be ready (${binary})`, 30_000, 200);
    return p;
  }

  async query(expr: string): Promise<PromSample[]> {
    const res = await fetch(`${this.url}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: PromSample[] } };
    assert.equal(body.status, 'success', `query ${expr}: ${body.error}\n${this.log}`);
    assert.equal(body.data!.resultType, 'vector', expr);
    return body.data!.result;
  }

  async rules(): Promise<Array<{ name: string; health: string; lastError?: string }>> {
    const body = (await (await fetch(`${this.url}/api/v1/rules`)).json()) as {
      data: { groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string }> }> };
    };
    return body.data.groups.flatMap((g) => g.rules);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    await this.exited;
  }
}

const hostOf = (url: string) => new URL(url).host;

describe('monitoring: Prometheus config, alert rules and metrics text (promtool)', function () {
  this.timeout(60_000);

  it('monitoring: promtool check config, check rules and test rules pass on deploy/prometheus (every alert on series that reproduce it)', () => {
    const config = promtool(['check', 'config', join(PROMETHEUS_DIR, 'prometheus.yml')]);
    assert.equal(config.status, 0, config.output);
    assert.match(config.output, /SUCCESS: 1 rule files found/);
    const rules = promtool(['check', 'rules', join(PROMETHEUS_DIR, 'alerts.yml')]);
    assert.equal(rules.status, 0, rules.output);
    const tests = promtool(['test', 'rules', 'alerts.test.yml'], { cwd: PROMETHEUS_DIR });
    assert.equal(tests.status, 0, tests.output);
    // Every alert is tested: it appears as an expected alert in the unit tests.
    const alertNames = [...readFileSync(join(PROMETHEUS_DIR, 'alerts.yml'), 'utf8').matchAll(/^\s+- alert: (\w+)$/gm)].map((m) => m[1]);
    const tested = readFileSync(join(PROMETHEUS_DIR, 'alerts.test.yml'), 'utf8');
    assert.ok(alertNames.length >= 10, alertNames.join(', '));
    for (const name of alertNames) assert.match(tested, new RegExp(`alertname: ${name}\\n\\s+exp_alerts:\\n\\s+- exp_labels`), `${name} is tested firing`);
  });

  it("monitoring: the webhooks server's /metrics (with a bounce listener) passes promtool check metrics: HELP on every counter, delivery events by provider and type from 0", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mailover-monitoring-'));
    const { openStore } = await import('../../src/store/open-store');
    const store = await openStore({ databaseUrl: '', sqlitePath: join(dir, 'db.sqlite') });
    let services: ComplianceServices | undefined;
    try {
      services = await startComplianceServices(webhooksConfig(['mg-eu', 'smtp-backup']), store, { http: 0, bounces: 0 });
      const text = await (await fetch(`${services.http.url}/metrics`)).text();
      const check = promtool(['check', 'metrics'], { input: text });
      assert.equal(check.status, 0, `${check.output}\n${text}`);
      for (const name of [
        'mailover_webhook_refused_forged_total',
        'mailover_unsubscribe_one_click_total',
        'mailover_bounce_dsn_total',
        'mailover_delivery_events_total',
      ]) {
        assert.match(text, new RegExp(`^# HELP ${name} \\S`, 'm'), `${name} has HELP`);
      }
      for (const provider of ['mg-eu', 'smtp-backup']) {
        for (const type of ['complained', 'failed-permanent'])
          assert.match(text, new RegExp(`^mailover_delivery_events_total\\{provider="${provider}",type="${type}"\\} 0$`, 'm'));
      }
    } finally {
      await services?.stop();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A provider file's compliance part for a webhooks server on free ports. */
function webhooksConfig(providers: string[]) {
  const cfg = parseConfig(
    {
      providers: providers.map((name) => ({ name, kind: 'smtp', host: '127.0.0.1', port: 2525 })),
      unsubscribe: { baseUrl: 'http://127.0.0.1:8088', signingKey: '${UNSUB_KEY}' },
      webhooks: { host: '127.0.0.1', port: 0 },
      bounces: { domain: 'bounces.mailover.test', signingKey: '${BOUNCE_KEY}', host: '127.0.0.1', port: 0 },
    },
    { UNSUB_KEY: 'monitoring-test-unsubscribe-key', BOUNCE_KEY: 'monitoring-test-bounce-key' },
  );
  return { providers: cfg.providers, compliance: cfg.compliance };
}

describe('monitoring: a real Prometheus scraping a worker process and a webhooks server (Temporal dev server, SMTP sinks)', function () {
  this.timeout(300_000);
  let env: TestWorkflowEnvironment;
  let h: Harness;
  let worker: WorkerProcess | undefined;
  let services: ComplianceServices | undefined;
  let prometheus: PrometheusProcess | undefined;
  let metricsUrl: string;

  before(async () => {
    env = await startDevServer();
    h = await Harness.create({ env });
    worker = await WorkerProcess.start({
      address: env.address,
      taskQueue: h.taskQueue,
      dir: h.dir,
      providers: h.providerDefs,
      sqlitePath: join(h.dir, 'mailover.db'),
      bundlePath: await writeWorkflowBundle(h.dir),
      // No alert target: the alerts panel must still answer.
      extraConfig: { metrics: { port: 0, host: '127.0.0.1' } },
    });
    metricsUrl = /mailover worker metrics: (http:\/\/\S+)/.exec(worker.output)![1];
    services = await startComplianceServices(webhooksConfig(h.providerDefs.map((p) => p.name)), h.store, { http: 0, bounces: 0 });
    const dir = join(h.dir, 'prometheus');
    mkdirSync(dir);
    prometheus = await PrometheusProcess.start(dir, { 'mailover-worker': [hostOf(metricsUrl)], 'mailover-webhooks': [hostOf(services.http.url)] });
  });
  after(async () => {
    await prometheus?.stop();
    await services?.stop();
    await worker?.stop();
    await h?.close();
    await env?.teardown();
  });

  it("monitoring: the worker's /metrics (mailover, Node and the Temporal SDK's series) passes promtool check metrics", async () => {
    const text = await (await fetch(metricsUrl)).text();
    assert.match(text, /^temporal_\w+_total\{/m, 'the SDK runtime counters are in the scrape, named with _total');
    const check = promtool(['check', 'metrics'], { input: text });
    assert.equal(check.status, 0, check.output);
  });

  it('monitoring: on a healthy worker every query of the dashboard returns data in Prometheus (activity failures and alert attempts too, with no alert target), and every alert rule evaluates', async () => {
    const id = uniqueId('healthy');
    const result = await (await h.launch(id, audience(40), { batchSize: 10 })).result();
    assert.equal(result.status, 'completed');
    assert.equal(result.switches.length, 0, 'a healthy campaign');
    const targets = dashboardTargets();
    assert.ok(targets.length >= 20, `${targets.length} queries`);
    // Each query answers once Prometheus has scraped the campaign's series twice (rate() needs two samples).
    const empty = async () => {
      const missing: string[] = [];
      for (const t of targets) if ((await prometheus!.query(forPrometheus(t.expr))).length === 0) missing.push(`${t.panel} (${t.refId}): ${t.expr}`);
      return missing;
    };
    let missing: string[] = [];
    await waitUntil(async () => (missing = await empty()).length === 0, 'every dashboard query to return data', 30_000, 1_000).catch(() => undefined);
    assert.deepEqual(missing, [], 'dashboard queries without data');
    const failures = await prometheus!.query(forPrometheus(targets.find((t) => t.panel === 'Activity failures per second')!.expr));
    assert.ok(
      failures.some((s) => s.metric.activity_type === 'sendBatch' && Number(s.value[1]) === 0),
      'sendBatch at 0 failures',
    );
    const alerts = await prometheus!.query(forPrometheus(targets.find((t) => t.panel.startsWith('Alert delivery attempts'))!.expr));
    assert.deepEqual(
      alerts.map((s) => s.metric.target),
      ['(no alert target configured)'],
    );
    // The alert rules, loaded from deploy/prometheus/alerts.yml, evaluate against the real series without error.
    const rules = await waitUntil(
      async () => {
        const r = await prometheus!.rules();
        return r.length && r.every((x) => x.health !== 'unknown') ? r : undefined;
      },
      'every rule to be evaluated',
      30_000,
      500,
    );
    assert.deepEqual(
      rules.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.lastError}`),
      [],
    );
    const firing = await prometheus!.query('ALERTS');
    assert.deepEqual(
      firing.map((s) => s.metric.alertname),
      [],
      'a healthy stack raises no alert',
    );
  });

  it("monitoring: the dashboard's switch query shows the first failover of the worker's life (its series scraped at 0 before the switch)", async () => {
    const switchQuery = dashboardTargets().find((t) => t.panel === 'Provider switches')!;
    const pair = 'from="smtp-primary",to="smtp-secondary",reason_class="provider-refused"';
    const before = await prometheus!.query(`mailover_provider_switches_total{${pair}}`);
    assert.deepEqual(
      before.map((s) => s.value[1]),
      ['0'],
      'the series exists at 0 before any switch',
    );

    h.primary.failAfter(20, 'auth'); // 535: the provider refuses us
    const id = uniqueId('first-failover');
    const result = await (await h.launch(id, audience(60), { batchSize: 10 })).result();
    assert.equal(result.status, 'completed');
    assert.deepEqual(
      result.switches.map((s) => `${s.from}->${s.to}`),
      ['smtp-primary->smtp-secondary'],
    );
    await waitUntil(
      async () => (await prometheus!.query(`mailover_provider_switches_total{${pair}}`)).some((s) => s.value[1] === '1'),
      'Prometheus to scrape the switch',
      30_000,
      250,
    );
    const shown = await prometheus!.query(forPrometheus(switchQuery.expr));
    const first = shown.find((s) => s.metric.from === 'smtp-primary' && s.metric.to === 'smtp-secondary' && s.metric.reason_class === 'provider-refused');
    assert.ok(first && Number(first.value[1]) > 0, `the switch panel shows it: ${JSON.stringify(shown.filter((s) => Number(s.value[1]) > 0))}`);
    assert.ok(
      shown.filter((s) => s !== first).every((s) => Number(s.value[1]) === 0),
      'nothing else switched',
    );
  });

  it('monitoring: an operator marking a provider down with "fire drill in the datacenter" moves a running campaign as an operator switch, whatever the words', async () => {
    // After the failover above: the primary works again and an operator closes its circuit.
    await h.primary.heal();
    await markProviderUp(env.client, h.taskQueue, 'smtp-primary', { ...DEFAULT_HEALTH_SETTINGS }, 'fixed');
    h.primary.setAcceptDelay(100); // the campaign is still sending when the operator acts
    const id = uniqueId('operator-down');
    const sentBefore = h.primary.acceptedCount;
    const handle = await h.launch(id, audience(200), { batchSize: 10 });
    await h.primary.waitForCount(sentBefore + 10);
    await markProviderDown(env.client, h.taskQueue, 'smtp-primary', { ...DEFAULT_HEALTH_SETTINGS }, 'fire drill in the datacenter');
    const result = await handle.result();
    assert.equal(result.status, 'completed');
    assert.deepEqual(
      result.switches.map((s) => [s.from, s.to, s.reason]),
      [['smtp-primary', 'smtp-secondary', 'shared health: marked down by an operator: fire drill in the datacenter']],
    );
    const operator = 'from="smtp-primary",to="smtp-secondary",reason_class="operator"';
    await waitUntil(
      async () => (await prometheus!.query(`mailover_provider_switches_total{${operator}}`)).some((s) => s.value[1] === '1'),
      'the operator switch to be scraped',
      30_000,
      250,
    );
    const classes = await prometheus!.query('sum by (reason_class) (mailover_provider_switches_total{from="smtp-primary",to="smtp-secondary"}) > 0');
    assert.deepEqual(
      Object.fromEntries(classes.map((s) => [s.metric.reason_class, s.value[1]])),
      { 'provider-refused': '1', operator: '1' },
      'the failover before, and this one: no "drill"',
    );
  });

  it('monitoring: start-up is not a scrape error: a circuit not read yet is left out uncounted while its health workflow has no worker; once read, a failed read counts', async () => {
    const h2 = await Harness.create({ env });
    try {
      const provider = h2.providerDefs[0].name;
      await env.client.workflow.start('providerHealthWorkflow', {
        taskQueue: h2.taskQueue,
        workflowId: providerHealthWorkflowId(h2.taskQueue, provider),
        args: [{ provider, settings: DEFAULT_HEALTH_SETTINGS }],
      });
      const metrics = new MailoverMetrics({ providers: [provider], defaultMetrics: false });
      metrics.setScrapeSources(
        temporalScrapeSources({ client: env.client, taskQueue: h2.taskQueue, providers: [provider], store: h2.store, metrics, timeoutMs: 1_000 }),
      );
      /** One scrape: the circuit's sample and the circuit errors counted. */
      const scrape = async () => {
        const text = await metrics.text();
        const sample = (name: string, labels: string) => {
          const m = new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, 'm').exec(text);
          return m ? Number(m[1]) : undefined;
        };
        return {
          circuit: sample('mailover_provider_circuit_state', `provider="${provider}"`),
          errors: sample('mailover_scrape_errors_total', 'source="circuit"'),
        };
      };
      // No worker polls the task queue yet: the query cannot be answered. Twice: still start-up.
      assert.deepEqual(await scrape(), { circuit: undefined, errors: 0 }, 'left out, not counted');
      assert.deepEqual(await scrape(), { circuit: undefined, errors: 0 }, 'left out, not counted');
      await h2.startWorker();
      const read = await waitUntil(
        async () => {
          const s = await scrape();
          return s.circuit === 0 ? s : undefined;
        },
        'the circuit to be read once the worker runs',
        30_000,
        250,
      );
      assert.deepEqual(read, { circuit: 0, errors: 0 });
      await h2.stopWorker();
      assert.deepEqual(await scrape(), { circuit: undefined, errors: 1 }, 'its worker is gone: left out, and counted (it was read before)');
    } finally {
      await h2.stopWorker();
      await env.client.workflow
        .getHandle(providerHealthWorkflowId(h2.taskQueue, h2.providerDefs[0].name))
        .terminate('test over')
        .catch(() => undefined);
      await h2.close();
    }
  });
});

describe('monitoring: ensurePromtool (scripts/ensure-promtool.js, run by npm pretest)', () => {
  const dirs: string[] = [];
  const tempDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'mailover-promtool-'));
    dirs.push(d);
    return d;
  };
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  function fakeHost(over: Partial<PromtoolHost> & { env: NodeJS.ProcessEnv }): PromtoolHost & { calls: string[] } {
    const calls: string[] = [];
    return { isRoot: true, run: () => 1, log: () => undefined, policyRcD: join(tempDir(), 'policy-rc.d'), ...over, calls };
  }

  it('monitoring: ensurePromtool takes $PROMTOOL, else promtool on PATH; a PROMTOOL that is not executable is named', () => {
    const bin = tempDir();
    const tool = join(bin, 'promtool');
    writeFileSync(tool, '#!/bin/sh\n');
    chmodSync(tool, 0o755);
    assert.equal(findPromtool({ PATH: bin }), tool);
    assert.equal(ensurePromtool(fakeHost({ env: { PATH: '/nonexistent', PROMTOOL: tool } })), tool);
    assert.throws(() => findPromtool({ PATH: bin, PROMTOOL: join(bin, 'missing') }), /PROMTOOL=.*missing is not an executable file/);
  });

  it('monitoring: without promtool, as root with apt-get it installs the prometheus package (no recommends, noninteractive); elsewhere it stops with the one command that does', () => {
    const bin = tempDir();
    writeFileSync(join(bin, 'apt-get'), '#!/bin/sh\nexit 1\n');
    chmodSync(join(bin, 'apt-get'), 0o755);
    const env = { PATH: bin };
    assert.equal(findPromtool(env), undefined);
    const host = fakeHost({ env });
    host.run = (cmd, args, runEnv) => {
      // While the package installs, a policy-rc.d denies every service start (exit 101).
      assert.match(readFileSync(host.policyRcD, 'utf8'), /^#!\/bin\/sh\n[^]*\nexit 101\n$/);
      host.calls.push(`${runEnv?.DEBIAN_FRONTEND} ${cmd} ${args.join(' ')}`);
      writeFileSync(join(bin, 'promtool'), '#!/bin/sh\n');
      chmodSync(join(bin, 'promtool'), 0o755);
      return 0;
    };
    assert.equal(ensurePromtool(host), join(bin, 'promtool'));
    assert.deepEqual(host.calls, ['noninteractive apt-get install -y --no-install-recommends prometheus']);
    assert.throws(() => readFileSync(host.policyRcD), /ENOENT/, 'the policy made for the install is removed after it');
    rmSync(join(bin, 'promtool'));
    const notRoot = () => ensurePromtool(fakeHost({ env, isRoot: false }));
    assert.throws(
      notRoot,
      (err: Error) => err.message === `promtool is not installed; install it with: ${PROMTOOL_INSTALL_COMMAND} (or set PROMTOOL to its path)`,
    );
    assert.equal(PROMTOOL_INSTALL_COMMAND, 'sudo apt-get install -y --no-install-recommends prometheus');
    assert.throws(
      () => ensurePromtool(fakeHost({ env: { PATH: tempDir() } })),
      /promtool is not installed; install it with: sudo apt-get install/,
      'no apt-get',
    );
    // apt-get fails (even after an update): the same command, no half-installed promise.
    assert.throws(() => ensurePromtool(fakeHost({ env, run: () => 100 })), /apt-get could not install prometheus; install it with: sudo apt-get install/);
  });
});
