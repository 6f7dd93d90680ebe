/**
 * Every recipient's fate, one command away: `campaign recipients`, `recipient`, `campaign retry`
 * and `campaign report`. They read the store (the workers' DATABASE_URL or SQLite file); retry
 * and report also ask Temporal (is the first campaign still running; its provider switches).
 */
import { once } from 'events';
import { writeFileSync } from 'fs';
import { CAMPAIGN_ID } from '../campaign-definition';
import { buildCampaignReport, reportHtml, reportText } from '../campaign-report';
import { retryCampaign } from '../campaign-retry';
import {
  addressHistoryJson,
  addressHistoryLines,
  OUTCOME_STATES,
  outcomeCsvHeader,
  outcomeCsvLine,
  outcomeJson,
  outcomeTextCells,
  streamOutcomes,
  type OutcomeFilter,
} from '../ledger-views';
import { table } from '../progress';
import { RETRY_KINDS, type RecipientState, type RetryKind } from '../store/types';
import { campaignState } from './campaign-commands';
import { helpText, type Command, type Values } from './command';
import { UsageError } from './usage';

/**
 * Stdout for a stream of rows: each write waits when the pipe is full (a million rows never pile up
 * in memory), and once the reader has gone (`| head`) the rest is not written: the command ends quietly.
 */
class RowOutput {
  #closed = false;

  constructor() {
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
      this.#closed = true;
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  async write(chunk: string): Promise<void> {
    if (this.#closed || process.stdout.write(chunk)) return;
    try {
      await once(process.stdout, 'drain');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EPIPE') throw err;
      this.#closed = true;
    }
  }
}

function positiveInt(values: Values, name: string, cmd: Command, min = 1): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || !/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`--${name}: expected a whole number >= ${min}, got '${String(v)}'`, helpText(cmd));
  }
  return n;
}

const TEXT_LIMIT = 100;

const recipients: Command = {
  name: 'campaign recipients',
  summary:
    'Every recipient of a campaign: seq, address, status, provider, provider message id, last answer, last ESP event (a table; --csv or --json stream every row).',
  usage: `<id> [--status ${OUTCOME_STATES.join('|')}[,...]] [--provider NAME] [--after SEQ] [--limit N] [--json | --csv]`,
  details: [
    'Options:',
    '  --status S[,S]    only rows in these states',
    '  --provider NAME   only rows sent (or tried) through this provider',
    '  --after SEQ       rows after this recipient number (the next page starts after the last one shown)',
    `  --limit N         at most N rows (default ${TEXT_LIMIT} for the table, every row for --csv and --json)`,
    '  --csv             CSV with a header: seq,email,status,provider,provider_message_id,answer,updated_at,last_event,last_event_at,last_event_reason',
    '  --json            a JSON array, one object per row',
    'Rows are read page by page: --csv and --json stream a campaign of any size in flat memory.',
    'Last event: what the ESP reported after the send (delivered, bounced, soft-bounced, complained, unsubscribed), with its time (UTC).',
  ].join('\n'),
  args: ['id'],
  options: {
    status: { type: 'string' },
    provider: { type: 'string' },
    after: { type: 'string' },
    limit: { type: 'string' },
    json: { type: 'boolean' },
    csv: { type: 'boolean' },
  },
  async run(ctx, values, [id]) {
    if (values.json && values.csv) throw new UsageError('--json and --csv cannot go together', helpText(recipients));
    const filter: OutcomeFilter = {};
    if (values.status !== undefined) {
      const states = String(values.status)
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      const bad = states.find((s) => !OUTCOME_STATES.includes(s as RecipientState));
      if (bad !== undefined || !states.length)
        throw new UsageError(`--status: expected one or more of ${OUTCOME_STATES.join(', ')}, got '${bad ?? String(values.status)}'`, helpText(recipients));
      filter.states = states as RecipientState[];
    }
    if (typeof values.provider === 'string') filter.provider = values.provider;
    const after = positiveInt(values, 'after', recipients, 0) ?? 0;
    const limit = positiveInt(values, 'limit', recipients) ?? (values.json || values.csv ? Infinity : TEXT_LIMIT);
    const store = await ctx.openStore();
    if (!(await store.getCampaign(id))) throw new Error(`campaign '${id}' not found in the store`);
    const rows = streamOutcomes(
      { pageOutcomes: (cid, page) => store.pageOutcomes(cid, { ...page, afterSeq: Math.max(after, page.afterSeq ?? 0) }) },
      id,
      filter,
    );
    let n = 0;
    if (values.csv || values.json) {
      const out = new RowOutput();
      await out.write(values.csv ? `${outcomeCsvHeader()}\n` : '[');
      for await (const o of rows) {
        if (n >= limit || out.closed) break;
        await out.write(values.csv ? `${outcomeCsvLine(o)}\n` : `${n ? ',' : ''}\n${JSON.stringify(outcomeJson(o))}`);
        n++;
      }
      if (values.json) await out.write(n ? '\n]\n' : ']\n');
      return;
    }
    const shown: string[][] = [];
    let more = false;
    for await (const o of rows) {
      if (shown.length >= limit) {
        more = true;
        break;
      }
      shown.push(outcomeTextCells(o));
    }
    if (!shown.length) {
      console.log(
        `campaign ${id}: no recipients${filter.states ? ` in state ${filter.states.join(' or ')}` : ''}${filter.provider ? ` via ${filter.provider}` : ''}${after ? ` after #${after}` : ''}`,
      );
      return;
    }
    console.log(table([['#', 'address', 'status', 'provider', 'message id', 'last answer', 'last ESP event (UTC)'], ...shown]));
    if (more) console.log(`more rows: the same command with --after ${shown[shown.length - 1][0]}`);
  },
};

