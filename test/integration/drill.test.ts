/**
 * Failover drills: a drill that passes end to end (every seed probed through both SMTP
 * providers, a synthetic campaign switched at the forced recipient, every synthetic address
 * exactly once), drills that fail (a broken secondary; a secondary that breaks mid-campaign),
 * the drill-finished event in the drill's history, the CLI (run, schedule, trigger, status,
 * delete) as processes, and the drills config errors.
 */
import { strict as assert } from 'assert';
import { spawn } from 'child_process';
import { join } from 'path';
import type { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { ConfigError, parseConfig } from '../../src/config';
import { drillTable, startDrill } from '../../src/drill-client';
import type { AlertTarget } from '../../src/config';
import type { DrillSettings } from '../../src/drill-settings';
import type { OpsEvent } from '../../src/ops-events';
import { drillIdFrom, forcedSwitchSeq } from '../../workflows/drill';
import { DRILL_FORCED_REASON, type DrillCampaignNotice, type DrillReport } from '../../workflows/drill-api';
import { withoutAddresses } from '../../activities/probe';
import { AlertReceiver } from '../support/alert-receiver';
import { Harness, uniqueId } from '../support/harness';
import { maybeRecordHistory } from '../support/histories';
import { startDevServer } from '../support/temporal';
import { waitUntil } from '../support/wait';

const CLI = join(__dirname, '..', '..', 'src', 'cli', 'main.js');
const SEEDS = ['ops@example.com', 'oncall@example.com'];
const DRILLS: DrillSettings = {
  from: 'Drills <drills@mailover.test>',
  seeds: SEEDS,
  recipients: 20,
  batchSize: 5,
  providers: ['smtp-primary', 'smtp-secondary'],
  timeoutMs: 120_000,
};

function run(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The inputs of every `notify` activity the workflow scheduled, from its event history. */
async function notifiedEvents(client: Client, workflowId: string): Promise<OpsEvent[]> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? [])
    .map((e) => e.activityTaskScheduledEventAttributes)
    .filter((a) => a?.activityType?.name === 'notify')
    .map((a) => defaultPayloadConverter.fromPayload<OpsEvent>(a!.input!.payloads![0] as never));
}

/** What the drill heard from its synthetic campaign (its drillCampaign signals) and the activities it scheduled. */
async function drillHistory(client: Client, workflowId: string): Promise<{ notices: DrillCampaignNotice[]; activities: string[] }> {
  const events = (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  return {
    notices: events
      .map((e) => e.workflowExecutionSignaledEventAttributes)
      .filter((a) => a?.signalName === 'drillCampaign')
      .map((a) => defaultPayloadConverter.fromPayload<DrillCampaignNotice>(a!.input!.payloads![0] as never)),
    activities: events.map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? '').filter(Boolean),
  };
}

/** Every payload in a fetched history, decoded as text. */
function payloadTexts(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) node.forEach((n) => payloadTexts(n, out));
  else if (node && typeof node === 'object' && !(node instanceof Uint8Array)) {
    const o = node as Record<string, unknown>;
    if (o.data instanceof Uint8Array && o.metadata) out.push(Buffer.from(o.data).toString('utf8'));
    for (const v of Object.values(o)) payloadTexts(v, out);
  }
  return out;
}

/** How many messages a sink accepted for each of these addresses. */
function countsAt(h: Harness, sink: 'primary' | 'secondary', addresses: string[]): number[] {
  const counts = h[sink].countByRecipient();
  return addresses.map((a) => counts.get(a) ?? 0);
}

const synthetic = (drillId: string, n: number) => `${SEEDS[(n - 1) % SEEDS.length].replace('@', `+drill-${drillId}-${n}@`)}`;

function check(report: DrillReport, name: string, provider: string) {
  const c = report.checks.find((x) => x.check === name && x.provider === provider);
  assert.ok(c, `the report has a '${name}' check for ${provider}: ${JSON.stringify(report.checks)}`);
  return c;
}

