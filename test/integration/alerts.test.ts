/**
 * Alerts: operational events POSTed by the notify activity to local HTTP receivers, through a
 * real worker on a real Temporal dev server (retries are Temporal's), and the config rules.
 */
import { strict as assert } from 'assert';
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, type Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { ConfigError, DEFAULT_ALERT_TIMEOUT_MS, parseConfig, type AlertTarget } from '../../src/config';
import { MailoverMetrics } from '../../src/metrics/metrics';
import { describeOpsEvent, OPS_EVENT_KINDS, type OpsEvent } from '../../src/ops-events';
import { ProviderRegistry } from '../../src/providers/registry';
import { openStore } from '../../src/store/open-store';
import type { Store } from '../../src/store/types';
import { metricsSettings } from '../../src/worker-main';
import { createCampaignWorker } from '../../src/worker';
import type { RaiseOutcome } from '../fixtures/ops-event-workflows';
import { AlertReceiver, closedPortUrl } from '../support/alert-receiver';
import { assertExactlyOnce, audience, Harness, uniqueId } from '../support/harness';
import { startDevServer } from '../support/temporal';

const OPENED: OpsEvent = { kind: 'circuit-opened', provider: 'smtp-primary', reason: 'connection refused (ECONNREFUSED)', by: 'failures' };
const SWITCHED: OpsEvent = {
  kind: 'provider-switched',
  campaignId: 'autumn',
  from: 'smtp-primary',
  to: 'smtp-secondary',
  reason: 'connection refused',
  atSeq: 151,
  failback: false,
};

const target = (name: string, kind: AlertTarget['kind'], url: string, extra: Partial<AlertTarget> = {}): AlertTarget => ({
  name,
  kind,
  url,
  events: [...OPS_EVENT_KINDS],
  timeoutMs: DEFAULT_ALERT_TIMEOUT_MS,
  ...extra,
});

/** mailover_alert_attempts_total{target,result} from a registry. */
async function alertCount(metrics: MailoverMetrics, targetName: string, result: 'delivered' | 'failed'): Promise<number> {
  const m = (await metrics.registry.getMetricsAsJSON()).find((x) => x.name === 'mailover_alert_attempts_total');
  return (m?.values ?? []).filter((v) => v.labels.target === targetName && v.labels.result === result).reduce((a, v) => a + v.value, 0);
}

