/**
 * `npm run bench [-- --large | --n N] [-- --store postgres]`: mailover against a raw send, side by side.
 *
 * The SMTP sinks and the Mailgun-compatible API run in processes of their own, the worker in
 * its own, the Temporal dev server as the tests use it. Figures: raw and engine SMTP messages
 * per second and their ratio, the Mailgun batch path, the worker's peak RSS, Temporal history
 * events per 10,000 recipients, and the failover switch time. Audience import is timed apart.
 * With `--store postgres` the SMTP campaign runs a second time on a PostgreSQL ledger (a scratch
 * database on MAILOVER_BENCH_PG_URL, created and dropped), compared against the SQLite run.
 * Last line: one JSON object with the figures.
 */
import { fork, spawn, type ChildProcess } from 'child_process';
import { Client } from 'pg';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { loadavg, tmpdir } from 'os';
import { join } from 'path';
import { bundleWorkflowCode, DefaultLogger, Runtime } from '@temporalio/worker';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import nodemailer from 'nodemailer';
import { stringify } from 'yaml';
import { startCampaign } from '../client';
import { dataConverterFromEnv } from '../codec/data-converter';
import { withSecretsAsEnvReferences } from '../providers/modules';
import type { ProviderDefinitionBase } from '../providers/provider-module';
import { table } from '../progress';
import { openStore } from '../store/open-store';
import type { AudienceRow, Store } from '../store/types';
import { compileTemplate } from '../template';
import { ensureTemporalCli } from '../temporal-cli';
import { workflowsPath } from '../worker';
import { campaignSearchAttributes } from '../../workflows/search-attributes';
import type { CampaignResult } from '../../workflows/campaign-api';

const TEMPLATE = {
  subject: 'Hello {{first_name}}, your {{city}} news',
  text: 'Hi {{first_name}},\n\nHere is what changed in {{city}}.\n',
  html: '<p>Hi {{first_name}},</p><p>Here is what changed in <b>{{city}}</b>.</p>',
};
const FROM = 'Bench <bench@example.org>';
const POOL = 5;
const BATCH = 1000;

/** The PostgreSQL server `--store postgres` creates its scratch database on (any database name: it connects to `postgres`). */
const PG_URL = process.env.MAILOVER_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** A scratch database for the PostgreSQL run: its URL, and how to drop it. */
async function createScratchDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const onAdmin = async (text: string) => {
    const admin = new URL(PG_URL);
    admin.pathname = '/postgres';
    const client = new Client({ connectionString: admin.toString() });
    await client.connect();
    try {
      await client.query(text);
    } finally {
      await client.end();
    }
  };
  const name = `mailover_bench_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  await onAdmin(`create database ${name}`);
  const url = new URL(PG_URL);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => onAdmin(`drop database if exists ${name} with (force)`) };
}

interface Esp {
  child: ChildProcess;
  port: number;
  url: string;
  /** The provider definition that sends through it (fake secrets as values). */
  config: ProviderDefinitionBase;
  stats(): Promise<{ accepted: number; firstAcceptAt?: number; failingSince?: number }>;
  send(msg: object): void;
  stop(): Promise<void>;
}

/** The emulator of a provider kind in a process of its own (./esp-process.ts). */
async function startEsp(kind: string, name: string): Promise<Esp> {
  type Ready = { port: number; url: string; config: ProviderDefinitionBase };
  const child = fork(join(__dirname, 'esp-process.js'), [kind, name], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const ready = await new Promise<Ready>((res, rej) => {
    child.once('message', (m: { ready?: Ready }) => (m.ready ? res(m.ready) : rej(new Error('unexpected message'))));
    child.once('exit', (code) => rej(new Error(`${name} exited with ${code}`)));
  });
  return {
    child,
    ...ready,
    send: (msg) => child.send(msg),
    stats: () =>
      new Promise((res) => {
        child.once('message', (m: { stats: { accepted: number; firstAcceptAt?: number; failingSince?: number } }) => res(m.stats));
        child.send({ cmd: 'stats' });
      }),
    stop: () =>
      new Promise((res) => {
        if (child.exitCode !== null) return res();
        child.once('exit', () => res());
        child.send({ cmd: 'stop' });
      }),
  };
}

function audience(n: number, tag: string): AudienceRow[] {
  const cities = ['Lisbon', 'Oslo', 'Austin', 'Kyoto', 'Lagos'];
  return Array.from({ length: n }, (_, i) => ({
    email: `r${i + 1}.${tag}@example.com`,
    fields: { first_name: `Reader${i + 1}`, city: cities[i % cities.length] },
  }));
}

/** CPU time (user + system, all threads) a process has used so far, in ms, from /proc. */
function cpuMsOf(pid: number): number {
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}
/** Pids of this process's children whose command name is `name` (the Temporal dev server). */
function childrenNamed(name: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid && comm === name) pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

/** Linux USER_HZ; 100 on every common configuration. */
const CLOCK_TICKS = 100;

/** Peak RSS of a process, sampled from /proc every 100 ms. */
function rssSampler(pid: number): { stop(): number } {
  let peak = 0;
  const sample = () => {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) peak = Math.max(peak, Number(m[1]) / 1024);
    } catch {
      // process gone
    }
  };
  const timer = setInterval(sample, 100);
  sample();
  return {
    stop() {
      clearInterval(timer);
      sample();
      return peak;
    },
  };
}

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

class WorkerProc {
  private constructor(readonly child: ChildProcess) {}
  static async start(env: NodeJS.ProcessEnv): Promise<WorkerProc> {
    const profile = process.env.MAILOVER_BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.MAILOVER_BENCH_PROFILE}`] : [];
    // e.g. MAILOVER_BENCH_WORKER_FLAGS=--max-old-space-size=128: is the worker's RSS a leak or a lazy heap?
    const flags = (process.env.MAILOVER_BENCH_WORKER_FLAGS ?? '').split(/\s+/).filter(Boolean);
    const child = spawn(process.execPath, [...profile, ...flags, join(__dirname, '..', 'worker-main.js')], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((res, rej) => {
      let out = '';
      child.stdout!.on('data', (d) => {
        out += d;
        if (out.includes('mailover worker ready')) res();
      });
      child.once('exit', (code) => rej(new Error(`worker exited with ${code}: ${out}`)));
    });
    return new WorkerProc(child);
  }
  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    await exited;
  }
}

