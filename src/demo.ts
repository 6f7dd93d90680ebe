/**
 * `npm start`: a demo campaign on the embedded default. Starts the Temporal dev server
 * (with its Web UI), a worker and the local ESPs of `mailover dev`; imports samples/audience.csv;
 * sends samples/campaign.yaml; makes the primary provider fail part-way; shows the failover
 * with a live progress bar and ends with a summary. State persists under ./data.
 */
import { join, resolve } from 'path';
import { loadCampaignDefinition } from './campaign-definition';
import { campaignProgress } from './client';
import { DEV_ESPS } from './dev/dev-esps';
import { startDevStack, type DevEsp } from './dev/stack';
import { providerModule } from './providers/modules';
import type { EspEmulator } from './providers/provider-module';
import { launchCampaign } from './launch';
import { progressBar, summaryTable, switchesTable } from './progress';
import { describeStore } from './store/open-store';
import type { CampaignResult } from '../workflows/campaign-api';

const ROOT = resolve(__dirname, '..', '..');
const BOUNCES = ['cleo.oak3@example.com'];
const UNSUBSCRIBED = ['eli.ives5@example.com', 'june.dale10@example.com'];
const PRIMARY_FAILS_AFTER = 120;

const say = (line = '') => process.stdout.write(line + '\n');

/** An emulator control the demo needs; an error naming the provider when its kind's emulator lacks it. */
function control<K extends keyof EspEmulator>(esp: DevEsp, key: K): NonNullable<EspEmulator[K]> {
  const f = esp.emulator[key];
  if (typeof f !== 'function') throw new Error(`the demo needs ${esp.name}'s emulator (${esp.module.title}) to offer ${String(key)}`);
  return f.bind(esp.emulator) as NonNullable<EspEmulator[K]>;
}

async function main(): Promise<void> {
  // The sample campaign sends through its first provider, the second being the backup.
  const sample = loadCampaignDefinition(
    join(ROOT, 'samples', 'campaign.yaml'),
    DEV_ESPS.map((p) => p.name),
  );
  const titleOf = (name: string) => providerModule(DEV_ESPS.find((p) => p.name === name)!.kind).title;
  const [primaryName, backupName] = sample.providers;
  say(
    `mailover demo: a campaign of 300 made-up recipients through ${primaryName} (${titleOf(primaryName)}), which goes down part-way, with ${backupName} (${titleOf(backupName)}) as the backup`,
  );
  const stack = await startDevStack({
    dataDir: process.env.MAILOVER_DATA_DIR ?? join(ROOT, 'data'),
    port: Number(process.env.MAILOVER_TEMPORAL_PORT ?? 7233),
    uiPort: Number(process.env.MAILOVER_UI_PORT ?? 8233),
    taskQueue: 'mailover-demo',
    log: (l) => say(l),
  });
  const { env, store, providers, taskQueue } = stack;
  try {
    const primary = stack.esp(primaryName);
    const backup = stack.esp(backupName);
    say(`providers: ${primary.name} at ${primary.emulator.endpoint}, ${backup.name} at ${backup.emulator.endpoint}; store ${describeStore(store)}`);
    control(primary, 'setLatency')(10);
    control(backup, 'setLatency')(40);
    control(primary, 'bounceRecipients')(BOUNCES);
    for (const a of UNSUBSCRIBED) await store.addSuppression(a, 'unsubscribed', 'demo');
    await control(primary, 'goDownAfter')(PRIMARY_FAILS_AFTER);

    const base = loadCampaignDefinition(join(ROOT, 'samples', 'campaign.yaml'), providers.names());
    const definition = { ...base, id: `${base.id}-${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-')}` };
    const launched = await launchCampaign({ client: env.client, store, definition, audienceFile: join(ROOT, 'samples', 'audience.csv'), taskQueue });
    say(
      `imported ${launched.inserted} recipients from samples/audience.csv (${launched.duplicates} duplicate, ${launched.rejected.length} rejected: ${launched.rejected.map((r) => `line ${r.line} ${r.reason}`).join(', ')})`,
    );
    const url = `${stack.uiUrl}/namespaces/default/workflows/${definition.id}`;
    say(`campaign ${definition.id} started: ${url}`);
    say(`(the primary provider will go down after ${PRIMARY_FAILS_AFTER} messages)`);
    say();

    const handle = env.client.workflow.getHandle(definition.id);
    const tty = process.stdout.isTTY;
    let lastPrinted = -1;
    let lastSwitches = 0;
    // One progress query at a time, and the last one finished before the stack stops: a query
    // still in flight (or in its gRPC retry) when the connection closes would crash the process.
    let polling = true;
    const showProgress = async () => {
      const p = await campaignProgress(env.client, definition.id);
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
    };
    const pollLoop = (async () => {
      while (polling) {
        await showProgress().catch(() => undefined);
        await new Promise((res) => setTimeout(res, 150));
      }
    })();
    let result: CampaignResult;
    try {
      result = await handle.result();
    } finally {
      polling = false;
      await pollLoop;
    }
    if (tty) process.stdout.write('\r\x1b[2K');
    say(progressBar({ ...result, paused: false, batchInFlight: false, batchesInFlight: 0 }));
    say();
    say(summaryTable(result));
    say(switchesTable(result));
    say();
    await complianceTour(stack, primary, backup);
    say();
    say('Where to look in the Temporal Web UI:');
    say(`  ${url}`);
    say(
      `  - History: every batch is named by its summary ("batch 5: recipients #101–125 via ${primaryName}"); the failed one is red, then the same batch on ${backupName}`,
    );
    say('  - User Metadata: the campaign summary, and its current details (counts per provider, every switch in words)');
    say('  - Queries → "progress": live counts, active provider, the switch log');
    say(`  - Workflows list, filter: CampaignStatus = "completed" AND ActiveProvider = "${backupName}"`);
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

/** What happens after the send: a one-click unsubscribe, and a complaint through the backup's signed webhook (when its kind has webhooks). */
async function complianceTour({ store }: Awaited<ReturnType<typeof startDevStack>>, primary: DevEsp, backup: DevEsp): Promise<void> {
  say('Compliance (docs/compliance.md):');
  const first = primary.emulator.received()[0];
  if (first) {
    say(`  every message carried List-Unsubscribe (one-click) and a signed per-recipient Return-Path, e.g. ${first.from}`);
    const url = /<(https?:[^>]+)>/.exec(first.headers['list-unsubscribe'] ?? '')?.[1];
    if (url) {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'List-Unsubscribe=One-Click' });
      say(
        `  ${first.to} pressed "Unsubscribe" in their mail client (RFC 8058 one-click POST): ${res.status} ${await res.text()}; suppressed: ${(await store.isSuppressed(first.to)) ? 'yes' : 'no'}`,
      );
    }
  }
  const viaBackup = backup.emulator.received()[0];
  if (viaBackup && backup.webhookUrl && backup.emulator.reportComplaint) {
    const { webhookStatus } = await backup.emulator.reportComplaint(viaBackup.to);
    say(
      `  ${backup.module.title} reported a spam complaint from ${viaBackup.to} by signed webhook (${webhookStatus}); suppressed on every provider: ${(await store.isSuppressed(viaBackup.to)) ? 'yes' : 'no'}`,
    );
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`mailover demo: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
