/**
 * `npm run bench [-- --large | --n N] [-- --store postgres] [-- --latency-ms L] [-- --window W] [-- --only smtp|mailgun]`:
 * mailover against a raw send, side by side; `npm run bench -- --scale [--n N] [--workers K]`: the scale-out run (./scale.ts).
 *
 * The SMTP sinks and the Mailgun-compatible API (./mailgun-sink.ts) run in processes of their own,
 * the worker in its own, the Temporal dev server as the tests use it. Figures: raw and engine SMTP
 * messages per second and their ratio, raw (mailgun.js) and engine Mailgun recipients per second
 * and theirs, the worker's peak RSS, Temporal history events per 10,000 recipients (the campaign's
 * runs and the provider health workflow's events during it), and the failover switch time.
 * Audience import is timed apart. With `--store postgres` the SMTP campaign runs a second time on a
 * PostgreSQL ledger (a scratch database on MAILOVER_BENCH_PG_URL, created and dropped), compared
 * against the SQLite run. `--latency-ms L`: the ESPs answer each message or call L ms late.
 * `--window W`: the campaigns run with options.batchesInFlight = W. Last line: one JSON object with the figures.
 */
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import nodemailer from 'nodemailer';
import { startCampaign } from '../client';
import { table } from '../progress';
import { openStore } from '../store/open-store';
import type { AudienceRow, Store } from '../store/types';
import { compileTemplate } from '../template';
import { DEFAULT_BATCHES_IN_FLIGHT, type CampaignOptions, type CampaignResult } from '../../workflows/campaign-api';
import { providerHealthWorkflowId } from '../../workflows/provider-health-api';
import { parseBenchArgs, type BenchArgs } from './args';
import { startEsp, type Esp } from './esp';
import { allRunsEvents, campaignHistory } from './history';
import { createScratchDatabase } from './pg-scratch';
import { childrenNamed, cpuMsOf, load1m, rssSampler } from './proc-stats';
import { rawMailgun, RAW_MAILGUN_CALLS_IN_FLIGHT } from './raw-mailgun';
import { runScale } from './scale';
import { audience, FROM, log, startTemporal, TEMPLATE, workerFiles } from './stack';
import { WorkerProc, workerFlags } from './worker-proc';

const POOL = 5;
const BATCH = 1000;

interface RawRun {
  msgsPerS: number;
  /** CPU time of this (the sending) process per message, ms. */
  cpuMsPerMsg: number;
  /** CPU time of the SMTP sink's process per message, ms. */
  sinkCpuMsPerMsg: number;
}

async function rawBaseline(esp: Esp, rows: AudienceRow[]): Promise<RawRun> {
  const sinkBefore = cpuMsOf(esp.child.pid!);
  const t = compileTemplate(TEMPLATE);
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: esp.port, secure: false, pool: true, maxConnections: POOL, maxMessages: 1000 });
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  let next = 0;
  const worker = async () => {
    while (next < rows.length) {
      const row = rows[next++];
      const body = t.render(row.fields);
      await transport.sendMail({ from: FROM, to: row.email, ...body, messageId: `<raw.${next}@example.org>` });
    }
  };
  await Promise.all(Array.from({ length: POOL }, worker));
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  transport.close();
  return {
    msgsPerS: rows.length / seconds,
    cpuMsPerMsg: (cpu.user + cpu.system) / 1000 / rows.length,
    sinkCpuMsPerMsg: (cpuMsOf(esp.child.pid!) - sinkBefore) / rows.length,
  };
}

interface CampaignRun {
  msgsPerS: number;
  seconds: number;
  importSeconds: number;
  peakRssMb: number;
  /** CPU time of the worker process (all its threads) per message, ms. */
  workerCpuMsPerMsg: number;
  /** CPU time of the ESP process(es) and of the Temporal dev server per message, ms. */
  espCpuMsPerMsg: number;
  temporalCpuMsPerMsg: number;
  /** Events of every run of the campaign's workflow. */
  historyEvents: number;
  /** Events the providers' health workflows gained while the campaign ran. */
  healthEvents: number;
  result: CampaignResult;
}

