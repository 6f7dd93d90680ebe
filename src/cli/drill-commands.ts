/** `mailover drill ...`: failover drills on demand and on a Temporal Schedule. */
import {
  DEFAULT_DRILL_SCHEDULE_ID,
  deleteDrillSchedule,
  describeDrillSchedule,
  drillRunsTable,
  drillTable,
  recentDrills,
  scheduleDrills,
  startDrill,
} from '../drill-client';
import { parseDuration } from '../drill-settings';
import { helpText, type Command } from './command';
import { EXIT, UsageError } from './usage';

const when = (d: Date) => d.toISOString().replace('T', ' ').slice(0, 19) + ' UTC';

function scheduleIdOf(values: Record<string, unknown>, cmd: Command): string {
  const id = values.id ?? DEFAULT_DRILL_SCHEDULE_ID;
  if (typeof id !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(id))
    throw new UsageError(`--id: expected letters, digits, '.', '_' or '-', got '${String(id)}'`, helpText(cmd));
  return id;
}

const run: Command = {
  name: 'drill run',
  summary:
    'Run a failover drill now: probe every provider with the seed list, then a synthetic campaign with the primary forced down (see docs/operations.md: Failover drills).',
  usage: '[--wait]',
  details: [
    'Options:',
    '  --wait   wait for the drill and print its pass/fail table; exits 1 when the drill failed',
    'The worker runs it with the `drills:` section of its provider file (seed addresses, sender). Drills never touch real audiences.',
  ].join('\n'),
  options: { wait: { type: 'boolean' } },
  async run(ctx, values) {
    const client = await ctx.temporal();
    const handle = await startDrill(client, { taskQueue: ctx.settings.taskQueue });
    console.log(`started failover drill ${handle.workflowId}`);
    console.log(`Web UI: ${ctx.webUiLink(handle.workflowId)}`);
    if (!values.wait) return;
    const report = await handle.result();
    console.log(drillTable(report));
    console.log(`drill ${report.drillId} ${report.passed ? 'PASSED' : 'FAILED'}`);
    return report.passed ? EXIT.ok : EXIT.failure;
  },
};

const schedule: Command = {
  name: 'drill schedule',
  summary: 'Run failover drills on a Temporal Schedule (creates it, or updates its interval), or delete it.',
  usage: '--every 24h [--id mailover-drill] | --delete [--id mailover-drill]',
  details: [
    'Options:',
    '  --every DURATION   how often: 30m, 6h, 24h, 7d ...',
    `  --id ID            schedule id (default ${DEFAULT_DRILL_SCHEDULE_ID})`,
    '  --delete           delete the schedule (drills already running finish)',
    'Prints the next run times. A drill that is still running when the next one is due skips that one.',
  ].join('\n'),
  options: { every: { type: 'string' }, id: { type: 'string' }, delete: { type: 'boolean' } },
  async run(ctx, values) {
    const scheduleId = scheduleIdOf(values, schedule);
    if (values.delete) {
      if (values.every !== undefined) throw new UsageError('--every and --delete cannot be used together', helpText(schedule));
      const deleted = await deleteDrillSchedule(await ctx.temporal(), scheduleId);
      console.log(deleted ? `deleted drill schedule ${scheduleId}` : `no drill schedule ${scheduleId} (nothing to delete)`);
      return;
    }
    if (values.every === undefined) throw new UsageError('--every is required (or --delete)', helpText(schedule));
    const everyMs = parseDuration(values.every);
    if (everyMs === undefined || everyMs < 60_000)
      throw new UsageError(`--every: expected a duration of at least 1m like 30m, 6h or 24h, got '${String(values.every)}'`, helpText(schedule));
    const { created, description } = await scheduleDrills(await ctx.temporal(), { scheduleId, everyMs, taskQueue: ctx.settings.taskQueue });
    console.log(
      `${created ? 'created' : 'updated'} drill schedule ${scheduleId}: a failover drill every ${String(values.every)} on task queue ${ctx.settings.taskQueue}`,
    );
    const next = description.info.nextActionTimes.slice(0, 3);
    console.log(`next runs: ${next.length ? next.map(when).join(', ') : 'none'}`);
  },
};

const status: Command = {
  name: 'drill status',
  summary: 'The drill schedule and the last drills on the task queue (scheduled and on demand), newest first, with their result.',
  usage: '[--id mailover-drill] [--limit 10] [--json]',
  options: { id: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' } },
  async run(ctx, values) {
    const scheduleId = scheduleIdOf(values, status);
    const limit = values.limit === undefined ? 10 : Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1)
      throw new UsageError(`--limit: expected a positive whole number, got '${String(values.limit)}'`, helpText(status));
    const client = await ctx.temporal();
    const sched = await describeDrillSchedule(client, scheduleId);
    const runs = await recentDrills(client, ctx.settings.taskQueue, limit);
    if (values.json) {
      console.log(
        JSON.stringify(
          { schedule: sched ? { id: scheduleId, paused: sched.state.paused, nextRuns: sched.info.nextActionTimes } : null, drills: runs },
          null,
          2,
        ),
      );
      return;
    }
    if (sched) {
      const next = sched.info.nextActionTimes.slice(0, 3);
      console.log(
        `drill schedule ${scheduleId}: ${sched.state.paused ? 'paused' : 'active'}, ${sched.info.numActionsTaken} run(s) so far, next: ${next.length ? next.map(when).join(', ') : 'none'}`,
      );
    } else console.log(`no drill schedule ${scheduleId} (create one with: mailover drill schedule --every 24h)`);
    if (!runs.length) {
      console.log('no drills yet (run one with: mailover drill run --wait)');
      return;
    }
    console.log(drillRunsTable(runs));
    const last = runs.find((r) => r.report?.phase === 'done');
    if (last?.report) {
      console.log(`last finished drill, ${last.report.drillId}:`);
      console.log(drillTable(last.report));
    }
  },
};

export const drillCommands: Command[] = [run, schedule, status];
