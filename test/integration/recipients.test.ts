/**
 * Every recipient's fate, one command away, as an operator runs it: `mailover campaign recipients`,
 * `recipient`, `campaign retry` and `campaign report` as processes, after a real campaign on a real
 * Temporal dev server and SMTP sink, on SQLite and on PostgreSQL; the report page opened in headless
 * Chromium; `--csv` over a 100,000-row campaign in bounded memory.
 */
import { strict as assert } from 'assert';
import { spawn } from 'child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { sql } from 'kysely';
import { chromium, type Browser } from 'playwright-core';
import { cancelCampaign } from '../../src/client';
import type { KyselyStore } from '../../src/store/kysely-store';
import { openStore } from '../../src/store/open-store';
import type { Store } from '../../src/store/types';
import { Harness, uniqueId } from '../support/harness';
import { createScratchDatabase, type ScratchDatabase } from '../support/postgres';
import { startDevServer } from '../support/temporal';
import { waitUntil } from '../support/wait';

const ROOT = join(__dirname, '..', '..', '..');
const CLI = join(ROOT, 'build', 'src', 'cli', 'main.js');
const CHROMIUM = process.env.MAILOVER_CHROMIUM ?? '/usr/bin/chromium';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const user = (i: number) => `user${i}@example.com`;
/** Fast deferrals: a "later" is retried after 200-400 ms, and is a soft bounce after 3 s. */
const DEFERRALS = { deferralFirstRetryMs: 200, deferralMaxRetryMs: 400, deferralWindowMs: 3_000 };