interface RunContext {
  env: TestWorkflowEnvironment;
  store: Store;
  workerEnv: NodeJS.ProcessEnv;
  taskQueue: string;
  options?: CampaignOptions;
}

async function runCampaign(ctx: RunContext, id: string, providers: string[], rows: AudienceRow[], esps: Esp[]): Promise<CampaignRun> {
  const { env, store, workerEnv, taskQueue } = ctx;
  const importStarted = performance.now();
  // transactional: the engine run renders exactly what the raw baseline sends (no unsubscribe link to sign).
  await store.createCampaign({ id, from: FROM, template: TEMPLATE, providers, batchSize: BATCH, transactional: true });
  for (let i = 0; i < rows.length; i += 10_000) await store.importAudience(id, rows.slice(i, i + 10_000));
  const importSeconds = (performance.now() - importStarted) / 1000;
  const healthIds = providers.map((p) => providerHealthWorkflowId(taskQueue, p));
  const healthEventsOf = async () => (await Promise.all(healthIds.map((h) => allRunsEvents(env.client, h)))).reduce((a, b) => a + b, 0);
  const healthBefore = await healthEventsOf();
  const worker = await WorkerProc.start(workerEnv);
  const rss = rssSampler(worker.pid);
  try {
    const started = performance.now();
    const cpuBefore = cpuMsOf(worker.pid);
    const temporalPids = childrenNamed('temporal');
    const cpuOf = (pids: number[]) => pids.reduce((sum, pid) => sum + cpuMsOf(pid), 0);
    const espBefore = cpuOf(esps.map((e) => e.child.pid!));
    const temporalBefore = cpuOf(temporalPids);
    const handle = await startCampaign(env.client, {
      campaignId: id,
      providers,
      batchSize: BATCH,
      total: rows.length,
      taskQueue,
      ...(ctx.options ? { options: ctx.options } : {}),
    });
    const result = await handle.result();
    const seconds = (performance.now() - started) / 1000;
    const workerCpuMsPerMsg = (cpuMsOf(worker.pid) - cpuBefore) / rows.length;
    const espCpuMsPerMsg = (cpuOf(esps.map((e) => e.child.pid!)) - espBefore) / rows.length;
    const temporalCpuMsPerMsg = (cpuOf(temporalPids) - temporalBefore) / rows.length;
    return {
      msgsPerS: rows.length / seconds,
      seconds,
      importSeconds,
      peakRssMb: rss.stop(),
      workerCpuMsPerMsg,
      espCpuMsPerMsg,
      temporalCpuMsPerMsg,
      historyEvents: (await campaignHistory(env.client, id, handle.firstExecutionRunId)).events,
      healthEvents: (await healthEventsOf()) - healthBefore,
      result,
    };
  } finally {
    rss.stop();
    await worker.stop();
  }
}

const round3 = (x: number) => Number(x.toFixed(3));
const per10k = (events: number, n: number) => Math.round((events * 10_000) / n);

