/**
 * `npm run bench -- --scale [--n N] [--workers K] [--window W] [--latency-ms L]`: the scale-out
 * run. One campaign of N recipients (default 1,000,000) on a PostgreSQL ledger (a scratch database
 * on MAILOVER_BENCH_PG_URL's server), sent by K worker processes (default 2) on one task queue,
 * through the Mailgun path to the bench's Mailgun-compatible sink, batches of 1,000.
 *
 * The JSON line: wall time and recipients/s (campaign start to result), each worker's share of the
 * batches (sendBatch ActivityTaskStarted events by worker identity over every run of the
 * campaign), each worker's peak RSS (VmHWM from /proc before it stops), history events per 10,000
 * recipients (every run of the campaign plus what the health workflow gained meanwhile), and the
 * sink's count of lost and duplicated recipients (counted per seq). The Temporal dev server runs
 * without eager activity execution here (MAILOVER_BENCH_EAGER_ACTIVITIES=1 turns it on): eager
 * hands each batch back to the worker whose workflow task scheduled it, which is the sticky one.
 * SIGINT or SIGTERM ends the run early: the campaign is terminated and the figures so far are
 * reported with `interrupted: true` (rates over the recipients sent so far).
 */
import { mkdtempSync, rmSync } from 'fs';
import { hostname, tmpdir } from 'os';
import { join } from 'path';
import { startCampaign } from '../client';
import { table } from '../progress';
import { openStore } from '../store/open-store';
import { DEFAULT_BATCHES_IN_FLIGHT } from '../../workflows/campaign-api';
import { providerHealthWorkflowId } from '../../workflows/provider-health-api';
import type { BenchArgs } from './args';
import { startEsp } from './esp';
import { allRunsEvents, campaignHistory } from './history';
import { createScratchDatabase } from './pg-scratch';
import { cpuMsOf, load1m, statusMb } from './proc-stats';
import { audienceRange, FROM, log, startTemporal, TEMPLATE, workerFiles } from './stack';
import { WorkerProc, workerFlags } from './worker-proc';

const BATCH = 1000;
/** Audience rows generated and imported at a time. */
const IMPORT_CHUNK = 10_000;
const CAMPAIGN = 'bench-scale';
const TAG = 'scale';

/** Live progress: a bar on a TTY (redrawn in place), a line every 30 s otherwise. */
function progressReporter(n: number): { update(done: number, rcptPerS: number, elapsedS: number): void; end(): void } {
  const tty = process.stderr.isTTY;
  let lastLine = 0;
  return {
    update(done, rcptPerS, elapsedS) {
      const pct = (100 * done) / n;
      const text = `${done.toLocaleString('en')} / ${n.toLocaleString('en')} (${pct.toFixed(1)} %), ${Math.round(rcptPerS).toLocaleString('en')} rcpt/s, ${elapsedS.toFixed(0)} s`;
      if (tty) {
        const width = 30;
        const full = Math.round((width * done) / n);
        process.stderr.write(`\rbench: [${'#'.repeat(full)}${'.'.repeat(width - full)}] ${text}   `);
      } else if (elapsedS - lastLine >= 30) {
        lastLine = elapsedS;
        log(`progress: ${text}`);
      }
    },
    end() {
      if (tty) process.stderr.write('\n');
    },
  };
}