describe('alerts (config)', () => {
  const providers = [{ name: 'smtp-primary', kind: 'smtp', host: 'localhost', port: 25 }];

  it('alerts config: a webhook URL written into the file is refused; an environment reference is resolved', () => {
    assert.throws(
      () => parseConfig({ providers, alerts: [{ name: 'ops-slack', kind: 'slack', url: 'https://hooks.slack.com/services/T0/B0/SECRET' }] }, {}),
      (err: Error) =>
        err instanceof ConfigError &&
        /alerts\[0\]\.url: a webhook URL is a secret: write it as an environment reference \(url: "\$\{OPS_SLACK_URL\}"\)/.test(err.message) &&
        !err.message.includes('SECRET'),
    );
    const cfg = parseConfig(
      {
        providers,
        alerts: [{ name: 'ops-slack', kind: 'slack', url: '${OPS_SLACK_WEBHOOK}', events: ['circuit-opened', 'campaign-holding'], timeoutMs: 2000 }],
      },
      { OPS_SLACK_WEBHOOK: 'https://hooks.example/x' },
    );
    assert.deepEqual(cfg.alerts, [
      { name: 'ops-slack', kind: 'slack', url: 'https://hooks.example/x', events: ['circuit-opened', 'campaign-holding'], timeoutMs: 2000 },
    ]);
    const all = parseConfig({ providers, alerts: [{ name: 'ops-hook', kind: 'webhook', url: '${HOOK}' }] }, { HOOK: 'http://127.0.0.1:9/x' });
    assert.deepEqual(all.alerts[0].events, OPS_EVENT_KINDS, 'default: every event kind');
    assert.equal(all.alerts[0].timeoutMs, DEFAULT_ALERT_TIMEOUT_MS);
    assert.deepEqual(parseConfig({ providers }, {}).alerts, [], 'no alerts section: none');
  });

  it('alerts config: unknown event kinds, kinds, missing variables, bad URLs and duplicate names are errors naming the field (never the URL)', () => {
    const problems = (alerts: unknown, env: NodeJS.ProcessEnv = { U: 'http://127.0.0.1/x' }) => {
      try {
        parseConfig({ providers, alerts }, env);
      } catch (err) {
        return (err as Error).message;
      }
      return assert.fail('expected a ConfigError');
    };
    assert.match(
      problems([{ name: 'a', kind: 'slack', url: '${U}', events: ['circuit-opend'] }]),
      /alerts\[0\]\.events\[0\]: unknown event kind "circuit-opend" \(expected one of circuit-opened, circuit-closed, provider-switched, campaign-holding, reputation-paused, campaign-failed, drill-finished\)/,
    );
    assert.match(problems([{ name: 'a', kind: 'pager', url: '${U}' }]), /alerts\[0\]\.kind: expected one of slack, webhook, got "pager"/);
    assert.match(problems([{ name: 'a', kind: 'slack', url: '${NOPE}' }]), /alerts\[0\]\.url: environment variable NOPE is not set/);
    const bad = problems([{ name: 'a', kind: 'slack', url: '${U}' }], { U: 'ftp://secret-host/very-secret' });
    assert.match(bad, /alerts\[0\]\.url: expected an http\(s\) URL/);
    assert.ok(!bad.includes('very-secret'), 'the resolved URL is not repeated in the error');
    assert.match(
      problems([
        { name: 'a', kind: 'slack', url: '${U}' },
        { name: 'a', kind: 'webhook', url: '${U}' },
      ]),
      /alerts: duplicate alert name 'a'/,
    );
    assert.match(
      problems([{ name: 'a', kind: 'slack', url: '${U}', timeoutMs: 10 }]),
      /alerts\[0\]\.timeoutMs: expected a whole number from 100 to 120000, got 10/,
    );
    assert.match(problems([{ name: 'a', kind: 'slack', url: '${U}', channel: '#ops' }]), /alerts\[0\]\.channel: unknown field/);
    assert.match(problems({ name: 'a' }), /alerts: expected a list of alert targets/);
  });

  it('metrics config: the file enables the endpoint; MAILOVER_METRICS_PORT enables or overrides it; a bad port is named', () => {
    const cfg = parseConfig({ providers, metrics: { port: 9464 } }, {});
    assert.deepEqual(cfg.metrics, { port: 9464, host: '0.0.0.0' });
    assert.deepEqual(metricsSettings(cfg.metrics, {}), { port: 9464, host: '0.0.0.0' });
    assert.deepEqual(metricsSettings(cfg.metrics, { MAILOVER_METRICS_PORT: '9500', MAILOVER_METRICS_HOST: '127.0.0.1' }), { port: 9500, host: '127.0.0.1' });
    assert.equal(metricsSettings(undefined, {}), undefined, 'off unless asked for');
    assert.deepEqual(metricsSettings(undefined, { MAILOVER_METRICS_PORT: '0' }), { port: 0, host: '0.0.0.0' });
    assert.throws(
      () => metricsSettings(undefined, { MAILOVER_METRICS_PORT: 'http' }),
      /MAILOVER_METRICS_PORT: expected a port 0-65535 \(0: any free port\), got 'http'/,
    );
    assert.throws(() => parseConfig({ providers, metrics: { port: 70000 } }, {}), /metrics\.port: expected a port 0-65535/);
  });
});