/** The SMTP runs: raw nodemailer twice, the engine on SQLite (FULL, then NORMAL), on PostgreSQL if asked, and the failover campaign. */
async function smtpRuns(ctx: RunContext, args: BenchArgs, smtpA: Esp, smtpB: Esp, pgCtx: RunContext | undefined) {
  const { n } = args;
  log('raw baseline: nodemailer pool → smtp-a');
  const rawFirst = await rawBaseline(smtpA, audience(n, 'raw'));
  log(`raw: ${rawFirst.msgsPerS.toFixed(0)} msg/s`);
  log('engine: campaign via smtp-a');
  const smtp = await runCampaign(ctx, 'bench-smtp', ['smtp-a'], audience(n, 'smtp'), [smtpA]);
  log(`engine smtp: ${smtp.msgsPerS.toFixed(0)} msg/s`);
  // The same campaign on a PostgreSQL ledger, right after the SQLite one (the machine's load drifts).
  let smtpPg: CampaignRun | undefined;
  if (pgCtx) {
    log('engine: campaign via smtp-a, PostgreSQL ledger');
    smtpPg = await runCampaign(pgCtx, 'bench-smtp-pg', ['smtp-a'], audience(n, 'smtppg'), [smtpA]);
    log(`engine smtp (PostgreSQL): ${smtpPg.msgsPerS.toFixed(0)} msg/s`);
  }
  // The ledger's durability costs: the same campaign with SQLite synchronous=NORMAL (the worker's
  // explicit opt-out; FULL, the default, syncs the WAL on every commit).
  log('engine: campaign via smtp-a, ledger synchronous=NORMAL');
  const normalCtx = { ...ctx, workerEnv: { ...ctx.workerEnv, MAILOVER_SQLITE_SYNCHRONOUS: 'normal' } };
  const smtpNormal = await runCampaign(normalCtx, 'bench-smtp-normal', ['smtp-a'], audience(n, 'smtpn'), [smtpA]);
  log(`engine smtp (synchronous=NORMAL): ${smtpNormal.msgsPerS.toFixed(0)} msg/s`);
  // The raw baseline again, after the engine runs: the better of the two is the one compared
  // against (this machine's throughput drifts between runs; the ratio stays conservative).
  const rawAgain = await rawBaseline(smtpA, audience(n, 'raw2'));
  log(`raw again: ${rawAgain.msgsPerS.toFixed(0)} msg/s`);
  const raw = Math.max(rawFirst.msgsPerS, rawAgain.msgsPerS);
  log('failover: smtp-a fails half-way, smtp-b takes over');
  const failN = Math.min(n, 10_000);
  const before = (await smtpA.stats()).accepted;
  smtpA.send({ cmd: 'failAfter', n: before + Math.floor(failN / 2) });
  const fo = await runCampaign(ctx, 'bench-failover', ['smtp-a', 'smtp-b'], audience(failN, 'fo'), [smtpA, smtpB]);
  const a = await smtpA.stats();
  const b = await smtpB.stats();
  const switchMs = a.failingSince !== undefined && b.firstAcceptAt !== undefined ? b.firstAcceptAt - a.failingSince : NaN;
  const figures = {
    raw_smtp_msgs_per_s: Math.round(raw),
    engine_smtp_msgs_per_s: Math.round(smtp.msgsPerS),
    ratio_smtp: round3(smtp.msgsPerS / raw),
    engine_smtp_sync_normal_msgs_per_s: Math.round(smtpNormal.msgsPerS),
    sync_full_cost_pct: Number(((1 - smtp.msgsPerS / smtpNormal.msgsPerS) * 100).toFixed(1)),
    worker_cpu_ms_per_msg_smtp_sync_normal: round3(smtpNormal.workerCpuMsPerMsg),
    // The campaign's own events (every run), as in earlier rounds; _smtp adds the health workflow's.
    history_events_per_10k: per10k(smtp.historyEvents, n),
    history_events_per_10k_smtp: per10k(smtp.historyEvents + smtp.healthEvents, n),
    health_events_per_10k_smtp: per10k(smtp.healthEvents, n),
    failover_switch_ms: Math.round(switchMs),
    // CPU per message: less sensitive than msg/s to other load on the machine.
    raw_cpu_ms_per_msg: round3(Math.min(rawFirst.cpuMsPerMsg, rawAgain.cpuMsPerMsg)),
    worker_cpu_ms_per_msg_smtp: round3(smtp.workerCpuMsPerMsg),
    sink_cpu_ms_per_msg_raw: round3(Math.min(rawFirst.sinkCpuMsPerMsg, rawAgain.sinkCpuMsPerMsg)),
    sink_cpu_ms_per_msg_smtp: round3(smtp.espCpuMsPerMsg),
    temporal_cpu_ms_per_msg_smtp: round3(smtp.temporalCpuMsPerMsg),
    ...(smtpPg
      ? {
          pg_smtp_msgs_per_s: Math.round(smtpPg.msgsPerS),
          ratio_pg_sqlite: round3(smtpPg.msgsPerS / smtp.msgsPerS),
          worker_cpu_ms_per_msg_smtp_pg: round3(smtpPg.workerCpuMsPerMsg),
        }
      : {}),
  };
  const goal = (ok: boolean) => (ok ? 'met' : 'NOT MET');
  const rows = [
    ['raw SMTP (nodemailer pool, no Temporal, no ledger; best of 2)', `${figures.raw_smtp_msgs_per_s} msg/s`, '', ''],
    ['engine SMTP (campaign end to end; ledger synchronous=FULL, the default)', `${figures.engine_smtp_msgs_per_s} msg/s`, '', ''],
    [
      'engine SMTP, ledger synchronous=NORMAL (explicit opt-out); cost of FULL',
      `${figures.engine_smtp_sync_normal_msgs_per_s} msg/s; ${figures.sync_full_cost_pct} %`,
      '',
      '',
    ],
    ['ratio engine / raw (SMTP)', String(figures.ratio_smtp), '≥ 0.9', goal(figures.ratio_smtp >= 0.9)],
    [
      'history events per 10,000 recipients, SMTP: campaign; with health',
      `${figures.history_events_per_10k}; ${figures.history_events_per_10k_smtp}`,
      `≤ 100 at batches of ${BATCH}`,
      goal(figures.history_events_per_10k_smtp <= 100),
    ],
    [`failover switch (N=${failN}, primary fails half-way)`, `${figures.failover_switch_ms} ms`, '< 2,000 ms', goal(figures.failover_switch_ms < 2000)],
    ['CPU per message: raw sender / engine worker (SMTP)', `${figures.raw_cpu_ms_per_msg} / ${figures.worker_cpu_ms_per_msg_smtp} ms`, '', ''],
    [
      'CPU per message, SMTP sink: raw run / engine run; Temporal server in the engine run',
      `${figures.sink_cpu_ms_per_msg_raw} / ${figures.sink_cpu_ms_per_msg_smtp}; ${figures.temporal_cpu_ms_per_msg_smtp} ms`,
      '',
      '',
    ],
    ['audience import (SQLite)', `${(n / smtp.importSeconds).toFixed(0)} rows/s`, '', ''],
    ...(smtpPg
      ? [
          [
            'engine SMTP, PostgreSQL ledger; ratio PostgreSQL / SQLite',
            `${Math.round(smtpPg.msgsPerS)} msg/s; ${round3(smtpPg.msgsPerS / smtp.msgsPerS)}`,
            '≥ 0.8',
            goal(smtpPg.msgsPerS / smtp.msgsPerS >= 0.8),
          ],
        ]
      : []),
  ];
  const summary = `smtp ${smtp.seconds.toFixed(1)} s (${smtp.result.runs} run(s), ${smtp.historyEvents} history events); failover campaign accepted ${JSON.stringify(fo.result.acceptedByProvider)}`;
  return { figures, rows, summary, peakRssMb: smtp.peakRssMb };
}

