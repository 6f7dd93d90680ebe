/**
 * The `mailover` CLI, every command run as a process against a real Temporal dev server,
 * real SMTP sinks and a Mailgun-compatible API, with a worker on the test's task queue.
 */
import { strict as assert } from 'assert';
import { tmpdir } from 'os';
import { spawn } from 'child_process';
import { readFileSync, writeFileSync } from 'fs';
import { connect } from 'net';
import { join } from 'path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { parse, stringify } from 'yaml';
import { signMailgunWebhook } from '../../src/providers/mailgun/webhooks';
import { signUnsubscribeToken } from '../../src/compliance/tokens';
import { childProcesses, isTemporalDevServer } from '../../src/dev/orphan-guard';
import { audience, Harness, POSTAL_ADDRESS, TEMPLATE, TEST_UNSUBSCRIBE_KEY, TEST_WEBHOOK_KEY, uniqueId } from '../support/harness';
import { AlertReceiver } from '../support/alert-receiver';
import { writeProviderFile } from '../support/provider-file';
import { startDevServer } from '../support/temporal';
import { waitUntil } from '../support/wait';
import { CampaignStatusKey } from '../../workflows/search-attributes';

/** Whether a process with this pid is still alive (and not a zombie). */
function isRunning(pid: number): boolean {
  try {
    return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

const CLI = join(__dirname, '..', '..', 'src', 'cli', 'main.js');
const ROOT = join(__dirname, '..', '..', '..');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: NodeJS.ProcessEnv = {}, cwd?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const COMMANDS = [
  'dev',
  'worker',
  'webhooks',
  'campaign start',
  'campaign status',
  'campaign watch',
  'campaign pause',
  'campaign resume',
  'campaign cancel',
  'campaign list',
  'campaign providers',
  'campaign held',
  'campaign release',
  'campaign recipients',
  'campaign retry',
  'campaign report',
  'recipient',
  'provider status',
  'provider down',
  'provider up',
  'suppress add',
  'suppress remove',
  'suppress import',
  'suppress list',
  'codec-server',
  'drill run',
  'drill schedule',
  'drill status',
  'suppress sync',
  'suppress push',
];

describe('mailover CLI (each command as a process)', function () {
  this.timeout(180_000);

  describe('help and usage', () => {
    it('cli: mailover --help lists every command; no command is a usage error (exit 2)', async () => {
      const help = await run(['--help']);
      assert.equal(help.code, 0);
      for (const c of COMMANDS) assert.match(help.stdout, new RegExp(`^  ${c} `, 'm'), c);
      const none = await run([]);
      assert.equal(none.code, 2);
    });

    it('cli: every command has --help (exit 0) with its usage line', async () => {
      for (const c of COMMANDS) {
        const r = await run([...c.split(' '), '--help']);
        assert.equal(r.code, 0, `${c}: ${r.stderr}`);
        assert.match(r.stdout, new RegExp(`^Usage: mailover ${c}`), c);
      }
    });

    it('cli: an unknown command, an unknown option and a missing argument are one-line usage errors (exit 2)', async () => {
      const unknown = await run(['campaign', 'launch']);
      assert.equal(unknown.code, 2);
      assert.equal(unknown.stderr.trim(), "mailover: unknown command 'campaign launch' (see mailover --help)");
      const option = await run(['suppress', 'list', '--colour']);
      assert.equal(option.code, 2);
      assert.match(option.stderr.split('\n')[0], /^mailover suppress list: Unknown option '--colour'$/);
      const missing = await run(['campaign', 'start', '--file', 'x.yaml']);
      assert.equal(missing.code, 2);
      assert.equal(missing.stderr.split('\n')[0], 'mailover campaign start: --audience is required');
    });
  });

  describe('against a dev server and a worker', () => {
    let env: TestWorkflowEnvironment;
    let h: Harness;
    let cliEnv: NodeJS.ProcessEnv;

    before(async () => {
      env = await startDevServer();
      h = await Harness.create({ env, mailgun: true });
      await h.startWorker();
      const configPath = join(h.dir, 'providers.yaml');
      const secrets = writeProviderFile(configPath, h.providerDefs);
      cliEnv = {
        ...secrets,
        TEMPORAL_ADDRESS: env.address,
        MAILOVER_TASK_QUEUE: h.taskQueue,
        MAILOVER_CONFIG: configPath,
        MAILOVER_DB: join(h.dir, 'mailover.db'),
        DATABASE_URL: '',
        MAILOVER_UI_URL: 'http://ui.example:8233',
      };
    });
    after(async () => {
      await h?.close();
      await env?.teardown();
    });

    function campaignFile(id: string, extra: Record<string, unknown> = {}): string {
      const path = join(h.dir, `${id}.yaml`);
      writeFileSync(
        path,
        stringify({
          id,
          from: 'News <news@example.org>',
          template: TEMPLATE,
          postalAddress: POSTAL_ADDRESS,
          providers: ['smtp-primary', 'mailgun'],
          batchSize: 50,
          ...extra,
        }),
      );
      return path;
    }

    function audienceFile(name: string, n: number, extraLines: string[] = []): string {
      const path = join(h.dir, name);
      writeFileSync(
        path,
        ['email,first_name', ...Array.from({ length: n }, (_, i) => `${name.replace(/\W/g, '')}${i + 1}@example.com,N${i + 1}`), ...extraLines].join('\n') +
          '\n',
      );
      return path;
    }

    it('cli: campaign start imports, starts, prints the workflow id and Web UI link; campaign watch shows it to the end', async () => {
      const id = uniqueId('cli-start');
      const start = await run(['campaign', 'start', '--file', campaignFile(id), '--audience', audienceFile('start.csv', 120, ['broken-address,X'])], cliEnv);
      assert.equal(start.code, 0, start.stderr);
      assert.match(start.stdout, /^imported 120 recipients \(0 duplicates dropped, 1 rejected\)$/m);
      assert.match(start.stdout, /^ {2}line 122: missing @: "broken-address"$/m);
      assert.match(start.stdout, new RegExp(`^started campaign ${id} \\(workflow id ${id}, run [0-9a-f-]+\\)$`, 'm'));
      assert.match(start.stdout, new RegExp(`^Web UI: http://ui\\.example:8233/namespaces/default/workflows/${id}$`, 'm'));
      const watch = await run(['campaign', 'watch', id], cliEnv);
      assert.equal(watch.code, 0, watch.stderr);
      assert.match(watch.stdout, /100% 120\/120 .* completed/);
      assert.match(watch.stdout, /│ accepted via smtp-primary\s+│\s+120 │/);
    });

    it('cli: campaign start --wait with a primary that fails shows the switch and the summary', async () => {
      const id = uniqueId('cli-wait');
      h.primary.failAfter(60, 'refuse');
      try {
        // One batch at a time: the refusals start in the second batch (#51), and 90 go via mailgun.
        const r = await run(
          ['campaign', 'start', '--file', campaignFile(id, { batchesInFlight: 1 }), '--audience', audienceFile('wait.csv', 150), '--wait'],
          cliEnv,
        );
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /⚠ switched smtp-primary → mailgun at recipient #51: smtp-primary: connection refused/);
        assert.match(r.stdout, /│ accepted via mailgun\s+│\s+90 │/);
      } finally {
        await h.primary.heal();
      }
    });

    it('cli: a campaign file with errors names each field path; exit 1, nothing stored or started', async () => {
      const id = uniqueId('cli-bad');
      const r = await run(
        ['campaign', 'start', '--file', campaignFile(id, { providers: ['smtp-primary', 'ses'], batchSize: 5000 }), '--audience', audienceFile('bad.csv', 3)],
        cliEnv,
      );
      assert.equal(r.code, 1);
      assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
      assert.match(r.stderr, /providers\[1\]: unknown provider 'ses' \(configured: smtp-primary, smtp-secondary, mailgun\)/);
      assert.match(r.stderr, /batchSize: expected a whole number from 1 to 1000, got 5000/);
      assert.equal(await h.store.getCampaign(id), undefined);
      const status = await run(['campaign', 'status', id], cliEnv);
      assert.equal(status.code, 1);
      assert.equal(status.stderr.trim(), `mailover campaign status: campaign '${id}' not found (no workflow with that id)`);
    });

    it('cli: campaign start --dry-run runs every check and says what would be imported; nothing is stored or started; a bad merge value fails it the same way (exit 1)', async () => {
      const id = uniqueId('cli-dry');
      const audience = audienceFile('dry.csv', 2, ['drycsv1@example.com,Again', 'broken-address,X']);
      // A dry run needs the store, never Temporal: an unreachable server makes no difference.
      const r = await run(['campaign', 'start', '--file', campaignFile(id), '--audience', audience, '--dry-run'], {
        ...cliEnv,
        TEMPORAL_ADDRESS: '127.0.0.1:1',
      });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^campaign ${id} is ready to start: 2 recipients would be imported \\(1 duplicates dropped, 1 rejected\\)$`, 'm'));
      assert.match(r.stdout, /^ {2}line 5: missing @: "broken-address"$/m);
      assert.match(r.stdout, /^dry run: nothing was stored or started$/m);
      assert.equal(await h.store.getCampaign(id), undefined, 'nothing stored');
      assert.equal(await h.store.countAudience(id), 0, 'no recipient stored');
      assert.equal((await run(['campaign', 'status', id], cliEnv)).code, 1, 'no workflow started');

      const template = { ...TEMPLATE, html: `${TEMPLATE.html}<a href="{{first_name}}">x</a>` };
      const bad = await run(
        [
          'campaign',
          'start',
          '--file',
          campaignFile(id, { template }),
          '--audience',
          audienceFile('dry-bad.csv', 1, ['evil@example.com,javascript:alert(1)']),
          '--dry-run',
        ],
        cliEnv,
      );
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /dry-bad\.csv line 3: evil@example\.com has an unsafe link in merge field 'first_name': "javascript:alert\(1\)"/);
      assert.equal(await h.store.getCampaign(id), undefined);
      const both = await run(['campaign', 'start', '--file', campaignFile(id), '--audience', audience, '--dry-run', '--wait'], cliEnv);
      assert.equal(both.code, 2);
      assert.match(both.stderr, /--dry-run and --wait cannot go together/);
    });

    it('cli: starting the same campaign twice is refused (exit 1)', async () => {
      const id = uniqueId('cli-twice');
      const file = campaignFile(id);
      const audience = audienceFile('twice.csv', 5);
      assert.equal((await run(['campaign', 'start', '--file', file, '--audience', audience], cliEnv)).code, 0);
      const again = await run(['campaign', 'start', '--file', file, '--audience', audience], cliEnv);
      assert.equal(again.code, 1);
      assert.match(again.stderr, new RegExp(`campaign '${id}' already exists in the store; a campaign runs once`));
    });

    it('cli: campaign pause, status, providers, resume and cancel steer a running campaign', async () => {
      const id = uniqueId('cli-steer');
      h.primary.setAcceptDelay(20);
      try {
        assert.equal(
          // One batch at a time (the campaign file's batchesInFlight): the 400 take long enough for each command to land mid-campaign.
          (
            await run(
              ['campaign', 'start', '--file', campaignFile(id, { batchSize: 10, batchesInFlight: 1 }), '--audience', audienceFile('steer.csv', 400)],
              cliEnv,
            )
          ).code,
          0,
        );
        await h.primary.waitForCount(20, 30_000);
        const pause = await run(['campaign', 'pause', id, '--reason', 'checking the copy'], cliEnv);
        assert.equal(pause.code, 0, pause.stderr);
        assert.equal(pause.stdout.trim(), `pause sent to campaign ${id}`);
        const paused = await waitUntil(async () => {
          const s = await run(['campaign', 'status', id, '--json'], cliEnv);
          const p = JSON.parse(s.stdout);
          return p.status === 'paused' && !p.batchInFlight ? p : undefined;
        }, 'status to show paused');
        assert.equal(paused.pauseReason, 'checking the copy');
        const table = await run(['campaign', 'status', id], cliEnv);
        assert.match(table.stdout, /│ status\s+│ paused \(checking the copy\)\s+│/);
        const bad = await run(['campaign', 'providers', id, 'smtp-secondary,nowhere'], cliEnv);
        assert.equal(bad.code, 1);
        assert.match(bad.stderr, /provider order rejected: providers\[1\]: unknown provider 'nowhere'/);
        const order = await run(['campaign', 'providers', id, 'smtp-secondary,smtp-primary'], cliEnv);
        assert.equal(order.code, 0, order.stderr);
        assert.equal(order.stdout.trim(), `campaign ${id} now sends via smtp-secondary → smtp-primary`);
        // The secondary answers slowly, so the rest of the 400 takes seconds there and the cancel lands mid-campaign.
        h.secondary.setAcceptDelay(200);
        assert.equal((await run(['campaign', 'resume', id], cliEnv)).code, 0);
        await h.secondary.waitFor((s) => s.messages.some((m) => m.to.some((t) => t.startsWith('steer'))), 30_000);
        assert.equal((await run(['campaign', 'cancel', id], cliEnv)).code, 0);
        const done = await waitUntil(async () => {
          const s = await run(['campaign', 'status', id, '--json'], cliEnv);
          return s.code === 0 && JSON.parse(s.stdout).status === 'cancelled' ? JSON.parse(s.stdout) : undefined;
        }, 'status to show cancelled');
        assert.ok(done.accepted < 400, `cancel landed after all 400 were sent (accepted ${done.accepted})`);
        assert.ok((done.acceptedByProvider['smtp-secondary'] ?? 0) > 0);
      } finally {
        h.primary.setAcceptDelay(0);
        h.secondary.setAcceptDelay(0);
      }
    });

    it('cli: campaign held lists recipients held for review (no addresses unless asked); campaign release --mark-sent settles them by range, recorded with who; the campaign then completes', async () => {
      const id = uniqueId('cli-held');
      const mg = h.mailgun!;
      // Mailgun takes the first call but the answer is lost, and its events API is down: those 20 cannot be looked up.
      mg.acceptThenDropNext(1);
      mg.failEvents(503);
      try {
        assert.equal(
          (
            await run(
              // One batch at a time: the lost answer is the first call's (recipients 1-20).
              [
                'campaign',
                'start',
                '--file',
                campaignFile(id, { providers: ['mailgun'], batchSize: 20, batchesInFlight: 1 }),
                '--audience',
                audienceFile('held.csv', 40),
              ],
              cliEnv,
            )
          ).code,
          0,
        );
        const holding = await waitUntil(async () => {
          const r = await run(['campaign', 'status', id, '--json'], cliEnv);
          const p = r.code === 0 ? JSON.parse(r.stdout) : undefined;
          return p?.hold?.kind === 'review' ? p : undefined;
        }, 'the campaign to hold for review');
        assert.equal(holding.status, 'holding');
        assert.equal(holding.heldForReview, 20);
        const status = await run(['campaign', 'status', id], cliEnv);
        assert.match(status.stdout, /│ status\s+│ holding \(review: 20 recipient\(s\) held for review/);
        assert.match(status.stdout, new RegExp(`│ held for review\\s+│ 20 \\(mailover campaign held ${id}\\)`));

        const listed = await run(['campaign', 'held', id], cliEnv);
        assert.equal(listed.code, 0, listed.stderr);
        assert.match(listed.stdout, /│ seq │ provider │ held since \(UTC\)\s+│ why/);
        assert.match(
          listed.stdout,
          /│\s+1 │ mailgun\s+│ \d{4}-\d\d-\d\d \d\d:\d\d:\d\d │ in doubt: handed to mailgun, no answer, and look-up failed: mailgun: server error \(503/,
        );
        assert.match(listed.stdout, /^20 held\. Settle them: mailover campaign release/m);
        assert.doesNotMatch(listed.stdout, /@/, 'no addresses unless asked');
        const json = JSON.parse((await run(['campaign', 'held', id, '--show-addresses', '--json'], cliEnv)).stdout);
        assert.equal(json.length, 20);
        assert.deepEqual(Object.keys(json[0]).sort(), ['address', 'provider', 'reason', 'seq', 'since']);
        assert.equal(json[0].address, 'heldcsv1@example.com');

        const both = await run(['campaign', 'release', id, '--resend', '--mark-sent'], cliEnv);
        assert.equal(both.code, 2);
        assert.match(both.stderr, /give exactly one of --resend and --mark-sent/);
        const badRange = await run(['campaign', 'release', id, '--mark-sent', '--seq', '9-3'], cliEnv);
        assert.equal(badRange.code, 2);
        assert.match(badRange.stderr, /--seq: expected a recipient number or a range like 10-20 .*got '9-3'/);

        mg.heal(); // the operator checked Mailgun's dashboard: it did take them
        const some = await run(['campaign', 'release', id, '--mark-sent', '--seq', '1-5', '--by', 'alice'], cliEnv);
        assert.equal(some.code, 0, some.stderr);
        assert.equal(some.stdout.trim(), `campaign ${id}: 5 held recipient(s) marked sent by alice: #1-#5`);
        const rest = await run(['campaign', 'release', id, '--mark-sent', '--by', 'bob'], cliEnv);
        assert.equal(rest.stdout.trim(), `campaign ${id}: 15 held recipient(s) marked sent by bob: #6-#20`);
        const done = await waitUntil(async () => {
          const r = await run(['campaign', 'status', id, '--json'], cliEnv);
          const p = r.code === 0 ? JSON.parse(r.stdout) : undefined;
          return p?.status === 'completed' ? p : undefined;
        }, 'the campaign to complete');
        assert.equal(done.accepted, 40);
        assert.equal(done.heldForReview, 0);
        const rows = await h.store.getRecipients(id, [3, 12]);
        assert.deepEqual(
          rows.map((r) => r.releasedBy),
          ['alice', 'bob'],
        );
        assert.equal((await run(['campaign', 'held', id], cliEnv)).stdout.trim(), `campaign ${id} has no recipients held for review`);
        const resendClosed = await run(['campaign', 'release', id, '--resend'], cliEnv);
        assert.equal(resendClosed.code, 1);
        assert.match(resendClosed.stderr, /is not running, so nothing would send them/);
      } finally {
        mg.heal();
      }
    });

    it('cli: campaign list shows campaigns from visibility and filters by status', async () => {
      const id = uniqueId('cli-list');
      assert.equal((await run(['campaign', 'start', '--file', campaignFile(id), '--audience', audienceFile('list.csv', 10), '--wait'], cliEnv)).code, 0);
      const listed = await waitUntil(
        async () => {
          const r = await run(['campaign', 'list', '--status', 'completed', '--json'], cliEnv);
          const rows = JSON.parse(r.stdout) as Array<{ id: string; status: string; accepted: number }>;
          return rows.find((row) => row.id === id);
        },
        'visibility to list the completed campaign',
        30_000,
        300,
      );
      assert.equal(listed.status, 'completed');
      assert.equal(listed.accepted, 10);
      const table = await run(['campaign', 'list'], cliEnv);
      // The active provider is whichever the campaign ended on (an earlier test may have opened smtp-primary's shared circuit).
      assert.match(table.stdout, new RegExp(`│ ${id}\\s+│ completed\\s+│ (smtp-primary|mailgun)\\s+│\\s+10 │`));
      const bad = await run(['campaign', 'list', '--status', 'done'], cliEnv);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /--status: expected one of scheduled, running, waiting, paused, holding, completed, cancelled, got 'done'/);
    });

    it("monitoring: campaign list shows a campaign that continued as new once, with its latest run's status; a terminated run shows as terminated, not by its last CampaignStatus", async () => {
      // Three runs (one batch per run): visibility has two ContinuedAsNew runs whose CampaignStatus stayed "running".
      const id = uniqueId('cli-list-can');
      const result = await (
        await h.launch(id, audience(30), { providers: ['smtp-primary', 'mailgun'], batchSize: 10, options: { batchesPerRun: 1 } })
      ).result();
      assert.equal(result.status, 'completed');
      assert.ok(result.runs >= 3, `continued as new: ${result.runs} runs`);
      const runs = await waitUntil(
        async () => {
          let n = 0;
          for await (const _ of env.client.workflow.list({ query: `WorkflowId = '${id}'` })) n++;
          return n >= 3 ? n : undefined;
        },
        'visibility to list every run',
        30_000,
        300,
      );
      assert.ok(runs >= 3);
      const listed = async (args: string[] = []) =>
        (JSON.parse((await run(['campaign', 'list', '--json', ...args], cliEnv)).stdout) as Array<{ id: string; status: string; accepted: number }>).filter(
          (r) => r.id === id,
        );
      const once = await waitUntil(
        async () => {
          const rows = await listed();
          return rows.length === 1 && rows[0].status === 'completed' ? rows : undefined;
        },
        'the campaign listed once, completed',
        20_000,
        300,
      ).catch(() => listed());
      assert.deepEqual(
        once.map((r) => [r.status, r.accepted]),
        [['completed', 30]],
        "listed once, with its latest run's status",
      );
      assert.deepEqual(await listed(['--status', 'running']), [], 'none of its runs is running');
      assert.equal((await listed(['--status', 'completed'])).length, 1);

      // A run ended by hand (terminate) keeps CampaignStatus "running" in visibility: listed as terminated.
      const stopped = uniqueId('cli-list-terminated');
      const handle = await h.launch(stopped, audience(500), { providers: ['smtp-primary', 'mailgun'], batchSize: 5 });
      await waitUntil(async () => (await handle.describe()).typedSearchAttributes.get(CampaignStatusKey) === 'running', 'the campaign to run', 30_000, 100);
      await handle.terminate('test: stopped by hand');
      const rows = await waitUntil(
        async () => {
          const r = (JSON.parse((await run(['campaign', 'list', '--json'], cliEnv)).stdout) as Array<{ id: string; status: string }>).filter(
            (x) => x.id === stopped,
          );
          return r.length && r[0].status === 'terminated' ? r : undefined;
        },
        'the terminated campaign to be listed',
        30_000,
        300,
      );
      assert.deepEqual(
        rows.map((r) => r.status),
        ['terminated'],
      );
      const running = (JSON.parse((await run(['campaign', 'list', '--json', '--status', 'running'], cliEnv)).stdout) as Array<{ id: string }>).map((r) => r.id);
      assert.ok(!running.includes(stopped), 'not listed as running');
    });

    it('cli: suppress add, import, list and remove manage the one suppression list; a suppressed address is skipped', async () => {
      const add = await run(['suppress', 'add', 'Someone@Example.com', '--reason', 'complaint'], cliEnv);
      assert.equal(add.code, 0, add.stderr);
      assert.equal(add.stdout.trim(), 'suppressed someone@example.com');
      const bad = await run(['suppress', 'add', 'nobody'], cliEnv);
      assert.equal(bad.code, 1);
      assert.equal(bad.stderr.trim(), 'mailover suppress add: invalid address "nobody": missing @');
      const file = join(h.dir, 'unsubscribes.csv');
      writeFileSync(file, 'email\nsup1@example.com\nsup2@example.com\nnot-an-address\nSOMEONE@example.com\n');
      const imported = await run(['suppress', 'import', file, '--reason', 'unsubscribed'], cliEnv);
      assert.equal(imported.code, 0, imported.stderr);
      assert.match(imported.stdout, /^suppressed 3 addresses from .*unsubscribes\.csv \(1 already listed, 0 duplicates, 1 rejected\)$/m);
      assert.match(imported.stdout, /^ {2}line 4: missing @: "not-an-address"$/m);
      // Large files: checked whole first (a late error adds nothing), then added 1,000 at a time.
      const many = (n: number) => ['email', ...Array.from({ length: n }, (_, i) => `bulk${i + 1}@many.example`)];
      const broken = join(h.dir, 'broken-suppressions.csv');
      writeFileSync(broken, [...many(2500), '"bulk-late@many.example'].join('\n') + '\n');
      const refused = await run(['suppress', 'import', broken], cliEnv);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /broken-suppressions\.csv line 2502: unclosed quote/);
      assert.equal(await h.store.isSuppressed('bulk1@many.example'), false, 'nothing added from a file that does not parse');
      const bulk = join(h.dir, 'bulk-suppressions.csv');
      writeFileSync(bulk, [...many(2500), 'sup1@example.com'].join('\n') + '\n');
      const added = await run(['suppress', 'import', bulk], cliEnv);
      assert.equal(added.code, 0, added.stderr);
      assert.match(added.stdout, /^suppressed 2501 addresses from .*bulk-suppressions\.csv \(1 already listed, 0 duplicates, 0 rejected\)$/m);
      const listed = JSON.parse((await run(['suppress', 'list', '--json'], cliEnv)).stdout) as Array<{ email: string }>;
      assert.equal(listed.filter((r) => r.email.endsWith('@many.example')).length, 2500);
      const list = JSON.parse((await run(['suppress', 'list', '--json'], cliEnv)).stdout) as Array<{ email: string; reason: string }>;
      assert.deepEqual(
        list
          .filter((r) => /^(someone|sup\d)@/.test(r.email))
          .map((r) => `${r.email}:${r.reason}`)
          .sort(),
        ['someone@example.com:complaint', 'sup1@example.com:unsubscribed', 'sup2@example.com:unsubscribed'],
      );
      const table = await run(['suppress', 'list'], cliEnv);
      assert.match(table.stdout, /│ sup1@example\.com\s+│ unsubscribed\s+│ cli import\s+│/);
      // A campaign skips them.
      const id = uniqueId('cli-sup');
      const audience = join(h.dir, 'sup-audience.csv');
      writeFileSync(audience, 'email,first_name\nsup1@example.com,A\nfresh1@example.com,B\n');
      assert.equal((await run(['campaign', 'start', '--file', campaignFile(id), '--audience', audience, '--wait'], cliEnv)).code, 0);
      // Through whichever provider is up (an earlier test may have opened smtp-primary's shared circuit).
      assert.equal(h.deliveries().get('sup1@example.com') ?? 0, 0);
      assert.equal(h.deliveries().get('fresh1@example.com'), 1);
      assert.equal((await run(['suppress', 'remove', 'sup2@example.com'], cliEnv)).code, 0);
      const again = await run(['suppress', 'remove', 'sup2@example.com'], cliEnv);
      assert.equal(again.code, 1);
      assert.equal(again.stderr.trim(), 'mailover suppress remove: sup2@example.com is not on the suppression list');
    });

    it('cli: mailover webhooks serves signed Mailgun webhooks (a complaint suppresses, a forged one is refused) and one-click unsubscribes beside the worker; stops on SIGTERM', async () => {
      const configPath = join(h.dir, 'webhooks.yaml');
      const defs = h.providerDefs.map((d) => (d.kind === 'mailgun' ? { ...d, webhookSigningKey: TEST_WEBHOOK_KEY } : d));
      const secrets = writeProviderFile(configPath, defs);
      const doc = parse(readFileSync(configPath, 'utf8'));
      writeFileSync(configPath, stringify({ ...doc, webhooks: { port: 0, maxAgeSeconds: 60 } }));
      const child = spawn(process.execPath, [CLI, 'webhooks'], {
        env: { ...process.env, ...cliEnv, ...secrets, MAILOVER_CONFIG: configPath },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      const exited = new Promise<number | null>((res) => child.on('close', res));
      try {
        await waitUntil(() => out.includes('bounces '), 'mailover webhooks to be ready', 30_000);
        const base = /^ {2}http\s+(http:\/\/\S+)/m.exec(out)![1];
        assert.match(out, new RegExp(`^  webhooks\\s+${base.replace(/[.]/g, '\\.')}/webhooks/mailgun$`, 'm'));
        assert.ok(!out.includes(TEST_WEBHOOK_KEY) && !out.includes('test-unsubscribe-key'), 'no secret printed');
        const sign = (key: string, email: string) => {
          const timestamp = String(Math.floor(Date.now() / 1000));
          const token = uniqueId('tok');
          return JSON.stringify({
            signature: { timestamp, token, signature: signMailgunWebhook(key, timestamp, token) },
            'event-data': { id: uniqueId('ev'), event: 'complained', timestamp: Date.now() / 1000, recipient: email },
          });
        };
        const ok = await fetch(`${base}/webhooks/mailgun`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: sign(TEST_WEBHOOK_KEY, 'hook-complainer@example.com'),
        });
        assert.equal(ok.status, 200, await ok.text());
        const forged = await fetch(`${base}/webhooks/mailgun`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: sign('wrong-key-0123456789', 'hook-forged@example.com'),
        });
        assert.equal(forged.status, 401);
        const token = signUnsubscribeToken(TEST_UNSUBSCRIBE_KEY, { campaignId: 'any', email: 'hook-leaver@example.com' });
        const one = await fetch(`${base}/u/${token}`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: 'List-Unsubscribe=One-Click',
        });
        assert.equal(one.status, 200);
        const listed = await run(['suppress', 'list', '--json'], cliEnv);
        const emails = (JSON.parse(listed.stdout) as Array<{ email: string }>).map((r) => r.email);
        assert.ok(
          emails.includes('hook-complainer@example.com') && emails.includes('hook-leaver@example.com') && !emails.includes('hook-forged@example.com'),
          emails.join(', '),
        );
        assert.match(await (await fetch(`${base}/metrics`)).text(), /^mailover_webhook_refused_forged_total 1$/m);
        child.kill('SIGTERM');
        assert.equal(await exited, 0, out);
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
    });

    it('cli: mailover worker starts, says it is ready, and stops gracefully on SIGTERM (exit 0)', async () => {
      const child = spawn(process.execPath, [CLI, 'worker'], {
        env: { ...process.env, ...cliEnv, MAILOVER_TASK_QUEUE: uniqueId('cli-worker') },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      const exited = new Promise<number | null>((res) => child.on('close', res));
      await waitUntil(() => out.includes('mailover worker ready'), 'the worker to be ready', 30_000);
      assert.match(out, /providers smtp-primary, smtp-secondary, mailgun/);
      assert.ok(!out.includes('key-test'), 'no secret printed');
      child.kill('SIGTERM');
      assert.equal(await exited, 0, out);
    });
  });

  describe('mailover dev', () => {
    /** `mailover dev` as a child process on free ports, with everything it prints collected. */
    function startDev(name: string, extraArgs: string[] = []) {
      const dir = join(tmpdir(), uniqueId(name));
      const child = spawn(process.execPath, [CLI, 'dev', '--data', dir, '--port', '0', '--ui-port', '0', ...extraArgs], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const dev = {
        dir,
        child,
        out: '',
        exited: new Promise<number | null>((res) => child.on('close', res)),
        /** Until it prints that it is up; fails at once, with what it printed, if it exits first. */
        up: () =>
          Promise.race([
            waitUntil(() => dev.out.includes('Ctrl-C to stop.'), 'mailover dev to be up', 60_000).catch((err: Error) => {
              throw new Error(`${err.message}; it printed:\n${dev.out}`);
            }),
            dev.exited.then((code) => {
              throw new Error(`mailover dev exited (${code ?? child.signalCode}) before it was up; it printed:\n${dev.out}`);
            }),
          ]),
      };
      child.stdout.on('data', (d) => (dev.out += d));
      child.stderr.on('data', (d) => (dev.out += d));
      return dev;
    }
    const portRefused = (port: number) =>
      new Promise<boolean>((res) => {
        const s = connect(port, '127.0.0.1');
        // A free port in the ephemeral range can "connect" to itself (TCP simultaneous open, when
        // the kernel picks that very port as the source): nobody listens there either.
        s.once('connect', () => (res(s.localPort === s.remotePort), s.destroy()));
        s.once('error', () => res(true));
      });
    const running = (child: ReturnType<typeof spawn>) => child.exitCode === null && child.signalCode === null;

    it("cli: mailover dev runs the whole stack; a campaign goes through it; a drill's result reaches --alert-webhook; Ctrl-C stops everything and frees its ports", async () => {
      const receiver = await AlertReceiver.start();
      const dev = startDev('mailover-dev', ['--alert-webhook', receiver.url('/dev-alerts')]);
      try {
        await dev.up();
        const out = dev.out;
        const address = /^ {2}Temporal\s+(\S+)/m.exec(out)![1];
        const ui = /^ {2}Web UI\s+(\S+)/m.exec(out)![1];
        const smtpPort = Number(/smtp-primary\s+127\.0\.0\.1:(\d+)/.exec(out)![1]);
        const webhooks = /^ {2}webhooks\s+(http:\/\/127\.0\.0\.1:(\d+))\/webhooks\/mailgun/m.exec(out)!;
        const bouncePort = Number(/^ {2}bounces\s+smtp:\/\/127\.0\.0\.1:(\d+)/m.exec(out)![1]);
        const metricsUrl = /^ {2}metrics\s+(http:\/\/127\.0\.0\.1:(\d+)\/metrics)/m.exec(out)!;
        assert.equal(await (await fetch(`${webhooks[1]}/healthz`)).text(), 'ok');
        const r = await run(
          ['campaign', 'start', '--file', 'samples/campaign.yaml', '--audience', 'samples/audience.csv', '--wait'],
          {
            TEMPORAL_ADDRESS: address,
            MAILOVER_UI_URL: ui,
            MAILOVER_DATA_DIR: dev.dir,
            MAILOVER_CONFIG: '',
            MAILOVER_DB: join(dev.dir, 'mailover.db'),
            DATABASE_URL: '',
            MAILOVER_TASK_QUEUE: '',
          },
          ROOT,
        );
        assert.equal(r.code, 0, r.stderr + r.stdout);
        assert.match(r.stdout, /100% 300\/300 .* completed/);
        // The worker's /metrics counts what the campaign sent, beside the Temporal SDK's own series.
        const scrape = await (await fetch(metricsUrl[1])).text();
        const accepted = [...scrape.matchAll(/^mailover_messages_total\{[^}]*outcome="accepted"[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
        const acceptedInSummary = [...r.stdout.matchAll(/│ accepted via \S+\s+│\s+(\d+) │/g)].reduce((n, m) => n + Number(m[1]), 0);
        assert.ok(acceptedInSummary > 0, r.stdout);
        assert.equal(accepted, acceptedInSummary, scrape.slice(0, 2000));
        assert.match(scrape, /^temporal_/m);
        // Alerts: the dev worker posts a drill's result to the --alert-webhook receiver.
        assert.match(out, /^ {2}alerts\s+dev-webhook \(generic JSON\)$/m);
        const devEnv = {
          TEMPORAL_ADDRESS: address,
          MAILOVER_DATA_DIR: dev.dir,
          MAILOVER_CONFIG: '',
          MAILOVER_DB: join(dev.dir, 'mailover.db'),
          DATABASE_URL: '',
          MAILOVER_TASK_QUEUE: '',
        };
        const drill = await run(['drill', 'run', '--wait'], devEnv, ROOT);
        assert.equal(drill.code, 0, drill.stdout + drill.stderr);
        const alert = await waitUntil(() => receiver.received.find((a) => a.body?.event?.kind === 'drill-finished'), 'the drill-finished alert');
        assert.equal(alert.path, '/dev-alerts');
        assert.equal(alert.body.event.passed, true);
        assert.match(alert.body.text, /drill/i);
        dev.child.kill('SIGINT');
        assert.equal(await dev.exited, 0, dev.out);
        assert.match(dev.out, /stopped/);
        for (const port of [Number(address.split(':')[1]), smtpPort, Number(webhooks[2]), bouncePort, Number(metricsUrl[2])]) {
          assert.ok(await portRefused(port), `port ${port} is free after Ctrl-C`);
        }
      } finally {
        // On a failed assertion: stop it the way a user would (SIGKILL leaves the server to the watchdog).
        if (running(dev.child)) {
          dev.child.kill('SIGINT');
          await Promise.race([dev.exited, new Promise((r) => setTimeout(r, 15_000))]);
          if (running(dev.child)) dev.child.kill('SIGKILL');
        }
        await receiver.stop();
      }
    });

    it('cli: mailover dev refuses an alert URL that is not http(s) before starting anything (exit 2)', async () => {
      const bad = await run([
        'dev',
        '--data',
        join(tmpdir(), uniqueId('dev-bad-alert')),
        '--port',
        '0',
        '--ui-port',
        '0',
        '--alert-slack',
        'ftp://hooks.example/x',
      ]);
      assert.equal(bad.code, 2);
      assert.equal(bad.stderr.split('\n')[0], 'mailover dev: --alert-slack: expected an http(s) URL');
      assert.doesNotMatch(bad.stdout, /mailover dev is up/);
    });

    it('cli: mailover dev killed with SIGKILL does not leave its Temporal dev server running', async () => {
      const dev = startDev('mailover-dev-kill');
      let servers: number[] = [];
      try {
        await dev.up();
        servers = childProcesses(dev.child.pid!, isTemporalDevServer);
        assert.equal(servers.length, 1, 'mailover dev started one Temporal dev server');
        const port = Number(/^ {2}Temporal\s+\S+:(\d+)/m.exec(dev.out)![1]);
        dev.child.kill('SIGKILL');
        await dev.exited;
        await waitUntil(() => !isRunning(servers[0]), 'the orphaned Temporal dev server to be stopped by the watchdog', 30_000, 200);
        await waitUntil(() => portRefused(port), `the Temporal port ${port} to be free`, 10_000, 100);
      } finally {
        if (running(dev.child)) dev.child.kill('SIGKILL');
        for (const pid of servers) if (isRunning(pid)) process.kill(pid, 'SIGKILL');
      }
    });
  });
});