async function historyEvents(env: TestWorkflowEnvironment, workflowId: string, firstRunId: string): Promise<number> {
  let total = 0;
  let runId: string | undefined = firstRunId;
  while (runId) {
    const history: Awaited<ReturnType<ReturnType<typeof env.client.workflow.getHandle>['fetchHistory']>> = await env.client.workflow
      .getHandle(workflowId, runId)
      .fetchHistory();
    const events: NonNullable<typeof history.events> = history.events ?? [];
    total += events.length;
    runId = events[events.length - 1]?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
  }
  return total;
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
  historyEvents: number;
  result: CampaignResult;
}

async function runCampaign(
  env: TestWorkflowEnvironment,
  store: Store,
  workerEnv: NodeJS.ProcessEnv,
  taskQueue: string,
  id: string,
  providers: string[],
  rows: AudienceRow[],
  esps: Esp[],
): Promise<CampaignRun> {
  const importStarted = performance.now();
  // transactional: the engine run renders exactly what the raw baseline sends (no unsubscribe link to sign).
  await store.createCampaign({ id, from: FROM, template: TEMPLATE, providers, batchSize: BATCH, transactional: true });
  for (let i = 0; i < rows.length; i += 10_000) await store.importAudience(id, rows.slice(i, i + 10_000));
  const importSeconds = (performance.now() - importStarted) / 1000;
  const worker = await WorkerProc.start(workerEnv);
  const rss = rssSampler(worker.child.pid!);
  try {
    const started = performance.now();
    const cpuBefore = cpuMsOf(worker.child.pid!);
    const temporalPids = childrenNamed('temporal');
    const cpuOf = (pids: number[]) => pids.reduce((sum, pid) => sum + cpuMsOf(pid), 0);
    const espBefore = cpuOf(esps.map((e) => e.child.pid!));
    const temporalBefore = cpuOf(temporalPids);
    const handle = await startCampaign(env.client, { campaignId: id, providers, batchSize: BATCH, total: rows.length, taskQueue });
    const result = await handle.result();
    const seconds = (performance.now() - started) / 1000;
    const workerCpuMsPerMsg = (cpuMsOf(worker.child.pid!) - cpuBefore) / rows.length;
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
      historyEvents: await historyEvents(env, id, handle.firstExecutionRunId),
      result,
    };
  } finally {
    rss.stop();
    await worker.stop();
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const nArg = args.indexOf('--n');
  const n = nArg >= 0 ? Number(args[nArg + 1]) : args.includes('--large') ? 100_000 : 10_000;
  if (!Number.isInteger(n) || n < 1000) throw new Error(`--n: expected a whole number of at least 1000, got ${args[nArg + 1]}`);
  const storeArg = args.indexOf('--store');
  const storeKind = storeArg >= 0 ? args[storeArg + 1] : 'sqlite';
  if (storeKind !== 'sqlite' && storeKind !== 'postgres') throw new Error(`--store: expected 'sqlite' or 'postgres', got '${storeKind}'`);
  const loadStart = Number(loadavg()[0]!.toFixed(2));
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const dir = mkdtempSync(join(tmpdir(), 'mailover-bench-'));
  const log = (line: string) => process.stderr.write(`bench: ${line}\n`);
  const cli = ensureTemporalCli(log);
  log(`N = ${n}; starting the Temporal dev server and the ESP processes`);
  // With MAILOVER_PAYLOAD_KEYS set, the worker processes encrypt; the bench's client must too.
  const dataConverter = dataConverterFromEnv();
  // Eager activity execution (a server feature flag, off by default): when a workflow task
  // schedules the next batch, the server hands the activity straight back to the worker that
  // completed it instead of through a poll; see BENCHMARKS.md for the figures with and without.
  const eager = process.env.MAILOVER_BENCH_EAGER_ACTIVITIES !== '0';
  const extraArgs = eager ? ['--dynamic-config-value', 'system.enableActivityEagerExecution=true'] : [];
  const env = await TestWorkflowEnvironment.createLocal({
    ...(dataConverter ? { client: { dataConverter } } : {}),
    server: { executable: cli.executable, ip: '127.0.0.1', searchAttributes: campaignSearchAttributes, log: { format: 'pretty', level: 'error' }, extraArgs },
  });
  const smtpA = await startEsp('smtp', 'smtp-a');
  const smtpB = await startEsp('smtp', 'smtp-b');
  const mailgun = await startEsp('mailgun', 'mailgun');
  const store = await openStore({ databaseUrl: '', sqlitePath: join(dir, 'bench.db') });
  const pg = storeKind === 'postgres' ? await createScratchDatabase() : undefined;
  const pgStore = pg ? await openStore({ databaseUrl: pg.url }) : undefined;
  try {
    const bundlePath = join(dir, 'bundle.js');
    writeFileSync(bundlePath, (await bundleWorkflowCode({ workflowsPath: workflowsPath(), logger: new DefaultLogger('ERROR') })).code);
    // Each emulator's own definition, with the bench's settings; secrets go into the file as environment references.
    const { defs, env: secrets } = withSecretsAsEnvReferences(
      [
        { ...smtpA.config, pool: { maxConnections: POOL } },
        { ...smtpB.config, pool: { maxConnections: POOL } },
        { ...mailgun.config, domain: 'mg.bench.test' },
      ],
      (d, field) => `BENCH_${d.name.toUpperCase().replace(/[^A-Z0-9]+/g, '_')}_${field.envSuffix}`,
    );
    const configPath = join(dir, 'providers.yaml');
    writeFileSync(configPath, stringify({ providers: defs }));
    const taskQueue = 'mailover-bench';
    const workerEnv = {
      TEMPORAL_ADDRESS: env.address,
      MAILOVER_TASK_QUEUE: taskQueue,
      MAILOVER_CONFIG: configPath,
      DATABASE_URL: '',
      MAILOVER_DB: join(dir, 'bench.db'),
      MAILOVER_WORKFLOW_BUNDLE: bundlePath,
      ...secrets,
      MAILOVER_LOG_LEVEL: 'WARN',
    };

    log('raw baseline: nodemailer pool → smtp-a');
    const rawFirst = await rawBaseline(smtpA, audience(n, 'raw'));
    log(`raw: ${rawFirst.msgsPerS.toFixed(0)} msg/s`);
    log('engine: campaign via smtp-a');
    const smtp = await runCampaign(env, store, workerEnv, taskQueue, 'bench-smtp', ['smtp-a'], audience(n, 'smtp'), [smtpA]);
    log(`engine smtp: ${smtp.msgsPerS.toFixed(0)} msg/s`);
    // The same campaign on a PostgreSQL ledger, right after the SQLite one (the machine's load drifts).
    let smtpPg: CampaignRun | undefined;
    if (pg && pgStore) {
      log('engine: campaign via smtp-a, PostgreSQL ledger');
      smtpPg = await runCampaign(env, pgStore, { ...workerEnv, DATABASE_URL: pg.url }, taskQueue, 'bench-smtp-pg', ['smtp-a'], audience(n, 'smtppg'), [smtpA]);
      log(`engine smtp (PostgreSQL): ${smtpPg.msgsPerS.toFixed(0)} msg/s`);
    }
    // The ledger's durability costs: the same campaign with SQLite synchronous=NORMAL (the worker's
    // explicit opt-out; FULL, the default, syncs the WAL on every commit).
    log('engine: campaign via smtp-a, ledger synchronous=NORMAL');
    const smtpNormal = await runCampaign(
      env,
      store,
      { ...workerEnv, MAILOVER_SQLITE_SYNCHRONOUS: 'normal' },
      taskQueue,
      'bench-smtp-normal',
      ['smtp-a'],
      audience(n, 'smtpn'),
      [smtpA],
    );
    log(`engine smtp (synchronous=NORMAL): ${smtpNormal.msgsPerS.toFixed(0)} msg/s`);
    log('engine: campaign via mailgun');
    const mg = await runCampaign(env, store, workerEnv, taskQueue, 'bench-mailgun', ['mailgun'], audience(n, 'mg'), [mailgun]);
    log(`engine mailgun: ${mg.msgsPerS.toFixed(0)} msg/s`);
    // The raw baseline again, after the engine runs: the better of the two is the one compared
    // against (this machine's throughput drifts between runs; the ratio stays conservative).
    const rawAgain = await rawBaseline(smtpA, audience(n, 'raw2'));
    log(`raw again: ${rawAgain.msgsPerS.toFixed(0)} msg/s`);
    const raw = Math.max(rawFirst.msgsPerS, rawAgain.msgsPerS);
    log('failover: smtp-a fails half-way, smtp-b takes over');
    const failN = Math.min(n, 10_000);
    const before = (await smtpA.stats()).accepted;
    smtpA.send({ cmd: 'failAfter', n: before + Math.floor(failN / 2) });
    const fo = await runCampaign(env, store, workerEnv, taskQueue, 'bench-failover', ['smtp-a', 'smtp-b'], audience(failN, 'fo'), [smtpA, smtpB]);
    const a = await smtpA.stats();
    const b = await smtpB.stats();
    const switchMs = a.failingSince !== undefined && b.firstAcceptAt !== undefined ? b.firstAcceptAt - a.failingSince : NaN;

    const figures = {
      raw_smtp_msgs_per_s: Math.round(raw),
      engine_smtp_msgs_per_s: Math.round(smtp.msgsPerS),
      ratio_smtp: Number((smtp.msgsPerS / raw).toFixed(3)),
      engine_smtp_sync_normal_msgs_per_s: Math.round(smtpNormal.msgsPerS),
      sync_full_cost_pct: Number(((1 - smtp.msgsPerS / smtpNormal.msgsPerS) * 100).toFixed(1)),
      worker_cpu_ms_per_msg_smtp_sync_normal: Number(smtpNormal.workerCpuMsPerMsg.toFixed(3)),
      engine_mailgun_msgs_per_s: Math.round(mg.msgsPerS),
      worker_peak_rss_mb: Math.round(Math.max(smtp.peakRssMb, mg.peakRssMb)),
      history_events_per_10k: Math.round((smtp.historyEvents * 10_000) / n),
      failover_switch_ms: Math.round(switchMs),
      // CPU per message: less sensitive than msg/s to other load on the machine.
      raw_cpu_ms_per_msg: Number(Math.min(rawFirst.cpuMsPerMsg, rawAgain.cpuMsPerMsg).toFixed(3)),
      worker_cpu_ms_per_msg_smtp: Number(smtp.workerCpuMsPerMsg.toFixed(3)),
      sink_cpu_ms_per_msg_raw: Number(Math.min(rawFirst.sinkCpuMsPerMsg, rawAgain.sinkCpuMsPerMsg).toFixed(3)),
      sink_cpu_ms_per_msg_smtp: Number(smtp.espCpuMsPerMsg.toFixed(3)),
      temporal_cpu_ms_per_msg_smtp: Number(smtp.temporalCpuMsPerMsg.toFixed(3)),
      worker_cpu_ms_per_msg_mailgun: Number(mg.workerCpuMsPerMsg.toFixed(3)),
      mailgun_server_cpu_ms_per_msg: Number(mg.espCpuMsPerMsg.toFixed(3)),
      temporal_cpu_ms_per_msg_mailgun: Number(mg.temporalCpuMsPerMsg.toFixed(3)),
      ...(smtpPg
        ? {
            pg_smtp_msgs_per_s: Math.round(smtpPg.msgsPerS),
            ratio_pg_sqlite: Number((smtpPg.msgsPerS / smtp.msgsPerS).toFixed(3)),
            worker_cpu_ms_per_msg_smtp_pg: Number(smtpPg.workerCpuMsPerMsg.toFixed(3)),
          }
        : {}),
      load_1m_start: loadStart,
      load_1m_end: Number(loadavg()[0]!.toFixed(2)),
      eager_activities: eager,
      n,
    };
    const goal = (ok: boolean) => (ok ? 'met' : 'NOT MET');
    console.log(
      table([
        ['figure', 'value', 'goal', ''],
        ['raw SMTP (nodemailer pool, no Temporal, no ledger; best of 2)', `${figures.raw_smtp_msgs_per_s} msg/s`, '', ''],
        ['engine SMTP (campaign end to end; ledger synchronous=FULL, the default)', `${figures.engine_smtp_msgs_per_s} msg/s`, '', ''],
        [
          'engine SMTP, ledger synchronous=NORMAL (explicit opt-out); cost of FULL',
          `${figures.engine_smtp_sync_normal_msgs_per_s} msg/s; ${figures.sync_full_cost_pct} %`,
          '',
          '',
        ],
        ['ratio engine / raw', String(figures.ratio_smtp), '≥ 0.75', goal(figures.ratio_smtp >= 0.75)],
        [
          'engine Mailgun (batch calls)',
          `${figures.engine_mailgun_msgs_per_s} msg/s`,
          `≥ 5 × SMTP`,
          goal(figures.engine_mailgun_msgs_per_s >= 5 * figures.engine_smtp_msgs_per_s),
        ],
        ['worker peak RSS', `${figures.worker_peak_rss_mb} MB`, '< 300 MB', goal(figures.worker_peak_rss_mb < 300)],
        ['history events per 10,000 recipients', String(figures.history_events_per_10k), '≤ 1,000', goal(figures.history_events_per_10k <= 1000)],
        [`failover switch (N=${failN}, primary fails half-way)`, `${figures.failover_switch_ms} ms`, '< 2,000 ms', goal(figures.failover_switch_ms < 2000)],
        [
          'CPU per message: raw sender / engine worker (SMTP) / engine worker (Mailgun)',
          `${figures.raw_cpu_ms_per_msg} / ${figures.worker_cpu_ms_per_msg_smtp} / ${figures.worker_cpu_ms_per_msg_mailgun} ms`,
          '',
          '',
        ],
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
                `${Math.round(smtpPg.msgsPerS)} msg/s; ${(smtpPg.msgsPerS / smtp.msgsPerS).toFixed(3)}`,
                '≥ 0.8',
                goal(smtpPg.msgsPerS / smtp.msgsPerS >= 0.8),
              ],
            ]
          : []),
      ]),
    );
    console.log(
      `engine runs: smtp ${smtp.seconds.toFixed(1)} s (${smtp.result.runs} run(s), ${smtp.historyEvents} history events), mailgun ${mg.seconds.toFixed(1)} s; failover campaign accepted ${JSON.stringify(fo.result.acceptedByProvider)}`,
    );
    console.log(JSON.stringify(figures));
  } finally {
    await store.close();
    await pgStore?.close();
    await pg?.drop();
    await Promise.all([smtpA.stop(), smtpB.stop(), mailgun.stop()]);
    await env.teardown();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