const recipient: Command = {
  name: 'recipient',
  summary:
    'One address across every campaign: which campaigns reached it, through which provider, with which outcome and ESP events, and whether (why, since when) it is suppressed.',
  usage: '<address> [--json]',
  args: ['address'],
  options: { json: { type: 'boolean' } },
  async run(ctx, values, [address]) {
    const store = await ctx.openStore();
    const h = await store.addressHistory(address);
    if (values.json) console.log(JSON.stringify(addressHistoryJson(h), null, 2));
    else for (const line of addressHistoryLines(h)) console.log(line);
  },
};

const retry: Command = {
  name: 'campaign retry',
  summary:
    'A follow-up campaign, linked to a finished one, holding only its deferred, soft-rejected and/or held recipients (never one accepted, suppressed since, or hard-bounced).',
  usage: '<id> [--deferred] [--rejected-soft] [--held] [--as NEW-ID]',
  details: [
    'Options (none: all three kinds):',
    '  --deferred        rows the provider still had deferred ("later") when the campaign ended',
    '  --rejected-soft   rejected rows that were not a hard bounce (a soft bounce after the deferral window, a refusal',
    '                    that suppressed nobody); rows whose message could not be built are left out',
    '  --held            rows held for review (outcome unknown)',
    "  --as NEW-ID       the follow-up's id (default <id>-retry-<n>)",
    "Left out always: addresses suppressed since (everywhere, or for the campaign's list), addresses that hard-bounced",
    '(a bounce event from any campaign), and rows their ESP reported delivered, complained or unsubscribed.',
    'Refused while the first campaign is still running. The follow-up has the same sender, template, providers and',
    'batch size; `campaign status` and the Web UI summary show the link.',
  ].join('\n'),
  args: ['id'],
  options: { deferred: { type: 'boolean' }, 'rejected-soft': { type: 'boolean' }, held: { type: 'boolean' }, as: { type: 'string' } },
  async run(ctx, values, [id]) {
    const kinds = RETRY_KINDS.filter((k) => values[k]) as RetryKind[];
    const newId = values.as;
    if (newId !== undefined && (typeof newId !== 'string' || !CAMPAIGN_ID.test(newId))) {
      throw new UsageError(`--as: expected 1-128 letters, digits, '.', '_' or '-' (starting with a letter or digit), got '${String(newId)}'`, helpText(retry));
    }
    const store = await ctx.openStore();
    const client = await ctx.temporal();
    const r = await retryCampaign({ client, store, campaignId: id, kinds, newId, taskQueue: ctx.settings.taskQueue });
    const taken = RETRY_KINDS.filter((k) => !kinds.length || kinds.includes(k)).map((k) => `${r.taken[k]} ${k}`);
    console.log(
      `campaign ${r.campaignId} (retry of ${id}): ${r.inserted} recipients (${taken.join(', ')}); ${r.leftOut} left out (suppressed since, hard-bounced, reported delivered or taken by an earlier retry)`,
    );
    console.log(`started campaign ${r.workflowId} (workflow id ${r.workflowId}, run ${r.runId})`);
    console.log(`Web UI: ${ctx.webUiLink(r.workflowId)}`);
  },
};

const report: Command = {
  name: 'campaign report',
  summary:
    'The outcome of a campaign as a person likes to read it: totals, a table per provider, rates, switches; --html writes a page with a chart of sends per minute per provider.',
  usage: '<id> [--html FILE]',
  details: [
    'Figures from the store: outcomes per provider, ESP events (delivered, bounced, complained, unsubscribed), sends per minute',
    "(by when each accepted row was handed to its provider). Switches from the campaign's workflow (shown as unknown when",
    'Temporal cannot be reached or no longer has it).',
    'Rates: rejected at send = rejected / (accepted + rejected); bounced after acceptance = rows with a bounce event / accepted;',
    'complaints = rows with a complaint / accepted.',
  ].join('\n'),
  args: ['id'],
  options: { html: { type: 'string' } },
  async run(ctx, values, [id]) {
    const store = await ctx.openStore();
    if (!(await store.getCampaign(id))) throw new Error(`campaign '${id}' not found in the store`);
    let switches: Parameters<typeof buildCampaignReport>[2];
    try {
      switches = { switches: (await campaignState(await ctx.temporal(), id)).switches };
    } catch (err) {
      switches = { unavailable: (err as Error).message };
    }
    const r = await buildCampaignReport(store, id, switches);
    console.log(reportText(r));
    if (typeof values.html === 'string') {
      try {
        writeFileSync(values.html, reportHtml(r));
      } catch (err) {
        throw new Error(`--html ${values.html}: cannot write it (${(err as Error).message})`, { cause: err });
      }
      console.log(`report written to ${values.html}`);
    }
  },
};

export const recipientCommands: Command[] = [recipients, retry, report, recipient];
