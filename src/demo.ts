/**
 * `npm start`: a demo campaign on the embedded default. Starts the Temporal dev server
 * (with its Web UI), two local SMTP providers and a worker; imports samples/audience.csv;
 * sends samples/campaign.yaml; makes the primary provider fail part-way; shows the failover
 * with a live progress bar and ends with a summary. State persists under ./data.
 */
import { mkdirSync } from 'fs';
import { createServer } from 'net';
import { join, resolve } from 'path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { loadCampaignDefinition } from './campaign-definition';
import { campaignProgress } from './client';
import type { ProviderDefinition } from './config';
import { SmtpSink } from './dev/smtp-sink';
import { launchCampaign } from './launch';
import { progressBar, summaryTable, switchesTable } from './progress';
import { ProviderRegistry } from './providers/registry';
import { describeStore, openStore } from './store/open-store';
import { ensureTemporalCli } from './temporal-cli';
import { createCampaignWorker } from './worker';
import { campaignSearchAttributes } from '../workflows/search-attributes';
import type { CampaignResult } from '../workflows/campaign';

const ROOT = resolve(__dirname, '..', '..');
const BOUNCES = ['cleo.oak3@example.com'];
const UNSUBSCRIBED = ['eli.ives5@example.com', 'june.dale10@example.com'];
const PRIMARY_FAILS_AFTER = 120;

function portFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const srv = createServer();
    srv.once('error', () => res(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => res(true)));
  });
}

/** The given port if it is free, else any free port (0 asks for any). */
async function preferredPort(port: number): Promise<number> {
  if (port && (await portFree(port))) return port;
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => res(p));
    });
  });
}

const say = (line = '') => process.stdout.write(line + '\n');

async function main(): Promise<void> {
  const dataDir = resolve(process.env.MAILOVER_DATA_DIR ?? join(ROOT, 'data'));
  mkdirSync(dataDir, { recursive: true });
  Runtime.install({ logger: new DefaultLogger('ERROR') });

  say('mailover demo: a campaign of 300 made-up recipients through two local SMTP providers');
  const cli = ensureTemporalCli((l) => say(l));
  const port = await preferredPort(Number(process.env.MAILOVER_TEMPORAL_PORT ?? 7233));
  const uiPort = await preferredPort(Number(process.env.MAILOVER_UI_PORT ?? 8233));
  say(`starting the Temporal dev server (${cli.path ?? 'SDK download'}) on 127.0.0.1:${port}, Web UI on ${uiPort} ...`);
  const env = await TestWorkflowEnvironment.createLocal({
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
  const primary = await SmtpSink.start({ name: 'smtp-primary' });
  const backup = await SmtpSink.start({ name: 'smtp-backup' });
  const store = await openStore({ sqlitePath: join(dataDir, 'mailover.db') });
  const defs: ProviderDefinition[] = [primary, backup].map((s) => ({ kind: 'smtp' as const, name: s.name, host: s.host, port: s.port, pool: { maxConnections: 4 } }));
  const providers = new ProviderRegistry(defs);
  const taskQueue = 'mailover-demo';
  const worker = await createCampaignWorker({ connection: env.nativeConnection, taskQueue, store, providers });
  const running = worker.run();

  const cleanup = async () => {
    if (worker.getState() === 'RUNNING') worker.shutdown();
    await running.catch(() => undefined);
    await providers.closeAll();
    await primary.stop();
    await backup.stop();
    await store.close();
    await env.teardown();
  };

  try {
    say(`providers: smtp-primary on 127.0.0.1:${primary.port}, smtp-backup on 127.0.0.1:${backup.port}; store ${describeStore(store)}`);
    for (const s of [primary, backup]) s.setAcceptDelay(10);
    primary.rejectRecipients(BOUNCES, 550, '5.1.1 mailbox unavailable');
    for (const a of UNSUBSCRIBED) await store.addSuppression(a, 'unsubscribed', 'demo');
    primary.failAfter(PRIMARY_FAILS_AFTER, 'refuse');

    const base = loadCampaignDefinition(join(ROOT, 'samples', 'campaign.yaml'), providers.names());
    const definition = { ...base, id: `${base.id}-${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-')}` };
    const launched = await launchCampaign({ client: env.client, store, definition, audienceFile: join(ROOT, 'samples', 'audience.csv'), taskQueue });
    say(`imported ${launched.inserted} recipients from samples/audience.csv (${launched.duplicates} duplicate, ${launched.rejected.length} rejected: ${launched.rejected.map((r) => `line ${r.line} ${r.reason}`).join(', ')})`);
    const url = `http://127.0.0.1:${uiPort}/namespaces/default/workflows/${definition.id}`;
    say(`campaign ${definition.id} started: ${url}`);
    say(`(the primary provider will go down after ${PRIMARY_FAILS_AFTER} messages)`);
    say();

    const handle = env.client.workflow.getHandle(definition.id);
    const tty = process.stdout.isTTY;
    let lastPrinted = -1;
    let lastSwitches = 0;
    const poll = setInterval(() => {
      campaignProgress(env.client, definition.id)
        .then((p) => {
          if (p.switches.length > lastSwitches) {
            const s = p.switches[p.switches.length - 1];
            if (tty) process.stdout.write('\r\x1b[2K');
            say(`⚠ switched ${s.from} → ${s.to ?? 'none'} at recipient #${s.atSeq}: ${s.reason}`);
            lastSwitches = p.switches.length;
          }
          const line = progressBar(p);
          if (tty) process.stdout.write(`\r\x1b[2K${line}`);
          else {
            const decile = Math.floor(((p.accepted + p.rejected + p.suppressed) / Math.max(1, p.total)) * 4);
            if (decile > lastPrinted) {
              say(line);
              lastPrinted = decile;
            }
          }
        })
        .catch(() => undefined);
    }, 150);
    let result: CampaignResult;
    try {
      result = await handle.result();
    } finally {
      clearInterval(poll);
    }
    if (tty) process.stdout.write('\r\x1b[2K');
    say(progressBar({ ...result, paused: false, batchInFlight: false }));
    say();
    say(summaryTable(result));
    say(switchesTable(result));
    say();
    say('Where to look in the Temporal Web UI:');
    say(`  ${url}`);
    say('  - the summary at the top names the campaign, its audience size and provider order');
    say('  - History: the failed sendBatch on smtp-primary, then batches on smtp-backup');
    say('  - Queries → "progress": live counts, active provider, the switch log');
    say(`  - Workflows list, filter: CampaignStatus = "completed" AND ActiveProvider = "smtp-backup"`);
    if (process.stdin.isTTY && !process.env.CI) {
      say();
      say('The Web UI stays up until you press Ctrl-C.');
      await new Promise<void>((res) => process.once('SIGINT', () => res()));
    }
  } finally {
    await cleanup();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`mailover demo: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
