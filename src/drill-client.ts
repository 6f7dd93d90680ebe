/**
 * Client side of failover drills: run one now, keep them on a Temporal Schedule, and read
 * the last runs back (from Temporal visibility), with the report as a table.
 */
import { randomBytes } from 'crypto';
import {
  type Client,
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  WorkflowNotFoundError,
  type ScheduleDescription,
  type WorkflowHandle,
} from '@temporalio/client';
import { drillWorkflow } from '../workflows/drill';
import { drillProgressQuery, DRILL_WORKFLOW_PREFIX, type DrillReport } from '../workflows/drill-api';
import { table } from './progress';
import { DEFAULT_TASK_QUEUE } from './worker';

export const DEFAULT_DRILL_SCHEDULE_ID = 'mailover-drill';

/** A fresh drill id: UTC time plus a little randomness, e.g. 20261128-003251-7f3a. */
export function newDrillId(now = new Date()): string {
  const t = now
    .toISOString()
    .replace(/\.\d+Z$/, '')
    .replace(/[-:]/g, '')
    .replace('T', '-');
  return `${t}-${randomBytes(2).toString('hex')}`;
}

export const drillWorkflowId = (drillId: string) => `${DRILL_WORKFLOW_PREFIX}-${drillId}`;

export async function startDrill(client: Client, opts: { taskQueue?: string; drillId?: string } = {}): Promise<WorkflowHandle<typeof drillWorkflow>> {
  const drillId = opts.drillId ?? newDrillId();
  return client.workflow.start(drillWorkflow, {
    workflowId: drillWorkflowId(drillId),
    taskQueue: opts.taskQueue ?? DEFAULT_TASK_QUEUE,
    args: [{ drillId }],
    staticSummary: `Failover drill ${drillId} (on demand)`,
  });
}

export interface DrillScheduleOptions {
  scheduleId?: string;
  everyMs: number;
  taskQueue?: string;
}

/** Creates the drill schedule, or updates its interval and task queue when it exists. Returns its description. */
export async function scheduleDrills(client: Client, opts: DrillScheduleOptions): Promise<{ created: boolean; description: ScheduleDescription }> {
  const scheduleId = opts.scheduleId ?? DEFAULT_DRILL_SCHEDULE_ID;
  const action = {
    type: 'startWorkflow' as const,
    workflowType: drillWorkflow,
    // Each run's workflow id is this plus the scheduled time; the drill id is derived from it.
    workflowId: scheduleId === DEFAULT_DRILL_SCHEDULE_ID ? DRILL_WORKFLOW_PREFIX : `${DRILL_WORKFLOW_PREFIX}-${scheduleId}`,
    taskQueue: opts.taskQueue ?? DEFAULT_TASK_QUEUE,
    args: [{}] as [Record<string, never>],
    staticSummary: `Failover drill (schedule ${scheduleId})`,
  };
  const spec = { intervals: [{ every: opts.everyMs }] };
  let created = true;
  try {
    await client.schedule.create({
      scheduleId,
      spec,
      action,
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 hour' },
      state: { note: 'mailover failover drills (mailover drill schedule)' },
    });
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    created = false;
    await client.schedule.getHandle(scheduleId).update((prev) => ({ ...prev, spec, action }));
  }
  return { created, description: await client.schedule.getHandle(scheduleId).describe() };
}

/** Deletes the drill schedule; false when there was none. Drills already running finish. */
export async function deleteDrillSchedule(client: Client, scheduleId = DEFAULT_DRILL_SCHEDULE_ID): Promise<boolean> {
  try {
    await client.schedule.getHandle(scheduleId).delete();
    return true;
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) return false;
    throw err;
  }
}

export async function describeDrillSchedule(client: Client, scheduleId = DEFAULT_DRILL_SCHEDULE_ID): Promise<ScheduleDescription | undefined> {
  try {
    return await client.schedule.getHandle(scheduleId).describe();
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) return undefined;
    throw err;
  }
}

export interface DrillRun {
  workflowId: string;
  startedAt: Date;
  /** running, passed, failed, or the workflow's status (terminated, timed out, ...) */
  status: string;
  report?: DrillReport;
}

/** One drill's report: its result when completed, its progress query while running. */
export async function drillRun(client: Client, workflowId: string): Promise<DrillRun> {
  const handle = client.workflow.getHandle<typeof drillWorkflow>(workflowId);
  let desc;
  try {
    desc = await handle.describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new Error(`drill '${workflowId}' not found (no workflow with that id)`, { cause: err });
    throw err;
  }
  const status = desc.status.name;
  if (status === 'COMPLETED') {
    const report = await handle.result();
    return { workflowId, startedAt: desc.startTime, status: report.passed ? 'passed' : 'failed', report };
  }
  if (status === 'RUNNING') {
    const report = await handle.query(drillProgressQuery).catch(() => undefined);
    return { workflowId, startedAt: desc.startTime, status: 'running', report };
  }
  return { workflowId, startedAt: desc.startTime, status: status.toLowerCase().replace(/_/g, ' ') };
}

/** The last `limit` drills (scheduled and on demand) on a task queue, newest first. */
export async function recentDrills(client: Client, taskQueue = DEFAULT_TASK_QUEUE, limit = 10): Promise<DrillRun[]> {
  const ids: Array<{ id: string; start: Date }> = [];
  const query = `WorkflowType = 'drillWorkflow' AND TaskQueue = '${taskQueue.replace(/'/g, '')}'`;
  for await (const w of client.workflow.list({ query })) ids.push({ id: w.workflowId, start: w.startTime });
  ids.sort((a, b) => b.start.getTime() - a.start.getTime());
  return Promise.all(ids.slice(0, limit).map(({ id }) => drillRun(client, id)));
}

/** The pass/fail table of one drill. */
export function drillTable(report: DrillReport): string {
  if (!report.checks.length) return `drill ${report.drillId}: no checks yet (${report.phase})`;
  return table([['check', 'provider', 'result', 'detail'], ...report.checks.map((c) => [c.check, c.provider, c.passed ? 'pass' : 'FAIL', c.detail])]);
}

/** One row per drill run. */
export function drillRunsTable(runs: DrillRun[]): string {
  const when = (d: Date) => d.toISOString().replace('T', ' ').slice(0, 19);
  return table([
    ['started (UTC)', 'drill', 'result', 'summary'],
    ...runs.map((r) => [
      when(r.startedAt),
      r.report?.drillId ?? r.workflowId,
      r.status,
      r.report ? (r.report.phase === 'done' ? r.report.summary : `in progress: ${r.report.phase}`) : '',
    ]),
  ]);
}