describe('alerts (notify activity through a real worker on a Temporal dev server)', function () {
  this.timeout(120_000);
  let env: TestWorkflowEnvironment;
  let bundle: WorkflowBundleWithSourceMap;
  const receivers: AlertReceiver[] = [];
  let worker: Worker | undefined;
  let running: Promise<void> | undefined;
  let taskQueue: string;
  let metrics: MailoverMetrics;
  let dir: string;
  let store: Store;

  before(async () => {
    env = await startDevServer();
    bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../fixtures/ops-event-workflows'), logger: new DefaultLogger('WARN') });
    dir = mkdtempSync(join(tmpdir(), 'mailover-alerts-'));
    store = await openStore({ databaseUrl: '', sqlitePath: join(dir, 'mailover.db') });
  });
  after(async () => {
    await store?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    await env?.teardown();
  });
  afterEach(async () => {
    if (worker?.getState() === 'RUNNING') worker.shutdown();
    await running;
    worker = undefined;
    for (const r of receivers.splice(0)) await r.stop();
  });

  async function receiver(): Promise<AlertReceiver> {
    const r = await AlertReceiver.start();
    receivers.push(r);
    return r;
  }

  async function startWorker(alerts: AlertTarget[]): Promise<void> {
    taskQueue = uniqueId('alerts');
    metrics = new MailoverMetrics({ alertTargets: alerts.map((a) => a.name), defaultMetrics: false });
    worker = await createCampaignWorker({
      connection: env.nativeConnection,
      taskQueue,
      store,
      providers: new ProviderRegistry([]),
      alerts,
      metrics,
      workflowBundle: bundle,
    });
    running = worker.run();
  }

  function raise(events: OpsEvent[], maximumAttempts = 5): Promise<RaiseOutcome[]> {
    return env.client.workflow.execute('raiseOpsEvents', {
      taskQueue,
      workflowId: uniqueId('raise'),
      args: [events, { maximumAttempts, initialIntervalMs: 100 }],
    });
  }

  it('alerts: an event reaches a Slack-compatible receiver and a generic webhook receiver with their documented payloads; event filters apply', async () => {
    const slack = await receiver();
    const hook = await receiver();
    await startWorker([
      target('ops-slack', 'slack', slack.url('/services/T0/B0/xyz')),
      target('ops-hook', 'webhook', hook.url('/mailover'), { events: ['circuit-opened', 'campaign-holding'] }),
    ]);
    const outcomes = await raise([OPENED, SWITCHED]);
    assert.deepEqual(outcomes, [
      { kind: 'circuit-opened', delivered: true },
      { kind: 'provider-switched', delivered: true },
    ]);

    assert.equal(slack.received.length, 2, 'slack wants every kind');
    const [s1, s2] = slack.received;
    assert.equal(s1.path, '/services/T0/B0/xyz');
    assert.equal(s1.headers['content-type'], 'application/json');
    assert.equal(s1.body.text, `:rotating_light: mailover: ${describeOpsEvent(OPENED)}`);
    assert.equal(s1.body.blocks[0].type, 'section');
    assert.match(s1.body.blocks[0].text.text, /provider smtp-primary is DOWN \(circuit opened\): connection refused/);
    assert.match(s1.body.blocks[1].elements[0].text, /^circuit-opened · \d{4}-\d\d-\d\dT/);
    assert.equal(s2.body.text, `:information_source: mailover: ${describeOpsEvent(SWITCHED)}`);

    assert.equal(hook.received.length, 1, 'the webhook target only wants circuit-opened and campaign-holding');
    const h = hook.received[0].body;
    assert.deepEqual(h.event, OPENED);
    assert.equal(h.text, describeOpsEvent(OPENED));
    assert.equal(h.severity, 'alarm');
    assert.ok(Math.abs(Date.parse(h.at) - Date.now()) < 120_000, `at is the event time: ${h.at}`);
    assert.match(String(hook.received[0].headers['idempotency-key']), /^raise-.+\/.+\/\d+$/);
    assert.equal(await alertCount(metrics, 'ops-slack', 'delivered'), 2);
    assert.equal(await alertCount(metrics, 'ops-hook', 'delivered'), 1);
  });

  it('alerts: a receiver answering 500 twice gets the event on the third attempt, and a healthy receiver is not sent it again on those retries', async () => {
    const flaky = await receiver();
    const healthy = await receiver();
    flaky.failNext(500, 500);
    await startWorker([target('flaky', 'webhook', flaky.url()), target('healthy', 'slack', healthy.url())]);
    const outcomes = await raise([OPENED]);
    assert.deepEqual(outcomes, [{ kind: 'circuit-opened', delivered: true }]);
    assert.equal(flaky.received.length, 3, 'two 500s, then accepted');
    assert.equal(healthy.received.length, 1, 'delivered targets are skipped on retries');
    const keys = new Set(flaky.received.map((r) => r.headers['idempotency-key']));
    assert.equal(keys.size, 1, 'every attempt carries the same idempotency key');
    assert.equal(new Set(flaky.received.map((r) => r.body.at)).size, 1, 'and the same event time');
    assert.equal(await alertCount(metrics, 'flaky', 'failed'), 2);
    assert.equal(await alertCount(metrics, 'flaky', 'delivered'), 1);
    assert.equal(await alertCount(metrics, 'healthy', 'delivered'), 1);
  });

  it('alerts: a receiver that is down does not block: the caller gets a failure naming the target (not its URL) once its retries are spent, the other target has the event once', async () => {
    const healthy = await receiver();
    const down = await closedPortUrl('/hooks/SECRET-TOKEN-123');
    await startWorker([target('ops-down', 'webhook', down), target('healthy', 'webhook', healthy.url())]);
    const outcomes = await raise([OPENED, SWITCHED], 3);
    assert.equal(outcomes.length, 2, 'the second event was raised after the first one could not be delivered');
    for (const o of outcomes) {
      assert.equal(o.delivered, false);
      assert.match(o.error ?? '', /1 of 2 alert target\(s\) not reached \(attempt 3\): alert target ops-down: network error \(ECONNREFUSED\)/);
      assert.ok(!o.error?.includes('SECRET-TOKEN') && !o.error?.includes(down), 'the URL (a secret) is never in the error');
    }
    assert.deepEqual(
      healthy.received.map((r) => r.body.event.kind),
      ['circuit-opened', 'provider-switched'],
      'the healthy target got each event exactly once',
    );
    assert.equal(await alertCount(metrics, 'ops-down', 'failed'), 6, '3 attempts for each of 2 events');
    assert.equal(await alertCount(metrics, 'healthy', 'delivered'), 2);
  });
});

