/**
 * The worker's /metrics endpoint after a real failover campaign: a worker process (so the Temporal
 * runtime's own metrics can be installed in it) on a Temporal dev server, two SMTP sinks, SQLite;
 * scraped over HTTP and checked against what the sinks and the ledger saw.
 */
import { strict as assert } from 'assert';
import { readFileSync, writeFileSync } from 'fs';
import { join } from 'path';
import { WorkflowNotFoundError } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { campaignProgress, cancelCampaign, pauseCampaign } from '../../src/client';
import { BOUNCE_COUNTER_HELP } from '../../src/compliance/metrics';
import { ComplianceServer } from '../../src/compliance/server';
import { CIRCUIT_STATE_VALUE, MailoverMetrics } from '../../src/metrics/metrics';
import { temporalScrapeSources } from '../../src/metrics/scrape-sources';
import { MetricsServer } from '../../src/metrics/server';
import type { OpsEvent } from '../../src/ops-events';
import type { SwitchCause } from '../../workflows/failover';
import { healthStateQuery, providerHealthWorkflowId } from '../../workflows/provider-health-api';
import type { RaiseOutcome } from '../fixtures/ops-event-workflows';
import { closedPortUrl } from '../support/alert-receiver';
import { assertExactlyOnce, audience, Harness, uniqueId } from '../support/harness';
import { startDevServer } from '../support/temporal';
import { waitUntil } from '../support/wait';
import { WorkerProcess } from '../support/worker-process';

