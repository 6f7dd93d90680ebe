/**
 * Campaigns that start and send on a schedule, on a real Temporal dev server with real SMTP sinks:
 * a start time (`campaign start --at`) and a send window (`window:` in the campaign file), both
 * through Temporal timers in the workflow. Short real waits (seconds ahead, the next minute
 * boundary): the time-skipping test server cannot be downloaded here.
 */
import { strict as assert } from 'assert';
import { spawn } from 'child_process';
import { writeFileSync } from 'fs';
import { join } from 'path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { stringify } from 'yaml';
import { campaignProgress, cancelCampaign, pauseCampaign, resumeCampaign } from '../../src/client';
import type { CampaignProgress } from '../../workflows/campaign-api';
import { CampaignStatusKey } from '../../workflows/search-attributes';
import { assertExactlyOnce, audience, Harness, POSTAL_ADDRESS, TEMPLATE, uniqueId } from '../support/harness';
import { writeProviderFile } from '../support/provider-file';
import { startDevServer } from '../support/temporal';
import { waitUntil } from '../support/wait';

const CLI = join(__dirname, '..', '..', 'src', 'cli', 'main.js');

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

const hhmm = (d: Date) => d.toISOString().slice(11, 16);

describe('schedule and send windows (Temporal dev server, SMTP sinks)', function () {
  this.timeout(180_000);
  let env: TestWorkflowEnvironment;
  let h: Harness;

  before(async () => {
    env = await startDevServer();
  });
  after(async () => {
    await env?.teardown();
  });
  // A harness per test: its sinks count only that test's deliveries.
  beforeEach(async () => {
    h = await Harness.create({ env });
    await h.startWorker();
  });
  afterEach(async () => {
    await h?.close();
  });

  /** The campaign's progress once `match` holds. */
  const progressWhen = (id: string, what: string, match: (p: CampaignProgress) => boolean) =>
    waitUntil(async () => {
      const p = await campaignProgress(h.client, id);
      return match(p) ? p : undefined;
    }, what);

  /** Every message the sinks accepted, with when. */
  const accepted = () => [...h.primary.messages, ...h.secondary.messages];

  it('routing: a campaign started a few seconds ahead is scheduled and sends nothing until then, then each recipient exactly once', async () => {
    const id = uniqueId('scheduled');
    const before = accepted().length;
    const startAt = new Date(Date.now() + 8_000);
    const handle = await h.launch(id, audience(30), { batchSize: 10, startAt });

    const scheduled = await progressWhen(id, 'the campaign to be scheduled', (p) => p.status === 'scheduled');
    assert.equal(scheduled.scheduledFor, startAt.toISOString());
    assert.equal(scheduled.waitingUntil, startAt.toISOString());
    assert.equal(scheduled.waitingFor, 'start');
    assert.match(scheduled.waitReason ?? '', /^to start at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
    assert.equal(scheduled.total, 30, 'the audience is checked before the wait');
    assert.equal(scheduled.accepted, 0);
    const desc = await handle.describe();
    assert.equal(desc.typedSearchAttributes.get(CampaignStatusKey), 'scheduled');
    assert.equal(desc.memo?.waitingUntil, startAt.toISOString(), 'campaign list reads when from the memo');
    const meta = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
    assert.match(meta.currentDetails ?? '', /^\*\*scheduled\*\* · 0 of 30 done/);
    assert.match(meta.currentDetails ?? '', /⏳ scheduled to start at /);
    assert.equal(accepted().length, before, 'nothing is sent while scheduled');

    const result = await handle.result();
    assert.equal(result.status, 'completed');
    assert.equal(result.accepted, 30);
    assert.equal(result.scheduledFor, startAt.toISOString());
    assertExactlyOnce(h, 30);
    const sent = accepted().slice(before);
    assert.equal(sent.length, 30);
    for (const m of sent)
      assert.ok(m.acceptedAt.getTime() >= startAt.getTime(), `${m.to.join(',')} accepted at ${m.acceptedAt.toISOString()}, before its start`);
    assert.equal((await handle.describe()).memo?.waitingUntil, undefined, 'the memo is cleared once it starts');
  });

  it('routing: a send window closed now that opens at the next minute: waiting (pause and resume still answered), then everything, each recipient exactly once', async () => {
    const id = uniqueId('window');
    const before = accepted().length;
    // The next minute boundary at least 15 s ahead (time to see the wait, pause and resume), for ten minutes, in UTC.
    let opens = Math.ceil(Date.now() / 60_000) * 60_000;
    if (opens - Date.now() < 15_000) opens += 60_000;
    const window = { days: 'mon-sun', hours: `${hhmm(new Date(opens))}-${hhmm(new Date(opens + 10 * 60_000))}`, zone: 'UTC' };
    const handle = await h.launch(id, audience(40, 'example.com'), { batchSize: 10, window });

    const waiting = await progressWhen(id, 'the campaign to wait for its window', (p) => p.status === 'waiting');
    assert.equal(waiting.waitingUntil, new Date(opens).toISOString());
    assert.equal(waiting.waitingFor, 'send-window');
    assert.equal(waiting.sendWindow, `mon-sun ${window.hours} UTC`);
    assert.match(waiting.waitReason ?? '', new RegExp(`^for its send window \\(mon-sun ${window.hours} UTC\\) until .* UTC \\(.* UTC\\)$`));
    assert.equal((await handle.describe()).typedSearchAttributes.get(CampaignStatusKey), 'waiting');
    const meta = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
    assert.match(meta.currentDetails ?? '', /⏳ waiting for its send window/);

    // A pause ends the wait (paused, not waiting); after resume it waits for the window again.
    await pauseCampaign(h.client, id, 'checking the copy');
    const paused = await progressWhen(id, 'the campaign to pause', (p) => p.status === 'paused');
    assert.equal(paused.waitingUntil, undefined);
    await resumeCampaign(h.client, id);
    await progressWhen(id, 'the campaign to wait again', (p) => p.status === 'waiting' && p.waitingUntil === new Date(opens).toISOString());
    assert.equal(accepted().length, before, 'nothing is sent outside the window');

    const result = await handle.result();
    assert.equal(result.status, 'completed');
    assert.equal(result.accepted, 40);
    assertExactlyOnce(h, 40);
    const sent = accepted().slice(before);
    assert.equal(sent.length, 40);
    for (const m of sent) assert.ok(m.acceptedAt.getTime() >= opens, `${m.to.join(',')} accepted at ${m.acceptedAt.toISOString()}, before the window opened`);
  });

  it('routing: a scheduled campaign cancelled before its start ends cancelled with nothing sent', async () => {
    const id = uniqueId('scheduled-cancel');
    const before = accepted().length;
    const handle = await h.launch(id, audience(20), { startAt: new Date(Date.now() + 3600_000) });
    await progressWhen(id, 'the campaign to be scheduled', (p) => p.status === 'scheduled');
    await cancelCampaign(h.client, id);
    const result = await handle.result();
    assert.equal(result.status, 'cancelled');
    assert.equal(result.accepted, 0);
    assert.equal(accepted().length, before);
    const rows = await h.store.listRecipients(id);
    assert.ok(rows.length === 20 && rows.every((r) => r.state === 'pending'), 'every recipient is still pending');
  });

  describe('the CLI', () => {
    let cliEnv: NodeJS.ProcessEnv;
    beforeEach(() => {
      const configPath = join(h.dir, 'providers.yaml');
      const secrets = writeProviderFile(configPath, h.providerDefs);
      cliEnv = {
        ...secrets,
        TEMPORAL_ADDRESS: env.address,
        MAILOVER_TASK_QUEUE: h.taskQueue,
        MAILOVER_CONFIG: configPath,
        MAILOVER_DB: join(h.dir, 'mailover.db'),
        DATABASE_URL: '',
      };
    });

    function files(id: string, extra: Record<string, unknown> = {}): string[] {
      const campaign = join(h.dir, `${id}.yaml`);
      const list = join(h.dir, `${id}.csv`);
      writeFileSync(
        campaign,
        stringify({ id, from: 'News <news@example.org>', template: TEMPLATE, postalAddress: POSTAL_ADDRESS, providers: ['smtp-primary'], ...extra }),
      );
      writeFileSync(list, ['email,first_name', ...Array.from({ length: 5 }, (_, i) => `cli-${i + 1}@example.org,N${i + 1}`)].join('\n') + '\n');
      return ['--file', campaign, '--audience', list];
    }

    it('routing: campaign start --at refuses a past or unparsable time naming --at and the value, and a bad window naming window.hours; nothing is stored or started', async () => {
      const id = uniqueId('cli-at-bad');
      const past = await run(['campaign', 'start', ...files(id), '--at', '2020-01-01T09:00:00+01:00'], cliEnv);
      assert.equal(past.code, 2, past.stderr);
      assert.match(
        past.stderr.split('\n')[0],
        /^mailover campaign start: --at: "2020-01-01T09:00:00\+01:00" is in the past \(it is now .*Z\); .*nothing was started$/,
      );
      const unclear = await run(['campaign', 'start', ...files(id), '--at', 'tomorrow 9am'], cliEnv);
      assert.equal(unclear.code, 2);
      assert.match(unclear.stderr.split('\n')[0], /--at: expected a time in ISO 8601 with its offset, like 2026-12-02T09:00:00\+01:00 .*got "tomorrow 9am"/);
      const badWindow = await run(['campaign', 'start', ...files(id, { window: { days: 'mon-fri', hours: '9-17', zone: 'Europe/Berlin' } })], cliEnv);
      assert.equal(badWindow.code, 1);
      assert.match(badWindow.stderr, /window\.hours: expected HH:MM-HH:MM \(e\.g\. 09:00-17:00, or 22:00-06:00 across midnight\), got "9-17"/);
      const status = await run(['campaign', 'status', id], cliEnv);
      assert.match(status.stderr, new RegExp(`campaign '${id}' not found`), 'no workflow was started');
      const held = await run(['campaign', 'held', id], cliEnv);
      assert.match(held.stderr, new RegExp(`campaign '${id}' not found in the store`), 'nothing was stored');
    });

    it('routing: campaign start --at an hour ahead: list shows it scheduled with when, status shows the wait and the window, cancel ends it with nothing sent', async () => {
      const id = uniqueId('cli-at');
      const before = accepted().length;
      const at = new Date(Math.ceil(Date.now() / 1000) * 1000 + 3600_000);
      const atText = at.toISOString().replace('.000Z', '+00:00');
      const window = { days: 'mon-fri', hours: '09:00-17:00', zone: 'Europe/Berlin' };
      const start = await run(['campaign', 'start', ...files(id, { window }), '--at', atText], cliEnv);
      assert.equal(start.code, 0, start.stderr);
      const when = `${at.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
      assert.match(start.stdout, new RegExp(`^scheduled: it sends nothing before ${when} \\(${atText.replace('+', '\\+')}\\)`, 'm'));
      assert.match(start.stdout, /^send window: mon-fri 09:00-17:00 Europe\/Berlin/m);

      await progressWhen(id, 'the campaign to be scheduled', (p) => p.status === 'scheduled');
      const list = await run(['campaign', 'list', '--status', 'scheduled'], cliEnv);
      assert.equal(list.code, 0, list.stderr);
      assert.match(list.stdout, new RegExp(`│ ${id}\\s+│ scheduled until ${when}\\s+│`));
      const json = JSON.parse((await run(['campaign', 'list', '--status', 'scheduled', '--json'], cliEnv)).stdout) as Array<Record<string, unknown>>;
      assert.deepEqual(
        json.filter((r) => r.id === id).map((r) => [r.status, r.until]),
        [['scheduled', at.toISOString()]],
      );
      const status = await run(['campaign', 'status', id], cliEnv);
      assert.match(status.stdout, /│ status\s+│ scheduled\s+│/);
      assert.match(status.stdout, new RegExp(`│\\s+│ scheduled to start at ${when}\\s+│`));
      assert.match(status.stdout, /│ send window\s+│ mon-fri 09:00-17:00 Europe\/Berlin\s+│/);

      const cancel = await run(['campaign', 'cancel', id], cliEnv);
      assert.equal(cancel.code, 0, cancel.stderr);
      const result = await h.client.workflow.getHandle(id).result();
      assert.equal(result.status, 'cancelled');
      assert.equal(accepted().length, before, 'nothing was sent');
    });
  });
});