describe('failover drills', function () {
  this.timeout(180_000);

  describe('drills config', () => {
    const providers = [
      { name: 'a', kind: 'smtp', host: 'localhost', port: 25 },
      { name: 'b', kind: 'smtp', host: 'localhost', port: 26 },
    ];
    const parse = (drills: unknown, list: unknown[] = providers) => parseConfig({ providers: list, drills }, {}, 'mailover.yaml');

    it('config: drills default to every configured provider in order, 20 recipients in batches of 5, a 10 minute timeout', () => {
      const c = parse({ from: 'Ops <ops@example.org>', seeds: ['Ops@Example.org', 'oncall@example.org'] });
      assert.deepEqual(c.drills, {
        from: 'Ops <ops@example.org>',
        seeds: ['ops@example.org', 'oncall@example.org'],
        recipients: 20,
        batchSize: 5,
        providers: ['a', 'b'],
        timeoutMs: 600_000,
      });
      assert.equal(parse(undefined).drills, undefined, 'no drills section, no drills');
    });

    it('config: bad drills settings are refused with errors naming each field', () => {
      const bad = (drills: unknown, expected: RegExp, list?: unknown[]) =>
        assert.throws(
          () => parse(drills, list),
          (err: Error) => err instanceof ConfigError && expected.test(err.message),
          `expected ${expected}`,
        );
      bad({ seeds: ['ops@example.org'] }, /drills\.from: expected the sender address/);
      bad({ from: 'ops@example.org', seeds: [] }, /drills\.seeds: expected a non-empty list of addresses your team owns/);
      bad(
        { from: 'ops@example.org', seeds: ['ops@example.org', 'not-an-address'] },
        /drills\.seeds\[1\]: expected an email address, got "not-an-address" \(missing @\)/,
      );
      bad({ from: 'ops@example.org', seeds: ['ops+x@example.org'] }, /drills\.seeds\[0\]: 'ops\+x@example\.org' already has a \+tag/);
      bad(
        { from: 'ops@example.org', seeds: ['ops@example.org'], recipients: 10, batchSize: 6 },
        /drills\.batchSize: must be at most half of drills\.recipients \(10\)/,
      );
      bad(
        { from: 'ops@example.org', seeds: ['ops@example.org'], recipients: 'many' },
        /drills\.recipients: expected a whole number from 2 to 1000, got "many"/,
      );
      bad(
        { from: 'ops@example.org', seeds: ['ops@example.org'], providers: ['a', 'ses'] },
        /drills\.providers\[1\]: unknown provider "ses" \(configured: a, b\)/,
      );
      bad({ from: 'ops@example.org', seeds: ['ops@example.org'], providers: ['a'] }, /drills\.providers: a failover drill needs at least two providers/);
      bad(
        { from: 'ops@example.org', seeds: ['ops@example.org'] },
        /drills\.providers: a failover drill needs at least two providers \(primary and secondary\), got 1 configured/,
        [providers[0]],
      );
      bad({ from: 'ops@example.org', seeds: ['ops@example.org'], timeout: 'soon' }, /drills\.timeout: expected a duration like 90s, 10m or 1h, got "soon"/);
      bad({ from: 'ops@example.org', seeds: ['ops@example.org'], seed: 'x' }, /drills\.seed: unknown field/);
    });
  });

  describe('drill ids, the forced switch, probe reasons', () => {
    it('drill: the primary is forced down at the first batch boundary at or after half-way, so batches run on both sides', () => {
      assert.equal(forcedSwitchSeq(20, 5), 11);
      assert.equal(forcedSwitchSeq(21, 5), 11);
      assert.equal(forcedSwitchSeq(7, 3), 4);
      assert.equal(forcedSwitchSeq(2, 1), 2);
    });

    it('drill: a scheduled run gets its drill id from its workflow id (letters, digits, - and _ only)', () => {
      assert.equal(drillIdFrom('mailover-drill-2026-11-28T00:00:00Z', 'run-uuid'), '2026-11-28T000000Z');
      assert.equal(drillIdFrom('mailover-drill-nightly-2026-11-28T00:00:00Z', 'run-uuid'), 'nightly-2026-11-28T000000Z');
      assert.equal(drillIdFrom(':::', '0123456789abcdef'), '01234567');
    });

    it("probe: addresses in a provider's error text are replaced by the recipient's index", () => {
      assert.equal(
        withoutAddresses('550 5.1.1 <Oncall@Example.com>: no such user (ops@example.com)', SEEDS),
        '550 5.1.1 <recipient #2>: no such user (recipient #1)',
      );
    });
  });

  describe('on a dev server with two SMTP providers', () => {
    let env: TestWorkflowEnvironment;
    const harnesses: Harness[] = [];
    const harness = async (drills: Partial<DrillSettings> = {}, alerts?: AlertTarget[]) => {
      const h = await Harness.create({ env, drills: { ...DRILLS, ...drills }, alerts });
      harnesses.push(h);
      await h.startWorker();
      return h;
    };

    before(async () => {
      env = await startDevServer();
    });
    after(async () => {
      for (const h of harnesses) await h.close();
      await env?.teardown();
    });

    it('drill pass: every seed accepted by both providers, the synthetic campaign switches at the forced recipient, each synthetic address exactly once; drill-finished passed=true', async () => {
      const h = await harness();
      const drillId = uniqueId('pass').replace(/[^A-Za-z0-9-]/g, '');
      const handle = await startDrill(h.client, { taskQueue: h.taskQueue, drillId });
      const report = await handle.result();
      assert.equal(report.passed, true, drillTable(report));
      assert.deepEqual(
        report.checks.map((c) => [c.check, c.provider, c.passed]),
        [
          ['probe', 'smtp-primary', true],
          ['probe', 'smtp-secondary', true],
          ['failover switch', 'smtp-primary → smtp-secondary', true],
          ['failover delivery', 'smtp-secondary', true],
          ['exactly once', 'smtp-primary → smtp-secondary', true],
        ],
      );
      assert.match(
        check(report, 'failover switch', 'smtp-primary → smtp-secondary').detail,
        new RegExp(`switched at recipient #11 as forced \\(${DRILL_FORCED_REASON}\\)`),
      );
      assert.match(check(report, 'failover delivery', 'smtp-secondary').detail, /^20\/20 accepted \(10 via smtp-primary, 10 via smtp-secondary\)$/);

      // At the sinks: one probe per seed through each provider.
      assert.deepEqual(countsAt(h, 'primary', SEEDS), [1, 1]);
      assert.deepEqual(countsAt(h, 'secondary', SEEDS), [1, 1]);
      // The synthetic campaign: #1-#10 only at the primary, #11-#20 only at the secondary, each once.
      const first = Array.from({ length: 10 }, (_, i) => synthetic(drillId, i + 1));
      const second = Array.from({ length: 10 }, (_, i) => synthetic(drillId, i + 11));
      assert.deepEqual(countsAt(h, 'primary', first), Array(10).fill(1));
      assert.deepEqual(countsAt(h, 'secondary', first), Array(10).fill(0));
      assert.deepEqual(countsAt(h, 'primary', second), Array(10).fill(0));
      assert.deepEqual(countsAt(h, 'secondary', second), Array(10).fill(1));
      assert.equal(h.primary.acceptedCount + h.secondary.acceptedCount, 4 + 20, 'nobody else was mailed: drills never touch real audiences');
      assert.ok(h.primary.messages.some((m) => m.subject === `mailover failover drill ${drillId} #1`));

      const events = await notifiedEvents(h.client, handle.workflowId);
      assert.deepEqual(
        events.map((e) => e.kind === 'drill-finished' && [e.drillId, e.passed]),
        [[drillId, true]],
      );
      // The synthetic campaign told the drill it ended (a signal); nothing polled it.
      const heard = await drillHistory(h.client, handle.workflowId);
      assert.deepEqual(heard.notices, [{ campaignId: `drill-${drillId}`, status: 'completed' }]);
      assert.ok(!heard.activities.includes('awaitCampaignHold'), `no polling activity: ${heard.activities.join(', ')}`);
      const payloads = payloadTexts(await handle.fetchHistory());
      assert.ok(
        payloads.some((p) => p.includes(drillId)),
        'the payloads were decoded',
      );
      for (const p of payloads) assert.ok(!/example\.com/.test(p), `no seed address in the drill history: ${p.slice(0, 200)}`);
      await maybeRecordHistory('drill-pass', handle, env.address);
    });

    it('drill fail: a secondary that refuses connections fails its probe; the drill completes with a readable reason, skips the synthetic campaign and raises drill-finished passed=false', async () => {
      const receiver = await AlertReceiver.start();
      const h = await harness({}, [{ name: 'ops', kind: 'webhook', url: receiver.url(), events: ['drill-finished'], timeoutMs: 5_000 }]);
      await h.secondary.setMode('refuse');
      const drillId = uniqueId('refused').replace(/[^A-Za-z0-9-]/g, '');
      const handle = await startDrill(h.client, { taskQueue: h.taskQueue, drillId });
      const report = await handle.result();
      assert.equal(report.passed, false);
      assert.equal(check(report, 'probe', 'smtp-primary').passed, true);
      const probe = check(report, 'probe', 'smtp-secondary');
      assert.equal(probe.passed, false);
      assert.match(probe.detail, /^0\/2 seeds accepted: smtp-secondary: connection refused at 127\.0\.0\.1:\d+$/);
      assert.deepEqual(check(report, 'failover switch', 'smtp-primary → smtp-secondary'), {
        check: 'failover switch',
        provider: 'smtp-primary → smtp-secondary',
        passed: false,
        detail: 'not run: smtp-secondary failed its probe',
      });
      assert.match(report.summary, /^2 of 3 checks failed: probe smtp-secondary: 0\/2 seeds accepted: smtp-secondary: connection refused/);
      assert.equal(await h.store.getCampaign(`drill-${drillId}`), undefined, 'no synthetic campaign with a broken secondary');
      assert.equal(h.primary.acceptedCount, 2, 'only the probes went out');

      const events = await notifiedEvents(h.client, handle.workflowId);
      assert.equal(events.length, 1);
      assert.deepEqual(events[0], { kind: 'drill-finished', drillId, passed: false, summary: report.summary });
      // The alert reached the team's webhook, saying what failed.
      await waitUntil(() => receiver.received.length > 0, 'the drill alert at the webhook receiver');
      await receiver.stop();
      assert.equal(receiver.received.length, 1);
      const alert = receiver.received[0].body;
      assert.deepEqual(alert.event, { kind: 'drill-finished', drillId, passed: false, summary: report.summary });
      assert.equal(alert.severity, 'alarm');
      assert.match(alert.text, new RegExp(`^failover drill ${drillId} FAILED: 2 of 3 checks failed`));
      await maybeRecordHistory('drill-fail', handle, env.address);
    });

    it("drill fail: a secondary that breaks after its probe leaves the synthetic campaign holding; the drill sees the hold, stops the campaign and fails with the secondary's reason", async () => {
      const h = await harness();
      h.secondary.failAfter(SEEDS.length, 'auth'); // accepts the probe, then answers 535
      const drillId = uniqueId('hold').replace(/[^A-Za-z0-9-]/g, '');
      const handle = await startDrill(h.client, { taskQueue: h.taskQueue, drillId });
      const report = await handle.result();
      assert.equal(report.passed, false, drillTable(report));
      assert.equal(check(report, 'probe', 'smtp-secondary').passed, true);
      const sw = check(report, 'failover switch', 'smtp-primary → smtp-secondary');
      assert.equal(sw.passed, false);
      assert.match(sw.detail, /smtp-secondary → none \(holding\) at #11 \(smtp-secondary: authentication failed/);
      const delivery = check(report, 'failover delivery', 'smtp-secondary');
      assert.equal(delivery.passed, false);
      assert.match(
        delivery.detail,
        /^campaign cancelled \(smtp-secondary down: smtp-secondary: authentication failed .*\); 10\/20 accepted \(10 via smtp-primary\)$/,
      );
      const once = check(report, 'exactly once', 'smtp-primary → smtp-secondary');
      assert.equal(once.passed, false);
      assert.match(once.detail, /10 row\(s\) not accepted on the expected side of the switch \(seq 11, 12,/);
      const campaign = await h.client.workflow.getHandle(`drill-${drillId}`).describe();
      assert.equal(campaign.status.name, 'COMPLETED', 'the synthetic campaign was stopped (cancelled), not left holding');
      const events = await notifiedEvents(h.client, handle.workflowId);
      assert.deepEqual(
        events.map((e) => e.kind === 'drill-finished' && e.passed),
        [false],
      );
      // The campaign signalled the drill when it started holding, and again when the drill's cancel ended it.
      const heard = await drillHistory(h.client, handle.workflowId);
      assert.deepEqual(
        heard.notices.map((n) => [n.campaignId, n.status]),
        [
          [`drill-${drillId}`, 'holding'],
          [`drill-${drillId}`, 'cancelled'],
        ],
      );
      assert.match(heard.notices[0].reason ?? '', /^no provider left: .*smtp-secondary: authentication failed/);
      assert.ok(!heard.activities.includes('awaitCampaignHold'), `no polling activity: ${heard.activities.join(', ')}`);
      await maybeRecordHistory('drill-hold', handle, env.address);
    });

    it('drill fail: a worker without a drills section fails the drill at setup with a message saying what to configure, and still raises drill-finished passed=false', async () => {
      const h = await Harness.create({ env });
      harnesses.push(h);
      await h.startWorker();
      const handle = await startDrill(h.client, { taskQueue: h.taskQueue, drillId: 'unconfigured' });
      const report = await handle.result();
      assert.equal(report.passed, false);
      assert.deepEqual(report.checks, [
        {
          check: 'setup',
          provider: '-',
          passed: false,
          detail:
            'failover drills are not configured on this worker: add a `drills:` section (from, seeds) to its provider file (see docs/operations.md: Failover drills)',
        },
      ]);
      assert.equal(h.primary.acceptedCount + h.secondary.acceptedCount, 0, 'nothing was sent');
      assert.deepEqual(
        (await notifiedEvents(h.client, handle.workflowId)).map((e) => e.kind === 'drill-finished' && e.passed),
        [false],
      );
    });

    it('cli: drill run --wait prints the pass/fail table (exit 0, or 1 when the drill fails); drill schedule creates a schedule whose trigger runs a passing drill; drill status lists it; --delete removes it', async () => {
      const h = await harness();
      const cliEnv = { TEMPORAL_ADDRESS: env.address, MAILOVER_TASK_QUEUE: h.taskQueue, MAILOVER_CONFIG: join(h.dir, 'none.yaml') };

      const ok = await run(['drill', 'run', '--wait'], cliEnv);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /^started failover drill mailover-drill-\d{8}-\d{6}-[0-9a-f]{4}$/m);
      assert.match(ok.stdout, /│ failover switch +│ smtp-primary → smtp-secondary │ pass +│ switched at recipient #11 as forced/);
      assert.match(ok.stdout, /^drill \S+ PASSED$/m);
      // Its synthetic campaign is listed only on request: `campaign list` is the team's campaigns.
      const drillCampaign = `drill-${/^started failover drill mailover-drill-(\S+)$/m.exec(ok.stdout)![1]}`;
      const withDrills = await waitUntil(
        async () => {
          const r = await run(['campaign', 'list', '--drills', '--json'], cliEnv);
          return (JSON.parse(r.stdout) as Array<{ id: string; status: string }>).find((row) => row.id === drillCampaign);
        },
        'visibility to list the drill campaign',
        30_000,
        300,
      );
      assert.equal(withDrills.status, 'completed');
      const listed = await run(['campaign', 'list', '--json'], cliEnv);
      assert.equal(
        (JSON.parse(listed.stdout) as Array<{ id: string }>).some((row) => row.id === drillCampaign),
        false,
        'no drill campaign without --drills',
      );
      assert.match((await run(['campaign', 'list'], cliEnv)).stdout, /\(\d+ drill campaign\(s\) not shown; --drills shows them\)/);

      const scheduleId = uniqueId('drills');
      const created = await run(['drill', 'schedule', '--every', '24h', '--id', scheduleId], cliEnv);
      assert.equal(created.code, 0, created.stderr);
      assert.match(created.stdout, new RegExp(`^created drill schedule ${scheduleId}: a failover drill every 24h on task queue ${h.taskQueue}$`, 'm'));
      assert.match(created.stdout, /^next runs: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, /m);
      const updated = await run(['drill', 'schedule', '--every', '12h', '--id', scheduleId], cliEnv);
      assert.match(updated.stdout, new RegExp(`^updated drill schedule ${scheduleId}: a failover drill every 12h`, 'm'));

      const schedule = h.client.schedule.getHandle(scheduleId);
      await schedule.trigger();
      const action = await waitUntil(async () => (await schedule.describe()).info.recentActions[0], 'the triggered drill to start');
      const report = (await h.client.workflow.getHandle(action.action.workflow.workflowId).result()) as DrillReport;
      assert.equal(report.passed, true, drillTable(report));
      assert.ok(action.action.workflow.workflowId.startsWith(`mailover-drill-${scheduleId}-`));

      const status = await run(['drill', 'status', '--id', scheduleId], cliEnv);
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, new RegExp(`^drill schedule ${scheduleId}: active, 1 run\\(s\\) so far, next: `, 'm'));
      assert.match(status.stdout, new RegExp(`│ ${report.drillId.replace(/[.-]/g, '\\$&')} +│ passed │ 5 checks passed`));
      const onDemand = /^drill (\S+) PASSED$/m.exec(ok.stdout)![1];
      assert.match(status.stdout, new RegExp(`│ ${onDemand} +│ passed │ 5 checks passed`), 'the on-demand drill is listed too');
      assert.equal((status.stdout.match(/│ passed │/g) ?? []).length, 2, "only this task queue's drills are listed");

      const deleted = await run(['drill', 'schedule', '--delete', '--id', scheduleId], cliEnv);
      assert.equal(deleted.stdout.trim(), `deleted drill schedule ${scheduleId}`);
      const again = await run(['drill', 'status', '--id', scheduleId], cliEnv);
      assert.match(again.stdout, new RegExp(`^no drill schedule ${scheduleId}`, 'm'));

      await h.secondary.setMode('auth-fail');
      const failed = await run(['drill', 'run', '--wait'], cliEnv);
      assert.equal(failed.code, 1, 'a failed drill exits 1');
      assert.match(failed.stdout, /│ probe +│ smtp-secondary +│ FAIL +│ 0\/2 seeds accepted: smtp-secondary: authentication failed/);
      assert.match(failed.stdout, /^drill \S+ FAILED$/m);
    });

    it('cli: drill schedule without --every, with a bad duration, or with --every and --delete together is a usage error (exit 2)', async () => {
      const env2 = { TEMPORAL_ADDRESS: '127.0.0.1:1' };
      const none = await run(['drill', 'schedule'], env2);
      assert.equal(none.code, 2);
      assert.equal(none.stderr.split('\n')[0], 'mailover drill schedule: --every is required (or --delete)');
      const bad = await run(['drill', 'schedule', '--every', 'daily'], env2);
      assert.equal(bad.code, 2);
      assert.equal(bad.stderr.split('\n')[0], "mailover drill schedule: --every: expected a duration of at least 1m like 30m, 6h or 24h, got 'daily'");
      const both = await run(['drill', 'schedule', '--every', '1h', '--delete'], env2);
      assert.equal(both.code, 2);
      assert.equal(both.stderr.split('\n')[0], 'mailover drill schedule: --every and --delete cannot be used together');
    });
  });
});