const ROOT = join(__dirname, '..', '..', '..');

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text format (the sample lines). */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    assert.ok(m, `a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const hits = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return hits.length ? hits.reduce((a, s) => a + s.value, 0) : undefined;
}

/** Metric names a dashboard's PromQL expressions use (identifiers followed by `{`, `[` or `)` that look like metric names). */
export function dashboardMetricNames(): string[] {
  const dash = JSON.parse(readFileSync(join(ROOT, 'deploy', 'grafana', 'dashboards', 'mailover.json'), 'utf8')) as {
    panels: Array<{ targets?: Array<{ expr: string }> }>;
  };
  const names = new Set<string>();
  for (const p of dash.panels)
    for (const t of p.targets ?? []) for (const m of t.expr.matchAll(/\b((?:mailover|temporal|process|nodejs)_[a-zA-Z0-9_]+)/g)) names.add(m[1]);
  return [...names];
}

describe('metrics endpoint (worker process, Temporal dev server, SMTP sinks)', function () {
  this.timeout(240_000);
  let env: TestWorkflowEnvironment;
  let h: Harness;
  let worker: WorkerProcess | undefined;
  let bundlePath: string;
  let url: string;
  let lastText = '';

  before(async () => {
    env = await startDevServer();
    h = await Harness.create({ env });
    const bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../fixtures/ops-event-workflows'), logger: new DefaultLogger('WARN') });
    bundlePath = join(h.dir, 'ops-bundle.js');
    writeFileSync(bundlePath, bundle.code);
    worker = await WorkerProcess.start({
      address: env.address,
      taskQueue: h.taskQueue,
      dir: h.dir,
      providers: h.providerDefs,
      sqlitePath: join(h.dir, 'mailover.db'),
      bundlePath,
      extraConfig: {
        metrics: { port: 0, host: '127.0.0.1' },
        alerts: [{ name: 'ops-down', kind: 'slack', url: '${OPS_DOWN_WEBHOOK}', events: ['circuit-opened'], timeoutMs: 1000 }],
      },
      env: { OPS_DOWN_WEBHOOK: await closedPortUrl('/services/T0/B0/SECRET-TOKEN-42') },
    });
    const m = /mailover worker metrics: (http:\/\/\S+)/.exec(worker.output);
    assert.ok(m, `the worker prints its metrics URL:\n${worker.output}`);
    url = m[1];
  });
  after(async () => {
    await worker?.stop();
    await h?.close();
    await env?.teardown();
  });

  async function scrape(): Promise<Sample[]> {
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    lastText = await res.text();
    return parseExposition(lastText);
  }

  it('metrics: after a failover campaign, messages by provider equal what each sink accepted, the batch histogram has counts, nothing is left in flight', async () => {
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const health = await fetch(url.replace(/\/metrics$/, '/healthz'));
    assert.equal(health.status, 200, 'the running worker is healthy');
    assert.equal((await health.text()).trim(), 'worker RUNNING');
    h.primary.failAfter(180, 'refuse');
    const id = uniqueId('metrics-failover');
    const handle = await h.launch(id, audience(600));
    const result = await handle.result();
    assert.equal(result.status, 'completed');
    assertExactlyOnce(h, 600);

    const s = await scrape();
    assert.equal(value(s, 'mailover_messages_total', { provider: 'smtp-primary', outcome: 'accepted' }), h.primary.acceptedCount);
    assert.equal(value(s, 'mailover_messages_total', { provider: 'smtp-secondary', outcome: 'accepted' }), h.secondary.acceptedCount);
    assert.equal(h.primary.acceptedCount + h.secondary.acceptedCount, 600);
    assert.equal(value(s, 'mailover_messages_total', { outcome: 'rejected' }), 0);
    assert.equal(value(s, 'mailover_messages_total', { outcome: 'suppressed' }), 0);
    for (const provider of ['smtp-primary', 'smtp-secondary']) {
      assert.ok((value(s, 'mailover_batch_send_seconds_count', { provider }) ?? 0) > 0, `batches timed on ${provider}`);
      assert.ok((value(s, 'mailover_batch_send_seconds_bucket', { provider, le: '+Inf' }) ?? 0) > 0);
    }
    assert.equal(value(s, 'mailover_ledger_rows_in_flight'), 0);

    // The campaign's one switch, counted through the notify activity it raised.
    assert.equal(result.switches.length, 1);
    assert.equal(value(s, 'mailover_provider_switches_total', { from: 'smtp-primary', to: 'smtp-secondary', reason_class: 'provider-refused' }), 1);
    assert.equal(value(s, 'mailover_provider_switches_total'), 1, 'every other pair and class at 0');

    // Circuit state per configured provider, from its health workflow: the primary's circuit opened (2), the secondary's is closed (0).
    for (const provider of ['smtp-primary', 'smtp-secondary']) {
      let expected = 0;
      try {
        expected = CIRCUIT_STATE_VALUE[(await env.client.workflow.getHandle(providerHealthWorkflowId(h.taskQueue, provider)).query(healthStateQuery)).circuit];
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
      }
      assert.equal(value(s, 'mailover_provider_circuit_state', { provider }), expected, `circuit of ${provider}`);
    }
    assert.equal(value(s, 'mailover_provider_circuit_state', { provider: 'smtp-primary' }), 2, 'the failover opened the primary circuit');

    // The Temporal SDK's own runtime metrics come in the same scrape.
    assert.ok(
      s.some((x) => x.name.startsWith('temporal_')),
      'temporal_* runtime metrics are appended',
    );
    assert.ok((value(s, 'temporal_activity_execution_latency_count', { activity_type: 'sendBatch' }) ?? 0) > 0, 'the runtime timed the sendBatch activities');
    assert.equal(value(s, 'mailover_scrape_errors_total') ?? 0, 0, 'every scrape source could be read');
  });

  it('monitoring: provider switches are counted by from, to and the cause the workflow recorded (reason_class), never by the free-text reason', async () => {
    const switched = (from: string, to: string, reason: string, failback: boolean, cause?: SwitchCause): OpsEvent => ({
      kind: 'provider-switched',
      campaignId: 'c1',
      from,
      to,
      reason,
      atSeq: 1,
      failback,
      ...(cause ? { cause } : {}),
    });
    const events = [
      switched('mg-eu', 'smtp-backup', 'HTTP 503 from Mailgun', false, 'retries-exhausted'),
      switched('mg-eu', 'smtp-backup', 'connection refused', false, 'provider-refused'),
      switched('smtp-backup', 'mg-eu', 'failback: mg-eu is healthy again', true, 'failback'),
      // An operator's words are not a class: `provider down --reason "fire drill in the datacenter"`.
      switched('mg-eu', 'smtp-backup', 'shared health: marked down by an operator: fire drill in the datacenter', false, 'operator'),
      switched('mg-eu', 'smtp-backup', 'shared health: failover drill d-7 (campaign x): refused', false, 'shared-health'),
      // Raised by a run from before causes were recorded: failback is known, nothing else is guessed.
      switched('smtp-backup', 'mg-eu', 'failback: mg-eu is healthy again', true),
      switched('mg-eu', 'smtp-backup', 'failover drill d-7: mg-eu forced down', false),
    ];
    const outcomes: RaiseOutcome[] = await env.client.workflow.execute('raiseOpsEvents', {
      taskQueue: h.taskQueue,
      workflowId: uniqueId('raise'),
      args: [events, { maximumAttempts: 3, initialIntervalMs: 100 }],
    });
    assert.ok(
      outcomes.every((o) => o.delivered),
      'provider-switched goes to no alert target here',
    );
    const s = await scrape();
    const count = (from: string, to: string, reason_class: string) => value(s, 'mailover_provider_switches_total', { from, to, reason_class });
    assert.equal(count('mg-eu', 'smtp-backup', 'retries-exhausted'), 1);
    assert.equal(count('mg-eu', 'smtp-backup', 'provider-refused'), 1);
    assert.equal(count('smtp-backup', 'mg-eu', 'failback'), 2);
    assert.equal(count('mg-eu', 'smtp-backup', 'operator'), 1);
    assert.equal(count('mg-eu', 'smtp-backup', 'shared-health'), 1);
    assert.equal(count('mg-eu', 'smtp-backup', 'unknown'), 1);
    assert.equal(value(s, 'mailover_provider_switches_total', { reason_class: 'drill' }), undefined, 'no class is read from the reason text');
    assert.ok(
      !s.some(
        (x) => x.name === 'mailover_provider_switches_total' && Object.values(x.labels).some((v) => /HTTP 503|connection refused|datacenter|drill d-7/.test(v)),
      ),
    );
  });

  it('metrics: an alert target that is down is counted as failed and logged by name, never by its URL', async () => {
    const opened: OpsEvent = { kind: 'circuit-opened', provider: 'smtp-primary', reason: 'connection refused', by: 'failures' };
    // Earlier campaigns in this file raised real events to the same targets: count from here on.
    const before = await scrape();
    const failedBefore = value(before, 'mailover_alert_attempts_total', { target: 'ops-down', result: 'failed' }) ?? 0;
    const outcomes: RaiseOutcome[] = await env.client.workflow.execute('raiseOpsEvents', {
      taskQueue: h.taskQueue,
      workflowId: uniqueId('raise'),
      args: [[opened], { maximumAttempts: 2, initialIntervalMs: 100 }],
    });
    assert.equal(outcomes[0].delivered, false);
    const s = await scrape();
    // At least this event's two attempts (earlier events may still be retrying against the same dead target).
    assert.ok(
      (value(s, 'mailover_alert_attempts_total', { target: 'ops-down', result: 'failed' }) ?? 0) >= failedBefore + 2,
      'both attempts counted as failed',
    );
    assert.equal(value(s, 'mailover_alert_attempts_total', { target: 'ops-down', result: 'delivered' }), 0);
    await waitUntil(
      () => worker!.output.includes('alert not delivered (attempt 2): alert target ops-down: network error (ECONNREFUSED)'),
      'the worker to log the failed delivery',
    );
    assert.ok(!worker!.output.includes('SECRET-TOKEN-42'), 'the webhook URL never appears in the worker output');
  });

  it('metrics: running campaigns are counted by status from Temporal visibility (a paused campaign shows as paused)', async () => {
    const id = uniqueId('metrics-paused');
    await h.launch(id, audience(50), { providers: ['smtp-secondary'], batchSize: 10 });
    await pauseCampaign(h.client, id, 'held for the metrics test');
    await waitUntil(async () => (await campaignProgress(h.client, id)).status === 'paused', 'the campaign to pause');
    const s = await waitUntil(async () => {
      const got = await scrape();
      return value(got, 'mailover_campaigns', { status: 'paused' }) === 1 ? got : undefined;
    }, 'visibility to count the paused campaign');
    assert.equal(value(s, 'mailover_campaigns', { status: 'running' }), 0);
    assert.equal(value(s, 'mailover_campaigns', { status: 'holding' }), 0);
    await cancelCampaign(h.client, id);
    await waitUntil(async () => value(await scrape(), 'mailover_campaigns', { status: 'paused' }) === 0, 'the cancelled campaign to leave the count');
  });

  it('metrics: every metric the Grafana dashboard queries is in the scrape of the worker or of the webhooks server', async () => {
    const s = await scrape();
    const names = new Set(s.map((x) => x.name));
    // The webhooks server's (`mailover webhooks`), with a bounce listener's counters beside.
    const webhooks = await ComplianceServer.start({
      store: h.store,
      webhooks: { host: '127.0.0.1', port: 0, maxAgeSeconds: 300, maxBodyBytes: 1024 },
      providerWebhooks: new Map(),
      port: 0,
    });
    try {
      webhooks.addCounters('bounce', () => Object.fromEntries(Object.keys(BOUNCE_COUNTER_HELP).map((k) => [k, 0])), BOUNCE_COUNTER_HELP);
      lastText += '\n' + (await (await fetch(`${webhooks.url}/metrics`)).text());
    } finally {
      await webhooks.stop();
    }
    // Declared metrics count too (a counter with no samples yet, e.g. no activity failed in this run).
    for (const m of lastText.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      names.add(m[1]);
      if (m[2] === 'histogram') for (const suffix of ['_bucket', '_count', '_sum']) names.add(m[1] + suffix);
    }
    const used = dashboardMetricNames();
    assert.ok(used.filter((n) => n.startsWith('temporal_')).length >= 4, 'the dashboard shows the SDK runtime metrics too');
    const missing = used.filter((n) => !names.has(n));
    assert.deepEqual(missing, []);
  });

  it('metrics: a health workflow that does not answer and a Temporal runtime endpoint that is down cost their samples, not the scrape', async () => {
    const taskQueue = uniqueId('no-worker'); // nothing polls it: a query there can only time out
    const stuck = await env.client.workflow.start('raiseOpsEvents', {
      taskQueue,
      workflowId: providerHealthWorkflowId(taskQueue, 'p-stuck'),
      args: [[], { maximumAttempts: 1, initialIntervalMs: 100 }],
    });
    const metrics = new MailoverMetrics({ providers: ['p-stuck', 'p-new'], defaultMetrics: false });
    // No start-up grace: this worker has been up for a while.
    metrics.setScrapeSources(
      temporalScrapeSources({ client: env.client, taskQueue, providers: ['p-stuck', 'p-new'], store: h.store, metrics, timeoutMs: 1_000, startupGraceMs: 0 }),
    );
    const server = await MetricsServer.start({ metrics, host: '127.0.0.1', port: 0, temporalRuntimeUrl: await closedPortUrl('/metrics') });
    try {
      const res = await fetch(server.url);
      assert.equal(res.status, 200);
      const s = parseExposition(await res.text());
      assert.equal(value(s, 'mailover_provider_circuit_state', { provider: 'p-new' }), 0, 'no health workflow yet: closed');
      assert.equal(value(s, 'mailover_provider_circuit_state', { provider: 'p-stuck' }), undefined, 'an unanswered query leaves its sample out');
      assert.equal(value(s, 'mailover_scrape_errors_total', { source: 'circuit' }), 1);
      assert.equal(value(s, 'mailover_scrape_errors_total', { source: 'temporal_runtime' }), 1);
      assert.equal(value(s, 'mailover_ledger_rows_in_flight'), 0, 'the other sources still answered');
      assert.equal(value(s, 'mailover_campaigns', { status: 'running' }), 0);
    } finally {
      await server.close();
      await stuck.terminate('test over');
    }
  });
});
