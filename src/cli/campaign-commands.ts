/** `mailover campaign ...`: start, steer and look at campaigns. */
import { WorkflowFailedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { loadCampaignDefinition } from '../campaign-definition';
import { userInfo, hostname } from 'os';
import { cancelCampaign, campaignProgress, pauseCampaign, releaseHeldRows, resumeCampaign, setCampaignProviders } from '../client';
import { checkLaunch, launchCampaign } from '../launch';
import { progressBar, rejectedRowLines, summaryTable, switchesTable, table, utcTime } from '../progress';
import { parseStartAt } from '../start-at';
import { waitText } from '../../workflows/send-schedule';
import { describeWindow } from '../../workflows/send-window';
import { clip } from '../quote-value';
import type { CampaignProgress, CampaignResult } from '../../workflows/campaign-api';
import { ActiveProviderKey, AcceptedCountKey, CampaignStatusKey } from '../../workflows/search-attributes';
import { DRILL_WORKFLOW_PREFIX } from '../../workflows/drill-api';
import { retryLinks } from '../ledger-views';
import { openStoreReadOnly } from '../store/read-only-store';
import { workerStartup } from '../worker-main';
import { helpText, requireOption, type Command } from './command';
import { configPath, type CliContext } from './context';
import { LiveLine } from './live-line';
import { UsageError } from './usage';
import { providersText, splitText, type ProviderChoice } from '../../workflows/weighted-routing';

const STATUSES = ['scheduled', 'running', 'waiting', 'paused', 'holding', 'completed', 'cancelled'];

/** Progress of a campaign, running or closed (a closed one answers from its result, no worker needed). */
export async function campaignState(client: Client, id: string): Promise<CampaignProgress> {
  const handle = client.workflow.getHandle(id);
  let desc;
  try {
    desc = await handle.describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new Error(`campaign '${id}' not found (no workflow with that id)`, { cause: err });
    throw err;
  }
  if (desc.status.name === 'RUNNING') return campaignProgress(client, id);
  if (desc.status.name === 'COMPLETED') {
    const r = (await handle.result()) as CampaignResult;
    return { ...r, paused: false, batchInFlight: false, batchesInFlight: 0 };
  }
  let reason = desc.status.name.toLowerCase();
  try {
    await handle.result();
  } catch (err) {
    if (err instanceof WorkflowFailedError) reason = `failed: ${err.cause?.message ?? err.message}`;
  }
  throw new Error(`campaign '${id}' ${reason}`);
}

const sharePercent = (n: number, of: number) => (of > 0 ? `${((n * 100) / of).toFixed(1)} %` : '-');

export function statusTable(p: CampaignProgress): string {
  const rows: string[][] = [
    ['campaign', p.campaignId],
    ['status', p.status + (p.hold && p.hold.kind !== 'operator' ? ` (${p.hold.kind}: ${p.hold.reason})` : p.pauseReason ? ` (${p.pauseReason})` : '')],
    ...(waitText(p) ? [['', waitText(p) as string]] : []),
    ...(p.scheduledFor ? [['scheduled for', utcTime(p.scheduledFor)]] : []),
    ...(p.sendWindow ? [['send window', p.sendWindow]] : []),
    ['active provider', p.activeProvider ?? 'none'],
    ...(p.weights
      ? [
          ['providers by weight', providersText(p.providers, p.weights)],
          ['intended split now', splitText(p.intendedShare ?? {})],
        ]
      : [['provider order', p.providers.join(' → ')]]),
    ['recipients', String(p.total)],
    ['accepted', String(p.accepted)],
    ...Object.entries(p.acceptedByProvider).map(([name, n]) => [`  via ${name}`, p.weights ? `${n} (${sharePercent(n, p.accepted)})` : String(n)]),
    ['rejected', String(p.rejected)],
    ['suppressed', String(p.suppressed)],
    ['remaining', String(p.remaining)],
  ];
  if (p.deferred)
    rows.push(['deferred (retried later)', `${p.deferred}${p.nextDeferredAt ? ` (next ${p.nextDeferredAt.replace('T', ' ').slice(0, 19)} UTC)` : ''}`]);
  if (p.heldForReview) rows.push(['held for review', `${p.heldForReview} (mailover campaign held ${p.campaignId})`]);
  if (p.inFlightRecovered) rows.push(['found in flight after a crash', String(p.inFlightRecovered)]);
  rows.push(['switches', String(p.switches.length)]);
  return table([['', ''], ...rows])
    .split('\n')
    .filter((_, i) => i !== 1 && i !== 2)
    .join('\n');
}

const start: Command = {
  name: 'campaign start',
  summary: 'Validate a campaign file, import its audience, and start its workflow.',
  usage: '--file campaign.yaml --audience list.csv [--at TIME] [--wait | --dry-run]',
  details: [
    'Options:',
    '  --file PATH       campaign definition (YAML or JSON): id, name, from, template, providers, batchSize, batchesInFlight, window',
    '  --audience PATH   recipients, .csv (with an email column) or .jsonl',
    '  --at TIME         send nothing before TIME, ISO 8601 with its offset (2026-12-02T09:00:00+01:00): the campaign',
    '                    is checked, imported and started now, and waits (status scheduled) until then; cancel works meanwhile',
    '  --wait            show a live progress bar until the campaign ends',
    '  --dry-run         run every check a launch and a worker would (provider file included) and say what would be',
    '                    imported and what could not be checked (the ESPs, Temporal); write nothing, start nothing',
    'Nothing is stored or sent if the file, the audience or a merge field is wrong.',
  ].join('\n'),
  options: {
    file: { type: 'string', short: 'f' },
    audience: { type: 'string', short: 'a' },
    at: { type: 'string' },
    wait: { type: 'boolean' },
    'dry-run': { type: 'boolean' },
  },
  async run(ctx, values) {
    const file = requireOption(values, 'file', start);
    const audienceFile = requireOption(values, 'audience', start);
    if (values['dry-run'] && values.wait) throw new UsageError('--dry-run and --wait cannot go together (a dry run starts nothing)', helpText(start));
    // Before anything is read, stored or started: a start time that is unclear or gone by is refused.
    let startAt: Date | undefined;
    if (values.at !== undefined) {
      const when = parseStartAt(values.at, Date.now());
      if (when.problem !== undefined) throw new UsageError(`${when.problem}; nothing was started`, helpText(start));
      startAt = when.at;
    }
    if (values['dry-run']) return dryRun(ctx, file, audienceFile, startAt);
    const definition = loadCampaignDefinition(file, ctx.providerNames());
    const store = await ctx.openStore();
    const bar = new LiveLine(process.stderr);
    const onCheckProgress = (rows: number) => bar.update(`checking the audience: ${rows} rows`);
    const client = await ctx.temporal();
    const launched = await launchCampaign({
      client,
      store,
      definition,
      audienceFile,
      taskQueue: ctx.settings.taskQueue,
      startAt,
      onCheckProgress,
      onImportProgress: (done, total) => bar.update(`importing ${progressFraction(done, total)}`),
    });
    bar.done();
    console.log(`imported ${launched.inserted} recipients (${launched.duplicates} duplicates dropped, ${launched.rejected.length} rejected)`);
    for (const line of rejectedRowLines(launched.rejected)) console.log(line);
    console.log(`started campaign ${launched.workflowId} (workflow id ${launched.workflowId}, run ${launched.runId})`);
    if (startAt)
      console.log(
        `scheduled: it sends nothing before ${utcTime(startAt.toISOString())} (${values.at}); cancel it meanwhile with: mailover campaign cancel ${launched.workflowId}`,
      );
    if (definition.window) console.log(`send window: ${describeWindow(definition.window)} (outside it the campaign waits)`);
    console.log(`Web UI: ${ctx.webUiLink(launched.workflowId)}`);
    if (values.wait) return watchUntilDone(client, launched.workflowId);
  },
};

/**
 * `campaign start --dry-run`: every check a launch makes, plus every check a worker makes, on the
 * provider file a worker here would load (secrets resolved from this environment, as the worker
 * resolves them from its own) and against the campaign. It writes nothing, anywhere (the store is
 * only read, never created), reaches no ESP and no Temporal server, and says what it so left unchecked.
 */
async function dryRun(ctx: CliContext, file: string, audienceFile: string, startAt: Date | undefined): Promise<void> {
  const config = configPath(ctx.options);
  const worker = workerStartup(config);
  const providerNames = worker.config.providers.map((p) => p.name);
  const definition = loadCampaignDefinition(file, providerNames);
  const reader = await openStoreReadOnly();
  const bar = new LiveLine(process.stderr);
  let scan;
  try {
    scan = await checkLaunch({
      store: reader.state === 'open' ? reader.campaigns : undefined,
      definition,
      audienceFile,
      onCheckProgress: (rows) => bar.update(`checking the audience: ${rows} rows`),
      worker: { configPath: config, providerNames, compliance: worker.config.compliance },
    });
  } finally {
    bar.done();
    if (reader.state === 'open') await reader.close();
  }
  console.log(
    `campaign ${definition.id} is ready to start: ${scan.valid} recipients would be imported (${scan.duplicates.length} duplicates dropped, ${scan.rejected.length} rejected)`,
  );
  for (const line of rejectedRowLines(scan.rejected)) console.log(line);
  if (startAt) console.log(`it would send nothing before ${utcTime(startAt.toISOString())}`);
  if (definition.window) console.log(`it would send only inside its window: ${describeWindow(definition.window)}`);
  const esps = definition.providers;
  const { address, taskQueue } = worker.settings;
  const they = esps.length === 1 ? 'it accepts' : 'they accept';
  console.log(`not checked: reaching ${esps.join(', ')} and whether ${they} mailover's credentials (tried at the first send)`);
  console.log(`not checked: the Temporal server at ${address} and a worker on task queue ${taskQueue} (a dry run connects to neither)`);
  console.log(`not checked: the worker's own environment (secrets and settings were read from this one)`);
  if (reader.state === 'unread') console.log(`not checked: that campaign id ${definition.id} is new in ${reader.location} (${reader.reason})`);
  console.log('dry run: nothing was stored or started');
}

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
    // Off a terminal only a change of status prints (and the last line, at the end).
    line.update(progressBar(p), `${p.status}${p.pauseReason ? `: ${p.pauseReason}` : ''}`);
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
    const links = await retryLinks(id);
    if (values.json) console.log(JSON.stringify({ ...p, ...links }, null, 2));
    else {
      console.log(statusTable(p));
      if (links?.retryOf) console.log(`retry of campaign ${links.retryOf}`);
      if (links?.retries.length) console.log(`retried as ${links.retries.join(', ')}`);
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

/** CampaignStatus values a campaign has while its workflow runs (the others once it has completed). */
const RUNNING_STATUSES = ['starting', 'scheduled', 'running', 'waiting', 'paused', 'holding'];

/**
 * The visibility query of `campaign list`: each campaign's latest run only (a run that continued as
 * new keeps the CampaignStatus it had then, e.g. running), and with --status, runs in the matching
 * execution state (a terminated run keeps its last CampaignStatus too).
 */
export function campaignListQuery(wanted?: string): string {
  const base = `WorkflowType = 'campaignWorkflow' AND ExecutionStatus != 'ContinuedAsNew'`;
  if (!wanted) return base;
  return `${base} AND CampaignStatus = '${wanted}' AND ExecutionStatus = '${RUNNING_STATUSES.includes(wanted) ? 'Running' : 'Completed'}'`;
}

/** What `campaign list` shows as a run's status: its CampaignStatus while that is true, else how the workflow ended (terminated, failed, timed_out...). */
export function listedStatus(execution: string, campaignStatus: unknown): string {
  const status = typeof campaignStatus === 'string' ? campaignStatus : undefined;
  if (execution === 'RUNNING') return status && RUNNING_STATUSES.includes(status) ? status : 'starting';
  if (execution === 'COMPLETED') return status && !RUNNING_STATUSES.includes(status) ? status : 'completed';
  return execution.toLowerCase();
}

/** When a scheduled or waiting campaign goes on, from its memo (set at start and kept by its workflow): `{ until }`, or nothing. */
export function waitingUntil(status: string, memo: Record<string, unknown> | undefined): { until?: string } {
  const until = memo?.waitingUntil;
  return (status === 'scheduled' || status === 'waiting') && typeof until === 'string' ? { until } : {};
}

const list: Command = {
  name: 'campaign list',
  summary:
    "Campaigns from Temporal visibility, newest first, each once with its latest run's status (the synthetic campaigns of failover drills only with --drills).",
  usage: `[--status ${STATUSES.join('|')}] [--limit N] [--drills] [--json]`,
  options: { status: { type: 'string' }, limit: { type: 'string' }, drills: { type: 'boolean' }, json: { type: 'boolean' } },
  async run(ctx, values) {
    const wanted = values.status;
    if (wanted !== undefined && (typeof wanted !== 'string' || !STATUSES.includes(wanted))) {
      throw new UsageError(`--status: expected one of ${STATUSES.join(', ')}, got '${clip(String(wanted))}'`, helpText(list));
    }
    const limit = values.limit === undefined ? 50 : Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1)
      throw new UsageError(`--limit: expected a positive whole number, got '${clip(String(values.limit))}'`, helpText(list));
    const client = await ctx.temporal();
    const rows: Array<{ id: string; status: string; until?: string; provider: string; accepted: number; started: string }> = [];
    const seen = new Set<string>();
    let hiddenDrills = 0;
    for await (const wf of client.workflow.list({ query: campaignListQuery(wanted) })) {
      // Newest first: a campaign id started again after it ended is listed once, as its latest run.
      if (seen.has(wf.workflowId)) continue;
      seen.add(wf.workflowId);
      // A drill's synthetic campaign is a child of its drill workflow: not one of the team's campaigns.
      if (!values.drills && wf.parentExecution?.workflowId?.startsWith(DRILL_WORKFLOW_PREFIX)) {
        hiddenDrills++;
        continue;
      }
      const status = listedStatus(wf.status.name, wf.typedSearchAttributes.get(CampaignStatusKey));
      rows.push({
        id: wf.workflowId,
        status,
        ...waitingUntil(status, wf.memo),
        provider: String(wf.typedSearchAttributes.get(ActiveProviderKey) ?? ''),
        accepted: Number(wf.typedSearchAttributes.get(AcceptedCountKey) ?? 0),
        started: wf.startTime.toISOString().replace('T', ' ').slice(0, 19),
      });
      if (rows.length >= limit) break;
    }
    if (values.json) console.log(JSON.stringify(rows, null, 2));
    else if (!rows.length) console.log(`no campaigns${wanted ? ` with status ${wanted}` : ''}`);
    else
      console.log(
        table([
          ['campaign', 'status', 'active provider', 'accepted', 'started (UTC)'],
          ...rows.map((r) => [r.id, r.until ? `${r.status} until ${utcTime(r.until)}` : r.status, r.provider, String(r.accepted), r.started]),
        ]),
      );
    if (!values.json && hiddenDrills) console.log(`(${hiddenDrills} drill campaign(s) not shown; --drills shows them)`);
  },
};

const providers: Command = {
  name: 'campaign providers',
  summary: 'Give a running campaign a new provider order, or weights (takes effect at its next batch; ends a hold).',
  usage: '<id> <name,name,...> | <name=weight,name=weight,...>',
  details: [
    'Names in priority order (primary,backup): the first healthy provider takes every batch.',
    'name=weight entries (primary=70,backup=30): batches are split by weight. Either form replaces the plan.',
  ].join('\n'),
  args: ['id', 'providers'],
  async run(ctx, _values, [id, names]) {
    const choices = parseProvidersArg(names, providers);
    const accepted = await setCampaignProviders(await ctx.temporal(), id, choices);
    const weights = Object.fromEntries(choices.flatMap((c) => (typeof c === 'string' ? [] : [[c.name, c.weight]])));
    console.log(
      `campaign ${id} now sends ${choices.some((c) => typeof c !== 'string') ? `split by weight: ${providersText(accepted, weights)}` : `via ${accepted.join(' → ')}`}`,
    );
  },
};

/** `ses,postmark` (priority order) or `ses=70,postmark=30` (weights; the workflow checks them and names any bad one). */
export function parseProvidersArg(value: string, cmd: Command): ProviderChoice[] {
  const parts = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return parts.map((part, i) => {
    const eq = part.indexOf('=');
    if (eq < 0) return part;
    const weight = part.slice(eq + 1).trim();
    if (!/^-?\d+(\.\d+)?$/.test(weight)) throw new UsageError(`providers[${i}].weight: expected a whole number above 0, got '${clip(weight)}'`, helpText(cmd));
    return { name: part.slice(0, eq).trim(), weight: Number(weight) };
  });
}

/** `--seq 12` or `--seq 10-20`: an inclusive range of recipient numbers. */
export function parseSeqRange(value: string, cmd: Command): { fromSeq: number; toSeq: number } {
  const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(value);
  const from = m ? Number(m[1]) : NaN;
  const to = m ? Number(m[2] ?? m[1]) : NaN;
  if (!m || from < 1 || to < from || !Number.isSafeInteger(to)) {
    throw new UsageError(`--seq: expected a recipient number or a range like 10-20 (from <= to, starting at 1), got '${clip(value)}'`, helpText(cmd));
  }
  return { fromSeq: from, toSeq: to };
}

function rangesText(ranges: Array<[number, number]>, max = 8): string {
  const shown = ranges.slice(0, max).map(([a, b]) => (a === b ? `#${a}` : `#${a}-#${b}`));
  return shown.join(', ') + (ranges.length > max ? `, and ${ranges.length - max} more ranges` : '');
}

const held: Command = {
  name: 'campaign held',
  summary: 'Recipients held for review (outcome unknown: a lost reply under inFlight: hold, or a failed look-up): seq, provider, since, why.',
  usage: '<id> [--show-addresses] [--json]',
  details: [
    'Addresses are left out unless --show-addresses is given (the list may be shown to anyone on the team).',
    'Settle them with: mailover campaign release <id> --resend | --mark-sent [--seq a-b]',
  ].join('\n'),
  args: ['id'],
  options: { 'show-addresses': { type: 'boolean' }, json: { type: 'boolean' } },
  async run(ctx, values, [id]) {
    const store = await ctx.openStore();
    if (!(await store.getCampaign(id))) throw new Error(`campaign '${id}' not found in the store`);
    const rows = await store.listHeld(id);
    const show = values['show-addresses'] === true;
    const out = rows.map((r) => ({
      seq: r.seq,
      provider: r.provider,
      since: r.heldAt?.toISOString() ?? null,
      reason: r.reason,
      ...(show ? { address: r.email } : {}),
    }));
    if (values.json) {
      console.log(JSON.stringify(out, null, 2));
      return;
    }
    if (!rows.length) {
      console.log(`campaign ${id} has no recipients held for review`);
      return;
    }
    const header = ['seq', ...(show ? ['address'] : []), 'provider', 'held since (UTC)', 'why'];
    console.log(
      table([
        header,
        ...out.map((r) => [String(r.seq), ...(show ? [r.address ?? ''] : []), r.provider ?? '', (r.since ?? '').replace('T', ' ').slice(0, 19), r.reason]),
      ]),
    );
    console.log(`${rows.length} held. Settle them: mailover campaign release ${id} --resend (send again) or --mark-sent (they went out) [--seq a-b]`);
  },
};

const release: Command = {
  name: 'campaign release',
  summary: 'Settle recipients held for review: --resend (the campaign sends them again) or --mark-sent (they went out); recorded with who and when.',
  usage: '<id> --resend | --mark-sent [--seq a-b] [--by NAME]',
  details: [
    'Options:',
    '  --resend      back to pending: the running campaign sends them again (check the provider first: they may have gone out)',
    "  --mark-sent   settled as accepted (the provider's own log shows they went out)",
    '  --seq a-b     only held recipients in this range (default: all of them)',
    '  --by NAME     who releases them (default: this user@host), recorded on each row',
    "A campaign holding for review goes on once nothing is held. A finished campaign's held rows can be marked sent, not resent.",
  ].join('\n'),
  args: ['id'],
  options: { resend: { type: 'boolean' }, 'mark-sent': { type: 'boolean' }, seq: { type: 'string' }, by: { type: 'string' } },
  async run(ctx, values, [id]) {
    if (values.resend === values['mark-sent']) throw new UsageError('give exactly one of --resend and --mark-sent', helpText(release));
    const action = values.resend ? 'resend' : 'mark-sent';
    const range: { fromSeq?: number; toSeq?: number } = typeof values.seq === 'string' ? parseSeqRange(values.seq, release) : {};
    const by = typeof values.by === 'string' && values.by.trim() ? values.by.trim() : `${userInfo().username}@${hostname()}`;
    const client = await ctx.temporal();
    let running = false;
    try {
      running = (await client.workflow.getHandle(id).describe()).status.name === 'RUNNING';
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
    let released: number;
    let ranges: Array<[number, number]>;
    if (running) {
      ({ released, ranges } = await releaseHeldRows(client, id, { action, ...range, by }));
    } else {
      if (action === 'resend') {
        throw new Error(
          `campaign '${id}' is not running, so nothing would send them: --resend works on a running campaign (mark them sent with --mark-sent, or start a follow-up campaign for them)`,
        );
      }
      const store = await ctx.openStore();
      if (!(await store.getCampaign(id))) throw new Error(`campaign '${id}' not found`);
      ({ released, ranges } = await store.releaseHeld(id, { action, ...range, by }));
    }
    if (released === 0) {
      console.log(`campaign ${id}: no held recipients${range.fromSeq !== undefined ? ` in #${range.fromSeq}-#${range.toSeq}` : ''}; nothing released`);
      return;
    }
    console.log(
      `campaign ${id}: ${released} held recipient(s) ${action === 'resend' ? 'released to be sent again' : 'marked sent'} by ${by}: ${rangesText(ranges)}`,
    );
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
  held,
  release,
];