/** The Mailgun runs: raw mailgun.js calls, the engine's campaign, raw again (best of 2). */
async function mailgunRuns(ctx: RunContext, args: BenchArgs, mailgun: Esp) {
  const { n } = args;
  const target = { url: mailgun.url, apiKey: String((mailgun.config as { apiKey?: unknown }).apiKey), domain: 'mg.bench.test' };
  log(`raw baseline: mailgun.js, calls of 1,000, ${RAW_MAILGUN_CALLS_IN_FLIGHT} in flight → mailgun`);
  const rawFirst = await rawMailgun(target, TEMPLATE, FROM, audience(n, 'rawmg'));
  log(`raw mailgun: ${rawFirst.rcptPerS.toFixed(0)} rcpt/s`);
  log('engine: campaign via mailgun');
  const mg = await runCampaign(ctx, 'bench-mailgun', ['mailgun'], audience(n, 'mg'), [mailgun]);
  log(`engine mailgun: ${mg.msgsPerS.toFixed(0)} rcpt/s`);
  const rawAgain = await rawMailgun(target, TEMPLATE, FROM, audience(n, 'rawmg2'));
  log(`raw mailgun again: ${rawAgain.rcptPerS.toFixed(0)} rcpt/s`);
  const raw = Math.max(rawFirst.rcptPerS, rawAgain.rcptPerS);
  const tally = await mailgun.tally('mg', n);
  const figures = {
    raw_mailgun_rcpt_per_s: Math.round(raw),
    engine_mailgun_msgs_per_s: Math.round(mg.msgsPerS),
    ratio_mailgun: round3(mg.msgsPerS / raw),
    history_events_per_10k_mailgun: per10k(mg.historyEvents + mg.healthEvents, n),
    health_events_per_10k_mailgun: per10k(mg.healthEvents, n),
    raw_mailgun_cpu_ms_per_rcpt: round3(Math.min(rawFirst.cpuMsPerRcpt, rawAgain.cpuMsPerRcpt)),
    worker_cpu_ms_per_msg_mailgun: round3(mg.workerCpuMsPerMsg),
    mailgun_server_cpu_ms_per_msg: round3(mg.espCpuMsPerMsg),
    temporal_cpu_ms_per_msg_mailgun: round3(mg.temporalCpuMsPerMsg),
    mailgun_sink_lost: tally.lost,
    mailgun_sink_duplicated: tally.duplicated,
  };
  const goal = (ok: boolean) => (ok ? 'met' : 'NOT MET');
  const rows = [
    [`raw Mailgun (mailgun.js, calls of 1,000, ${RAW_MAILGUN_CALLS_IN_FLIGHT} in flight; best of 2)`, `${figures.raw_mailgun_rcpt_per_s} rcpt/s`, '', ''],
    ['engine Mailgun (campaign end to end, batches of 1,000)', `${figures.engine_mailgun_msgs_per_s} rcpt/s`, '', ''],
    ['ratio engine / raw (Mailgun)', String(figures.ratio_mailgun), '≥ 0.4', goal(figures.ratio_mailgun >= 0.4)],
    [
      'history events per 10,000 recipients, Mailgun: campaign with health',
      String(figures.history_events_per_10k_mailgun),
      `≤ 100 at batches of ${BATCH}`,
      goal(figures.history_events_per_10k_mailgun <= 100),
    ],
    [
      'CPU per recipient: raw mailgun.js sender / engine worker (Mailgun)',
      `${figures.raw_mailgun_cpu_ms_per_rcpt} / ${figures.worker_cpu_ms_per_msg_mailgun} ms`,
      '',
      '',
    ],
    [
      'Mailgun sink: recipients lost / duplicated (engine campaign)',
      `${tally.lost} / ${tally.duplicated}`,
      '0 / 0',
      goal(tally.lost === 0 && tally.duplicated === 0),
    ],
  ];
  return {
    figures,
    rows,
    summary: `mailgun ${mg.seconds.toFixed(1)} s (${mg.result.runs} run(s), ${mg.historyEvents} history events)`,
    peakRssMb: mg.peakRssMb,
  };
}

