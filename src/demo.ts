/**
 * `npm start`: a demo campaign on the embedded default. Starts the Temporal dev server
 * (with its Web UI), a worker and the local ESPs of `mailover dev`; imports samples/audience.csv;
 * sends samples/campaign.yaml; makes the primary provider fail part-way; shows the failover
 * with a live progress bar and ends with a summary. State persists under ./data.
 */
import { join, resolve } from 'path';
import { loadCampaignDefinition } from './campaign-definition';
import { campaignProgress } from './client';
import { startDevStack } from './dev/stack';
import { launchCampaign } from './launch';
import { progressBar, summaryTable, switchesTable } from './progress';
import { describeStore } from './store/open-store';
import type { CampaignResult } from '../workflows/campaign-api';

const ROOT = resolve(__dirname, '..', '..');
const BOUNCES = ['cleo.oak3@example.com'];
const UNSUBSCRIBED = ['eli.ives5@example.com', 'june.dale10@example.com'];
const PRIMARY_FAILS_AFTER = 120;

const say = (line = '') => process.stdout.write(line + '\n');

async function main(): Promise<void> {
  say('mailover demo: a campaign of 300 made-up recipients, an SMTP relay that goes down part-way, and Mailgun as the backup');
  const stack = await startDevStack({
    dataDir: process.env.MAILOVER_DATA_DIR ?? join(ROOT, 'data'),
    port: Number(process.env.MAILOVER_TEMPORAL_PORT ?? 7233),
    uiPort: Number(process.env.MAILOVER_UI_PORT ?? 8233),
    taskQueue: 'mailover-demo',
    log: (l) => say(l),
  });
  const { env, store, providers, primary, mailgun, taskQueue } = stack;
  try {
    say(`providers: smtp-primary on 127.0.0.1:${primary.port}, mailgun API at ${mailgun.url}; store ${describeStore(store)}`);
    primary.setAcceptDelay(10);
    mailgun.setLatency(40);
    primary.rejectRecipients(BOUNCES, 550, '5.1.1 mailbox unavailable');
    for (const a of UNSUBSCRIBED) await store.addSuppression(a, 'unsubscribed', 'demo');
    primary.failAfter(PRIMARY_FAILS_AFTER, 'refuse');

    const base = loadCampaignDefinition(join(ROOT, 'samples', 'campaign.yaml'), providers.names());
    const definition = { ...base, id: `${base.id}-${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-')}` };
    const launched = await launchCampaign({ client: env.client, store, definition, audienceFile: join(ROOT, 'samples', 'audience.csv'), taskQueue });
    say(`imported ${launched.inserted} recipients from samples/audience.csv (${launched.duplicates} duplicate, ${launched.rejected.length} rejected: ${launched.rejected.map((r) => `line ${r.line} ${r.reason}`).join(', ')})`);
    const url = `${stack.uiUrl}/namespaces/default/workflows/${definition.id}`;
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
    await complianceTour(stack);
    say();
    say('Where to look in the Temporal Web UI:');
    say(`  ${url}`);
    say('  - History: every batch is named by its summary ("batch 5: recipients #101–125 via smtp-primary"); the failed one is red, then the same batch on mailgun');
    say('  - User Metadata: the campaign summary, and its current details (counts per provider, every switch in words)');
    say('  - Queries → "progress": live counts, active provider, the switch log');
    say(`  - Workflows list, filter: CampaignStatus = "completed" AND ActiveProvider = "mailgun"`);
    say(`Prometheus metrics of the worker (messages by provider and outcome, the switch): ${stack.metricsUrl}`);
    if (process.stdin.isTTY && !process.env.CI) {
      say();
      say('The Web UI stays up until you press Ctrl-C.');
      await new Promise<void>((res) => process.once('SIGINT', () => res()));
    }
  } finally {
    await stack.stop();
  }
}

/** What happens after the send: a complaint through Mailgun's signed webhook, and a one-click unsubscribe. */
async function complianceTour({ store, primary, mailgun }: Awaited<ReturnType<typeof startDevStack>>): Promise<void> {
  say('Compliance (docs/compliance.md):');
  const first = primary.messages[0];
  if (first) {
    say(`  every message carried List-Unsubscribe (one-click) and a signed per-recipient Return-Path, e.g. ${first.from}`);
    const url = /<(https?:[^>]+)>/.exec(first.headers['list-unsubscribe'] ?? '')?.[1];
    if (url) {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'List-Unsubscribe=One-Click' });
      say(`  ${first.to[0]} pressed "Unsubscribe" in their mail client (RFC 8058 one-click POST): ${res.status} ${await res.text()}; suppressed: ${(await store.isSuppressed(first.to[0])) ? 'yes' : 'no'}`);
    }
  }
  const viaMailgun = mailgun.messages[0];
  if (viaMailgun) {
    const { webhookStatus } = await mailgun.simulateEvent(viaMailgun.to, 'complained');
    say(`  Mailgun reported a spam complaint from ${viaMailgun.to} by signed webhook (${webhookStatus}); suppressed on every provider: ${(await store.isSuppressed(viaMailgun.to)) ? 'yes' : 'no'}`);
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`mailover demo: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
