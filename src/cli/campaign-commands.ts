/** `mailover campaign ...`: start, steer and look at campaigns. */
import { WorkflowFailedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { loadCampaignDefinition } from '../campaign-definition';
import { cancelCampaign, campaignProgress, pauseCampaign, resumeCampaign, setCampaignProviders } from '../client';
import { checkLaunch, launchCampaign } from '../launch';
import { progressBar, rejectedRowLines, summaryTable, switchesTable, table } from '../progress';
import type { CampaignProgress, CampaignResult } from '../../workflows/campaign';
import { ActiveProviderKey, AcceptedCountKey, CampaignStatusKey } from '../../workflows/search-attributes';
import { DRILL_WORKFLOW_PREFIX } from '../../workflows/drill';
import { helpText, requireOption, type Command } from './command';
import { LiveLine } from './live-line';
import { UsageError } from './usage';

const STATUSES = ['running', 'paused', 'holding', 'completed', 'cancelled'];

/** Progress of a campaign, running or closed (a closed one answers from its result, no worker needed). */
export async function campaignState(client: Client, id: string): Promise<CampaignProgress> {
  const handle = client.workflow.getHandle(id);
  let desc;
  try {
    desc = await handle.describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new Error(`campaign '${id}' not found (no workflow with that id)`);
    throw err;
  }
  if (desc.status.name === 'RUNNING') return campaignProgress(client, id);
  if (desc.status.name === 'COMPLETED') {
    const r = (await handle.result()) as CampaignResult;
    return { ...r, paused: false, batchInFlight: false };
  }
  let reason = desc.status.name.toLowerCase();
  try {
    await handle.result();
  } catch (err) {
    if (err instanceof WorkflowFailedError) reason = `failed: ${err.cause?.message ?? err.message}`;
  }
  throw new Error(`campaign '${id}' ${reason}`);
}

function statusTable(p: CampaignProgress): string {
  const rows: string[][] = [
    ['campaign', p.campaignId],
    ['status', p.status + (p.pauseReason ? ` (${p.pauseReason})` : '')],
    ['active provider', p.activeProvider ?? 'none'],
    ['provider order', p.providers.join(' → ')],
    ['recipients', String(p.total)],
    ['accepted', String(p.accepted)],
    ...Object.entries(p.acceptedByProvider).map(([name, n]) => [`  via ${name}`, String(n)]),
    ['rejected', String(p.rejected)],
    ['suppressed', String(p.suppressed)],
    ['remaining', String(p.remaining)],
  ];
  if (p.heldForReview) rows.push(['held for review', String(p.heldForReview)]);
  if (p.inFlightRecovered) rows.push(['found in flight after a crash', String(p.inFlightRecovered)]);
  rows.push(['switches', String(p.switches.length)]);
  return table([['', ''], ...rows]).split('\n').filter((_, i) => i !== 1 && i !== 2).join('\n');
}

const start: Command = {
  name: 'campaign start',
  summary: 'Validate a campaign file, import its audience, and start its workflow.',
  usage: '--file campaign.yaml --audience list.csv [--wait | --dry-run]',
  details: [
    'Options:',
    '  --file PATH       campaign definition (YAML or JSON): id, name, from, template, providers, batchSize',
    '  --audience PATH   recipients, .csv (with an email column) or .jsonl',
    '  --wait            show a live progress bar until the campaign ends',
    '  --dry-run         run every check and say what would be imported; store nothing, start nothing',
    'Nothing is stored or sent if the file, the audience or a merge field is wrong.',
  ].join('\n'),
  options: { file: { type: 'string', short: 'f' }, audience: { type: 'string', short: 'a' }, wait: { type: 'boolean' }, 'dry-run': { type: 'boolean' } },
  async run(ctx, values) {
    const file = requireOption(values, 'file', start);
    const audienceFile = requireOption(values, 'audience', start);
    if (values['dry-run'] && values.wait) throw new UsageError('--dry-run and --wait cannot go together (a dry run starts nothing)', helpText(start));
    const definition = loadCampaignDefinition(file, ctx.providerNames());
    const store = await ctx.openStore();
    const bar = new LiveLine(process.stderr);
    const onCheckProgress = (rows: number) => bar.update(`checking the audience: ${rows} rows`);
    if (values['dry-run']) {
      const scan = await checkLaunch({ store, definition, audienceFile, onCheckProgress });
      bar.done();
      console.log(`campaign ${definition.id} is ready to start: ${scan.valid} recipients would be imported (${scan.duplicates.length} duplicates dropped, ${scan.rejected.length} rejected)`);
      for (const line of rejectedRowLines(scan.rejected)) console.log(line);
      console.log('dry run: nothing was stored or started');
      return;
    }
    const client = await ctx.temporal();
    const launched = await launchCampaign({
      client,
      store,
      definition,
      audienceFile,
      taskQueue: ctx.settings.taskQueue,
      onCheckProgress,
      onImportProgress: (done, total) => bar.update(`importing ${progressFraction(done, total)}`),
    });
    bar.done();
    console.log(`imported ${launched.inserted} recipients (${launched.duplicates} duplicates dropped, ${launched.rejected.length} rejected)`);
    for (const line of rejectedRowLines(launched.rejected)) console.log(line);
    console.log(`started campaign ${launched.workflowId} (workflow id ${launched.workflowId}, run ${launched.runId})`);
    console.log(`Web UI: ${ctx.webUiLink(launched.workflowId)}`);
    if (values.wait) return watchUntilDone(client, launched.workflowId);
  },
};

function progressFraction(done: number, total: number, width = 30): string {
  const ratio = total ? done / total : 1;
  const filled = Math.round(ratio * width);
  return `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${done}/${total}`;
}

async function watchUntilDone(client: Client, id: string): Promise<number> {
  const line = new LiveLine(process.stdout);
  let switches = 0;
  for (;;) {
    const p = await campaignState(client, id);
    for (const s of p.switches.slice(switches)) line.print(`⚠ switched ${s.from} → ${s.to ?? 'none (holding)'} at recipient #${s.atSeq}: ${s.reason}`);
    switches = p.switches.length;
    line.update(progressBar(p));
    if (p.status === 'completed' || p.status === 'cancelled') {
      line.done();
      console.log(summaryTable({ ...p }));
      if (p.switches.length) console.log(switchesTable(p));
      return 0;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

const status: Command = {
  name: 'campaign status',
  summary: 'Show a campaign: status, provider, counts, switches (a table; --json for scripts).',
  usage: '<id> [--json]',
  args: ['id'],
  options: { json: { type: 'boolean' } },
  async run(ctx, values, [id]) {
    const p = await campaignState(await ctx.temporal(), id);
    if (values.json) console.log(JSON.stringify(p, null, 2));
    else {
      console.log(statusTable(p));
      if (p.switches.length) console.log(switchesTable(p));
    }
  },
};

const watch: Command = {
  name: 'campaign watch',
  summary: 'A live progress bar until the campaign completes or is cancelled, then its summary.',
  usage: '<id>',
  args: ['id'],
  async run(ctx, _values, [id]) {
    return watchUntilDone(await ctx.temporal(), id);
  },
};

function signalCommand(name: 'pause' | 'resume' | 'cancel', summary: string): Command {
  const cmd: Command = {
    name: `campaign ${name}`,
    summary,
    usage: name === 'pause' ? '<id> [--reason TEXT]' : '<id>',
    args: ['id'],
    options: name === 'pause' ? { reason: { type: 'string' } } : {},
    async run(ctx, values, [id]) {
      const client = await ctx.temporal();
      await campaignState(client, id); // a clear error for unknown or closed campaigns
      if (name === 'pause') await pauseCampaign(client, id, typeof values.reason === 'string' ? values.reason : undefined);
      else if (name === 'resume') await resumeCampaign(client, id);
      else await cancelCampaign(client, id);
      console.log(`${name} sent to campaign ${id}`);
    },
  };
  return cmd;
}

const list: Command = {
  name: 'campaign list',
  summary: 'Campaigns from Temporal visibility, newest first (the synthetic campaigns of failover drills only with --drills).',
  usage: '[--status running|paused|holding|completed|cancelled] [--limit N] [--drills] [--json]',
  options: { status: { type: 'string' }, limit: { type: 'string' }, drills: { type: 'boolean' }, json: { type: 'boolean' } },
  async run(ctx, values) {
    const wanted = values.status;
    if (wanted !== undefined && (typeof wanted !== 'string' || !STATUSES.includes(wanted))) {
      throw new UsageError(`--status: expected one of ${STATUSES.join(', ')}, got '${String(wanted)}'`, helpText(list));
    }
    const limit = values.limit === undefined ? 50 : Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1) throw new UsageError(`--limit: expected a positive whole number, got '${String(values.limit)}'`, helpText(list));
    const client = await ctx.temporal();
    const query = `WorkflowType = 'campaignWorkflow'${wanted ? ` AND CampaignStatus = '${wanted}'` : ''}`;
    const rows: Array<{ id: string; status: string; provider: string; accepted: number; started: string }> = [];
    let hiddenDrills = 0;
    for await (const wf of client.workflow.list({ query })) {
      // A drill's synthetic campaign is a child of its drill workflow: not one of the team's campaigns.
      if (!values.drills && wf.parentExecution?.workflowId?.startsWith(DRILL_WORKFLOW_PREFIX)) {
        hiddenDrills++;
        continue;
      }
      rows.push({
        id: wf.workflowId,
        status: String(wf.typedSearchAttributes.get(CampaignStatusKey) ?? wf.status.name.toLowerCase()),
        provider: String(wf.typedSearchAttributes.get(ActiveProviderKey) ?? ''),
        accepted: Number(wf.typedSearchAttributes.get(AcceptedCountKey) ?? 0),
        started: wf.startTime.toISOString().replace('T', ' ').slice(0, 19),
      });
      if (rows.length >= limit) break;
    }
    if (values.json) console.log(JSON.stringify(rows, null, 2));
    else if (!rows.length) console.log(`no campaigns${wanted ? ` with status ${wanted}` : ''}`);
    else console.log(table([['campaign', 'status', 'active provider', 'accepted', 'started (UTC)'], ...rows.map((r) => [r.id, r.status, r.provider, String(r.accepted), r.started])]));
    if (!values.json && hiddenDrills) console.log(`(${hiddenDrills} drill campaign(s) not shown; --drills shows them)`);
  },
};

const providers: Command = {
  name: 'campaign providers',
  summary: 'Give a running campaign a new provider order (takes effect at its next batch; ends a hold).',
  usage: '<id> <name,name,...>',
  args: ['id', 'providers'],
  async run(ctx, _values, [id, names]) {
    const order = names.split(',').map((s) => s.trim()).filter(Boolean);
    const accepted = await setCampaignProviders(await ctx.temporal(), id, order);
    console.log(`campaign ${id} now sends via ${accepted.join(' → ')}`);
  },
};

export const campaignCommands: Command[] = [
  start,
  status,
  watch,
  signalCommand('pause', 'Pause a campaign after its current batch; nothing more is sent until resume.'),
  signalCommand('resume', 'Resume a paused or holding campaign.'),
  signalCommand('cancel', 'Cancel a campaign after its current batch; unsent recipients stay pending.'),
  list,
  providers,
];