for (const database of ['sqlite', 'postgres'] as const) {
  describe(`recipients: the CLI after a real campaign (${database})`, function () {
    this.timeout(180_000);
    let env: TestWorkflowEnvironment;
    let pg: ScratchDatabase | undefined;
    let h: Harness;
    let cliEnv: NodeJS.ProcessEnv;
    const first = uniqueId('first');

    before(async () => {
      env = await startDevServer();
      pg = database === 'postgres' ? await createScratchDatabase() : undefined;
      h = await Harness.create({ env, database: pg?.url ?? 'sqlite' });
      await h.startWorker();
      cliEnv = {
        TEMPORAL_ADDRESS: env.address,
        MAILOVER_TASK_QUEUE: h.taskQueue,
        MAILOVER_UI_URL: 'http://ui.example:8233',
        ...(pg ? { DATABASE_URL: pg.url, MAILOVER_DB: '' } : { DATABASE_URL: '', MAILOVER_DB: join(h.dir, 'mailover.db') }),
      };
      // user1, user6 accepted; user2 hard-bounces (5.1.1); user3 and user4 are deferred until the window
      // ends (soft bounces); user5 is deferred once, then accepted.
      h.primary.rejectRecipients([user(2)], 550, '5.1.1 no such mailbox');
      h.primary.rejectRecipients([user(3), user(4), user(5)], 452, '4.2.2 mailbox full');
      const handle = await h.launch(
        first,
        [1, 2, 3, 4, 5, 6].map((i) => ({ email: user(i), fields: { first_name: `User${i}` } })),
        { providers: [h.primary.name], batchSize: 10, options: DEFERRALS },
      );
      await waitUntil(async () => (await h.store.getRecipient(first, 5))?.state === 'deferred', 'user5 deferred');
      h.primary.acceptRecipients([user(5)]);
      await handle.result();
      h.primary.acceptRecipients([user(3), user(4)]);
    });

    after(async () => {
      await h?.close();
      await pg?.drop();
      await env?.teardown();
    });

    it(`recipients: campaign recipients lists every row's fate as a table, --csv and --json, filtered by status and provider (${database})`, async () => {
      const csv = await run(['campaign', 'recipients', first, '--csv'], cliEnv);
      assert.equal(csv.code, 0, csv.stderr);
      const lines = csv.stdout.trimEnd().split('\n');
      assert.equal(lines[0], 'seq,email,status,provider,provider_message_id,answer,updated_at,last_event,last_event_at,last_event_reason');
      const rows = lines.slice(1).map((l) => l.split(','));
      assert.deepEqual(
        rows.map((r) => [r[0], r[1], r[2], r[3]]),
        [
          ['1', user(1), 'accepted', 'smtp-primary'],
          ['2', user(2), 'rejected', 'smtp-primary'],
          ['3', user(3), 'rejected', 'smtp-primary'],
          ['4', user(4), 'rejected', 'smtp-primary'],
          ['5', user(5), 'accepted', 'smtp-primary'],
          ['6', user(6), 'accepted', 'smtp-primary'],
        ],
      );
      assert.ok(rows[0][4].length > 0, 'an accepted row has its provider message id');
      assert.match(lines[2], /5\.1\.1/);
      assert.match(lines[3], /soft bounce: deferred \d+ times/);

      const json = await run(['campaign', 'recipients', first, '--status', 'rejected', '--json'], cliEnv);
      assert.equal(json.code, 0, json.stderr);
      const parsed = JSON.parse(json.stdout) as Array<{ seq: number; email: string; status: string; answer: string }>;
      assert.deepEqual(
        parsed.map((r) => r.email),
        [user(2), user(3), user(4)],
      );
      const table = await run(['campaign', 'recipients', first, '--provider', h.primary.name, '--limit', '2'], cliEnv);
      assert.equal(table.code, 0, table.stderr);
      assert.match(table.stdout, new RegExp(`│\\s+1 │ ${user(1)} │ accepted │ smtp-primary │`));
      assert.ok(!table.stdout.includes(user(3)));
      assert.match(table.stdout, /^more rows: the same command with --after 2$/m);
      const none = await run(['campaign', 'recipients', first, '--provider', 'nowhere'], cliEnv);
      assert.equal(none.stdout.trim(), `campaign ${first}: no recipients via nowhere`);
      const bad = await run(['campaign', 'recipients', first, '--status', 'lost'], cliEnv);
      assert.equal(bad.code, 2);
      assert.equal(
        bad.stderr.split('\n')[0],
        "mailover campaign recipients: --status: expected one or more of pending, sending, accepted, rejected, deferred, held, suppressed, got 'lost'",
      );
    });

    it(`recipients: campaign retry is refused while the campaign runs, then takes only the soft-rejected row: never one accepted, suppressed since, hard-bounced, or deferred and later delivered (${database})`, async () => {
      // A campaign still running (its only row waits a minute for its deferred retry).
      const running = uniqueId('running');
      h.primary.rejectRecipients(['late@example.org'], 452, '4.2.2 mailbox full');
      await h.launch(running, [{ email: 'late@example.org', fields: { first_name: 'Late' } }], {
        providers: [h.primary.name],
        options: { deferralFirstRetryMs: 60_000, deferralMaxRetryMs: 60_000, deferralWindowMs: 600_000 },
      });
      await waitUntil(async () => (await h.store.getRecipient(running, 1))?.state === 'deferred', 'late@ deferred');
      const refused = await run(['campaign', 'retry', running], cliEnv);
      assert.equal(refused.code, 1);
      assert.equal(
        refused.stderr.trim(),
        `mailover campaign retry: campaign '${running}' is still running: a retry takes its rows once it has ended (wait for it with \`mailover campaign watch ${running}\`, or cancel it)`,
      );
      assert.equal(await h.store.getCampaign(`${running}-retry-1`), undefined, 'nothing stored');
      await cancelCampaign(h.client, running);
      await h.client.workflow.getHandle(running).result();

      const badId = await run(['campaign', 'retry', first, '--as', 'no spaces!'], cliEnv);
      assert.equal(badId.code, 2);
      assert.equal(
        badId.stderr.split('\n')[0],
        "mailover campaign retry: --as: expected 1-128 letters, digits, '.', '_' or '-' (starting with a letter or digit), got 'no spaces!'",
      );
      // user4 is suppressed after the first campaign.
      const suppress = await run(['suppress', 'add', user(4), '--reason', 'asked by phone'], cliEnv);
      assert.equal(suppress.code, 0, suppress.stderr);
      const retry = await run(['campaign', 'retry', first], cliEnv);
      assert.equal(retry.code, 0, retry.stderr);
      const retryId = `${first}-retry-1`;
      assert.match(
        retry.stdout,
        new RegExp(`^campaign ${retryId} \\(retry of ${first}\\): 1 recipients \\(0 deferred, 1 rejected-soft, 0 held\\); 2 left out`, 'm'),
      );
      assert.match(retry.stdout, new RegExp(`^started campaign ${retryId} `, 'm'));
      const result = await h.client.workflow.getHandle(retryId).result();
      assert.equal(result.accepted, 1);
      assert.equal(result.total, 1);
      // Each address mailed once across both campaigns; the hard bounce and the one suppressed since never.
      const got = h.deliveries();
      assert.deepEqual(
        [1, 2, 3, 4, 5, 6].map((i) => got.get(user(i)) ?? 0),
        [1, 0, 1, 0, 1, 1],
      );
      assert.equal(
        await h.client.workflow
          .getHandle(retryId)
          .describe()
          .then((d) => d.staticSummary()),
        `Campaign ${retryId} (retry of ${first}): 1 recipients via smtp-primary, batches of 10`,
      );
      const status = await run(['campaign', 'status', retryId], cliEnv);
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, new RegExp(`^retry of campaign ${first}$`, 'm'));
      const firstStatus = await run(['campaign', 'status', first, '--json'], cliEnv);
      assert.deepEqual((JSON.parse(firstStatus.stdout) as { retries: string[] }).retries, [retryId]);

      // Nothing left to retry: a clear error, nothing created.
      const again = await run(['campaign', 'retry', first, '--rejected-soft', '--as', 'again-1'], cliEnv);
      assert.equal(again.code, 1);
      assert.equal(
        again.stderr.trim(),
        `mailover campaign retry: campaign '${first}': nothing to retry (rejected-soft: 3 row(s), all suppressed since, hard-bounced, reported delivered or taken by an earlier retry); no campaign created`,
      );
      assert.equal(await h.store.getCampaign('again-1'), undefined);
    });

    it(`recipients: recipient <address> shows every campaign that reached it and its suppression (${database})`, async () => {
      const three = await run(['recipient', user(3), '--json'], cliEnv);
      assert.equal(three.code, 0, three.stderr);
      const j = JSON.parse(three.stdout) as { suppressed: unknown; campaigns: Array<{ campaignId: string; status: string; provider: string }> };
      assert.equal(j.suppressed, null);
      assert.deepEqual(
        j.campaigns.map((c) => [c.campaignId, c.status, c.provider]),
        [
          [first, 'rejected', 'smtp-primary'],
          [`${first}-retry-1`, 'accepted', 'smtp-primary'],
        ],
      );
      const two = await run(['recipient', user(2).toUpperCase()], cliEnv);
      assert.equal(two.code, 0, two.stderr);
      assert.match(
        two.stdout,
        /^user2@example\.com: suppressed on every provider since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(hard bounce: .*5\.1\.1.*; source smtp-primary\)$/m,
      );
      assert.match(two.stdout, new RegExp(`^campaign ${first} #2: rejected via smtp-primary: .*5\\.1\\.1`, 'm'));
      const four = await run(['recipient', user(4)], cliEnv);
      assert.match(four.stdout, /^user4@example\.com: suppressed on every provider since .* \(asked by phone; source /m);
    });

    it(`recipients: campaign report prints totals, providers, rates and switches, and writes an HTML page (${database})`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'mailover-report-'));
      try {
        const file = join(dir, 'report.html');
        const r = await run(['campaign', 'report', first, '--html', file], cliEnv);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, new RegExp(`^campaign ${first}: 6 recipients via smtp-primary$`, 'm'));
        assert.match(r.stdout, new RegExp(`^retried as ${first}-retry-1$`, 'm'));
        assert.match(r.stdout, /│ accepted\s+│\s+3 │/);
        assert.match(r.stdout, /│ smtp-primary │\s+3 │\s+3 │/);
        assert.match(r.stdout, /│ rejected at send\s+│ 50\.00% │ 3 of 6 attempted\s+│/);
        assert.match(r.stdout, /^no provider switches$/m);
        assert.match(r.stdout, new RegExp(`^report written to ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
        assert.match(readFileSync(file, 'utf8'), /<svg [^>]*data-chart="sends-per-minute"/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

describe('recipients: the report page in headless Chromium', function () {
  this.timeout(180_000);
  let env: TestWorkflowEnvironment;
  let h: Harness;
  let browser: Browser;
  let dir: string;

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: install Debian's chromium (apt-get install chromium; .ci/run does) or set MAILOVER_CHROMIUM`);
    env = await startDevServer();
    h = await Harness.create({ env });
    await h.startWorker();
    dir = mkdtempSync(join(tmpdir(), 'mailover-report-page-'));
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  after(async () => {
    await browser?.close();
    await h?.close();
    await env?.teardown();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('recipients: a failover campaign report shows its totals, its per-provider table, the switch and one line of sends per minute per provider', async () => {
    const id = uniqueId('report');
    h.primary.failAfter(60, 'refuse');
    const handle = await h.launch(
      id,
      Array.from({ length: 150 }, (_, i) => ({ email: user(i + 1), fields: { first_name: `User${i + 1}` } })),
      { batchSize: 20 },
    );
    const result = await handle.result();
    assert.equal(result.switches.length, 1);
    const file = join(dir, 'report.html');
    const r = await run(['campaign', 'report', id, '--html', file], {
      TEMPORAL_ADDRESS: env.address,
      DATABASE_URL: '',
      MAILOVER_DB: join(h.dir, 'mailover.db'),
    });
    assert.equal(r.code, 0, r.stderr);

    const page = await browser.newPage({ viewport: { width: 1200, height: 1400 } });
    try {
      await page.goto(`file://${file}`);
      await page.getByRole('heading', { name: `Campaign ${id}` }).waitFor();
      const cells = async (table: string) => {
        const rows = page.locator(`table.${table} tbody tr`);
        const out: string[][] = [];
        for (let k = 0; k < (await rows.count()); k++) out.push(await rows.nth(k).locator('td').allTextContents());
        return out;
      };
      const totals = Object.fromEntries(await cells('totals'));
      assert.equal(totals.recipients, '150');
      assert.equal(totals.accepted, '150');
      const providers = await cells('providers');
      const accepted = Object.fromEntries(providers.map((row) => [row[0], Number(row[1])]));
      assert.equal(accepted['smtp-primary'] + accepted['smtp-secondary'], 150);
      assert.equal(accepted['smtp-primary'], result.acceptedByProvider['smtp-primary']);
      const switches = await cells('switches');
      assert.equal(switches.length, 1);
      assert.deepEqual(switches[0].slice(1, 4), [String(result.switches[0].atSeq), 'smtp-primary', 'smtp-secondary']);
      // The chart: drawn (it has a size on the page), one line per provider, its legend, the switch marked.
      const chart = page.locator('svg[data-chart="sends-per-minute"]');
      const box = await chart.boundingBox();
      assert.ok(box && box.width > 600 && box.height > 200, `chart box ${JSON.stringify(box)}`);
      assert.equal(await chart.locator('polyline[data-provider="smtp-primary"]').count(), 1);
      assert.equal(await chart.locator('polyline[data-provider="smtp-secondary"]').count(), 1);
      assert.deepEqual(await chart.locator('text.legend').allTextContents(), ['smtp-primary', 'smtp-secondary']);
      assert.equal(await chart.locator('line[data-switch="smtp-primary"]').count(), 1);
      assert.equal(await chart.locator('text.switch').textContent(), 'smtp-primary → smtp-secondary');
      // Its points add up to what each provider accepted.
      for (const p of ['smtp-primary', 'smtp-secondary']) {
        const sent = await chart.locator(`circle[data-provider="${p}"]`).evaluateAll((cs) => cs.reduce((n, c) => n + Number(c.getAttribute('data-sent')), 0));
        assert.equal(sent, accepted[p], p);
      }
      await page.getByText(/^Rates$/).waitFor();
    } finally {
      await page.close();
    }
  });
});

describe('recipients: --csv on a 100,000-row campaign', function () {
  this.timeout(180_000);
  const ROWS = 100_000;
  let dir: string;
  let store: Store;
  const id = 'big-campaign';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mailover-big-'));
    store = await openStore({ databaseUrl: '', sqlitePath: join(dir, 'mailover.db') });
    await store.createCampaign({
      id,
      from: 'news@example.com',
      template: { subject: 'Hi', text: 'Hello {{first_name}}' },
      providers: ['esp-a'],
      batchSize: 100,
    });
    for (let i = 0; i < ROWS; i += 10_000) {
      await store.importAudience(
        id,
        Array.from({ length: 10_000 }, (_, k) => ({
          email: `big${i + k + 1}@example.com`,
          fields: { first_name: `Big${i + k + 1}`, padding: 'x'.repeat(200) },
        })),
      );
    }
    // Half of them accepted, each with its own message id and answer.
    await (store as KyselyStore).db
      .updateTable('recipients')
      .set({
        state: 'accepted',
        provider: 'esp-a',
        provider_message_id: sql<string>`printf('<m%d@esp>', seq)`,
        last_error: '250 2.0.0 queued as something fairly long',
      })
      .where('campaign_id', '=', id)
      .where(sql<boolean>`seq % 2 = 0`)
      .execute();
    await store.close();
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('recipients: campaign recipients --csv streams 100,000 rows with a 48 MB heap, every row once in seq order', async () => {
    // A heap far smaller than the rows: only a page at a time may be held.
    const child = spawn(process.execPath, ['--max-old-space-size=48', CLI, 'campaign', 'recipients', id, '--csv'], {
      env: { ...process.env, DATABASE_URL: '', MAILOVER_DB: join(dir, 'mailover.db') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let peakRssKb = 0;
    const sampler = setInterval(() => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) peakRssKb = Math.max(peakRssKb, Number(m[1]));
      } catch {
        // exited
      }
    }, 20);
    let lines = 0;
    let expected = 0;
    let partial = '';
    let outOfOrder = 0;
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.on('data', (d: Buffer) => {
      const parts = (partial + d.toString('utf8')).split('\n');
      partial = parts.pop()!;
      for (const line of parts) {
        if (lines++ === 0) continue;
        const seq = Number(line.slice(0, line.indexOf(',')));
        if (seq !== ++expected) outOfOrder++;
        if (seq % 2 === 0 && !line.includes(`,accepted,esp-a,<m${seq}@esp>,250 2.0.0 queued as something fairly long,`)) outOfOrder++;
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    clearInterval(sampler);
    assert.equal(code, 0, stderr);
    assert.equal(partial, '');
    assert.equal(lines, ROWS + 1);
    assert.equal(outOfOrder, 0);
    console.log(`      (100,000 rows as CSV: peak RSS ${Math.round(peakRssKb / 1024)} MB with a 48 MB heap limit)`);
  });

  it('recipients: campaign recipients --csv piped into a reader that stops early (| head) ends quietly with exit 0', async () => {
    const child = spawn(process.execPath, [CLI, 'campaign', 'recipients', id, '--csv'], {
      env: { ...process.env, DATABASE_URL: '', MAILOVER_DB: join(dir, 'mailover.db') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(stderr, '');
    assert.equal(code, 0);
  });
});