describe('alerts (campaigns)', function () {
  this.timeout(180_000);
  let env: TestWorkflowEnvironment;
  let h: Harness | undefined;
  const receivers: AlertReceiver[] = [];

  before(async () => {
    env = await startDevServer();
  });
  after(async () => {
    await env?.teardown();
  });
  afterEach(async () => {
    await h?.close();
    h = undefined;
    for (const r of receivers.splice(0)) await r.stop();
  });

  it('alerts: with one alert receiver down and one answering 500, a failover campaign still completes, each recipient exactly once', async () => {
    const failing = await AlertReceiver.start();
    receivers.push(failing);
    failing.failNext(...Array(50).fill(500));
    const alerts = [target('ops-down', 'webhook', await closedPortUrl()), target('ops-500', 'slack', failing.url())];
    const metrics = new MailoverMetrics({ alertTargets: alerts.map((a) => a.name), defaultMetrics: false });
    h = await Harness.create({ env, alerts, metrics });
    await h.startWorker();
    h.primary.failAfter(100, 'refuse');
    const handle = await h.launch(uniqueId('alerts-down'), audience(300));
    const result = await handle.result();
    assert.equal(result.status, 'completed');
    assert.equal(result.switches.length, 1);
    assertExactlyOnce(h, 300);
    // Whatever the campaign raised through notify was tried on both targets and counted as failed.
    const history = (await handle.fetchHistory()).events ?? [];
    const notifies = history.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'notify').length;
    assert.ok(notifies >= 1, 'the switch was raised through notify');
    assert.ok((await alertCount(metrics, 'ops-down', 'failed')) >= notifies);
    assert.ok((await alertCount(metrics, 'ops-500', 'failed')) >= notifies);
    assert.equal(await alertCount(metrics, 'ops-down', 'delivered'), 0);
  });

  it("alerts: a failover campaign's provider switch reaches the alert receiver as a webhook naming the campaign, from and to", async function () {
    const hook = await AlertReceiver.start();
    receivers.push(hook);
    h = await Harness.create({ env, alerts: [target('ops-hook', 'webhook', hook.url(), { events: ['provider-switched'] })] });
    await h.startWorker();
    h.primary.failAfter(100, 'refuse');
    const id = uniqueId('alerts-switch');
    const handle = await h.launch(id, audience(200));
    const result = await handle.result();
    assert.equal(result.status, 'completed');
    const switched = hook.received.map((r) => r.body.event).filter((e) => e.kind === 'provider-switched');
    assert.equal(switched.length, 1);
    assert.deepEqual(
      { campaignId: switched[0].campaignId, from: switched[0].from, to: switched[0].to, failback: switched[0].failback },
      { campaignId: id, from: 'smtp-primary', to: 'smtp-secondary', failback: false },
    );
  });
});