async function sideBySide(args: BenchArgs): Promise<void> {
  const { n } = args;
  const loadStart = load1m();
  const dir = mkdtempSync(join(tmpdir(), 'mailover-bench-'));
  const window = args.window ?? DEFAULT_BATCHES_IN_FLIGHT;
  log(
    `N = ${n}; latency ${args.latencyMs} ms; window ${window}${args.window === undefined ? ' (the default)' : ''}; starting the Temporal dev server and the ESP processes`,
  );
  const eager = process.env.MAILOVER_BENCH_EAGER_ACTIVITIES !== '0';
  const env = await startTemporal(eager);
  const smtp = args.only !== 'mailgun';
  const mailgunToo = args.only !== 'smtp';
  const smtpA = smtp ? await startEsp('smtp', 'smtp-a', args.latencyMs) : undefined;
  const smtpB = smtp ? await startEsp('smtp', 'smtp-b', args.latencyMs) : undefined;
  const mailgun = mailgunToo ? await startEsp('mailgun-sink', 'mailgun', args.latencyMs) : undefined;
  const store = await openStore({ databaseUrl: '', sqlitePath: join(dir, 'bench.db') });
  const pg = smtp && args.store === 'postgres' ? await createScratchDatabase() : undefined;
  const pgStore = pg ? await openStore({ databaseUrl: pg.url }) : undefined;
  try {
    const taskQueue = 'mailover-bench';
    const defs = [
      ...(smtpA && smtpB
        ? [
            { ...smtpA.config, pool: { maxConnections: POOL } },
            { ...smtpB.config, pool: { maxConnections: POOL } },
          ]
        : []),
      ...(mailgun ? [mailgun.config] : []),
    ];
    const workerEnv = { ...(await workerFiles(dir, env, taskQueue, defs)), DATABASE_URL: '', MAILOVER_DB: join(dir, 'bench.db') };
    const ctx: RunContext = { env, store, workerEnv, taskQueue, ...(args.window !== undefined ? { options: { batchesInFlight: args.window } } : {}) };
    const pgCtx = pg && pgStore ? { ...ctx, store: pgStore, workerEnv: { ...workerEnv, DATABASE_URL: pg.url } } : undefined;
    const s = smtpA && smtpB ? await smtpRuns(ctx, args, smtpA, smtpB, pgCtx) : undefined;
    const m = mailgun ? await mailgunRuns(ctx, args, mailgun) : undefined;
    const figures = {
      ...s?.figures,
      ...m?.figures,
      ...(s?.figures && m?.figures ? { mailgun_over_smtp: Number((m.figures.engine_mailgun_msgs_per_s / s.figures.engine_smtp_msgs_per_s).toFixed(2)) } : {}),
      worker_peak_rss_mb: Math.round(Math.max(s?.peakRssMb ?? 0, m?.peakRssMb ?? 0)),
      latency_ms: args.latencyMs,
      window,
      load_1m_start: loadStart,
      load_1m_end: load1m(),
      eager_activities: eager,
      worker_flags: workerFlags().join(' '),
      n,
      date: new Date().toISOString().slice(0, 16) + 'Z',
    };
    const goal = (ok: boolean) => (ok ? 'met' : 'NOT MET');
    console.log(
      table([
        ['figure', 'value', 'goal', ''],
        ...(s?.rows ?? []),
        ...(m?.rows ?? []),
        ['worker peak RSS', `${figures.worker_peak_rss_mb} MB`, '< 300 MB', goal(figures.worker_peak_rss_mb < 300)],
        ['ESP latency; window (batches in flight)', `${args.latencyMs} ms; ${window}`, '', ''],
      ]),
    );
    console.log(`engine runs: ${[s?.summary, m?.summary].filter(Boolean).join('; ')}`);
    console.log(JSON.stringify(figures));
  } finally {
    await store.close();
    await pgStore?.close();
    await pg?.drop();
    await Promise.all([smtpA?.stop(), smtpB?.stop(), mailgun?.stop()]);
    await env.teardown();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const args = parseBenchArgs(process.argv.slice(2));
  // No shutdown signals for the SDK's runtime: the scale-out run handles SIGINT and SIGTERM itself.
  Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });
  if (args.scale) await runScale(args);
  else await sideBySide(args);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