export async function runScale(args: BenchArgs): Promise<void> {
  const { n, workers: k } = args;
  const loadStart = load1m();
  const window = args.window ?? DEFAULT_BATCHES_IN_FLIGHT;
  const eager = process.env.MAILOVER_BENCH_EAGER_ACTIVITIES === '1';
  log(
    `scale-out: N = ${n}, ${k} workers, PostgreSQL, Mailgun sink, batches of ${BATCH}, window ${window}, latency ${args.latencyMs} ms, worker flags '${workerFlags().join(' ')}'`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'mailover-bench-scale-'));
  const env = await startTemporal(eager);
  const sink = await startEsp('mailgun-sink', 'mailgun', args.latencyMs);
  const pg = await createScratchDatabase();
  const store = await openStore({ databaseUrl: pg.url });
  const procs: WorkerProc[] = [];
  try {
    const taskQueue = 'mailover-bench-scale';
    const workerEnv = { ...(await workerFiles(dir, env, taskQueue, [sink.config])), DATABASE_URL: pg.url };

    log(`importing ${n} recipients into PostgreSQL`);
    const importStarted = performance.now();
    await store.createCampaign({ id: CAMPAIGN, from: FROM, template: TEMPLATE, providers: ['mailgun'], batchSize: BATCH, transactional: true });
    for (let i = 0; i < n; i += IMPORT_CHUNK) await store.importAudience(CAMPAIGN, audienceRange(i, Math.min(n, i + IMPORT_CHUNK), TAG));
    const importS = (performance.now() - importStarted) / 1000;
    log(`imported in ${importS.toFixed(1)} s (${Math.round(n / importS)} rows/s)`);

    for (let i = 0; i < k; i++) procs.push(await WorkerProc.start(workerEnv));
    const healthId = providerHealthWorkflowId(taskQueue, 'mailgun');
    const healthBefore = await allRunsEvents(env.client, healthId);
    const cpuBefore = procs.map((p) => cpuMsOf(p.pid));
    const started = performance.now();
    const handle = await startCampaign(env.client, {
      campaignId: CAMPAIGN,
      providers: ['mailgun'],
      batchSize: BATCH,
      total: n,
      taskQueue,
      ...(args.window !== undefined ? { options: { batchesInFlight: args.window } } : {}),
    });
    const progress = progressReporter(n);
    const timer = setInterval(() => {
      void sink.stats().then((s) => {
        const elapsed = (performance.now() - started) / 1000;
        progress.update(Math.min(s.accepted, n), s.accepted / elapsed, elapsed);
      });
    }, 1000);
    // SIGINT or SIGTERM (a run stopped before it ends): the campaign is terminated and the figures
    // so far are reported, marked `interrupted`, before everything is stopped.
    let onSignal: (() => void) | undefined;
    const interrupted = new Promise<'interrupted'>((resolve) => {
      onSignal = () => resolve('interrupted');
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
    });
    let outcome;
    try {
      outcome = await Promise.race([handle.result(), interrupted]);
    } finally {
      clearInterval(timer);
      progress.end();
      process.off('SIGINT', onSignal!);
      process.off('SIGTERM', onSignal!);
    }
    const wallS = (performance.now() - started) / 1000;
    if (outcome === 'interrupted') {
      log(`interrupted after ${wallS.toFixed(0)} s: terminating the campaign`);
      await handle.terminate('bench interrupted');
    }
    const result = outcome === 'interrupted' ? undefined : outcome;
    const sent = result ? n : (await sink.stats()).accepted;
    // Read before the workers stop: VmHWM is the peak resident set of the process's life.
    const peakRss = procs.map((p) => statusMb(p.pid, 'VmHWM') ?? NaN);
    const cpuMs = procs.map((p, i) => cpuMsOf(p.pid) - cpuBefore[i]!);
    const history = await campaignHistory(env.client, CAMPAIGN, handle.firstExecutionRunId);
    const healthEvents = (await allRunsEvents(env.client, healthId)) - healthBefore;
    const tally = await sink.tally(TAG, n);

    // Worker identities are `<pid>@<host>` (the SDK's default).
    const host = hostname();
    const batches = procs.map((p) => history.sendBatchesByIdentity.get(`${p.pid}@${host}`) ?? 0);
    const totalBatches = [...history.sendBatchesByIdentity.values()].reduce((a, b) => a + b, 0);
    const figures = {
      scale: true,
      n,
      workers: k,
      batch_size: BATCH,
      ...(result ? {} : { interrupted: true, sent_so_far: sent }),
      wall_s: Number(wallS.toFixed(1)),
      rcpt_per_s: Math.round(sent / wallS),
      worker_batches: batches,
      worker_batch_share: batches.map((b) => Number((b / Math.max(1, totalBatches)).toFixed(3))),
      other_batches: totalBatches - batches.reduce((a, b) => a + b, 0),
      worker_peak_rss_mb: peakRss.map((mb) => Math.round(mb)),
      worker_cpu_ms_per_rcpt: cpuMs.map((ms) => Number((ms / sent).toFixed(3))),
      history_events_per_10k_mailgun: Math.round(((history.events + healthEvents) * 10_000) / sent),
      campaign_history_events: history.events,
      health_history_events: healthEvents,
      campaign_runs: history.runs,
      // Interrupted: the recipients not sent yet are not lost.
      ...(result ? { sink_lost: tally.lost } : { sink_not_sent_yet: tally.lost }),
      sink_duplicated: tally.duplicated,
      sink_extra_copies: tally.extraCopies,
      accepted: result?.accepted,
      import_s: Number(importS.toFixed(1)),
      import_rows_per_s: Math.round(n / importS),
      latency_ms: args.latencyMs,
      window,
      eager_activities: eager,
      worker_flags: workerFlags().join(' '),
      load_1m_start: loadStart,
      load_1m_end: load1m(),
      date: new Date().toISOString().slice(0, 16) + 'Z',
    };
    const goal = (ok: boolean) => (ok ? 'met' : 'NOT MET');
    const minShare = Math.min(...figures.worker_batch_share);
    const maxRss = Math.max(...figures.worker_peak_rss_mb);
    console.log(
      table([
        ['figure', 'value', 'goal', ''],
        ['wall time; recipients/s', `${figures.wall_s} s; ${figures.rcpt_per_s}`, '', ''],
        ['batches per worker (share)', batches.map((b, i) => `${b} (${figures.worker_batch_share[i]})`).join(', '), '≥ 0.3 each', goal(minShare >= 0.3)],
        ['worker peak RSS (VmHWM)', figures.worker_peak_rss_mb.map((mb) => `${mb} MB`).join(', '), '< 300 MB', goal(maxRss < 300)],
        [
          'history events per 10,000 recipients (campaign runs + health)',
          String(figures.history_events_per_10k_mailgun),
          '≤ 100',
          goal(figures.history_events_per_10k_mailgun <= 100),
        ],
        result
          ? ['sink: lost / duplicated recipients', `${tally.lost} / ${tally.duplicated}`, '0 / 0', goal(tally.lost === 0 && tally.duplicated === 0)]
          : ['sink: not sent yet (interrupted) / duplicated recipients', `${tally.lost} / ${tally.duplicated}`, '', ''],
        ['audience import (PostgreSQL)', `${figures.import_s} s (${figures.import_rows_per_s} rows/s)`, '', ''],
      ]),
    );
    console.log(JSON.stringify(figures));
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    await store.close();
    await pg.drop();
    await sink.stop();
    await env.teardown();
    rmSync(dir, { recursive: true, force: true });
  }
}
