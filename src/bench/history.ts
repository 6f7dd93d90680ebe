/**
 * Temporal history the bench reads after a run: the events of every run of a workflow
 * (continue-as-new included), and which worker (by its identity) started each sendBatch.
 */
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

/** The events of one run. */
async function runEvents(client: Client, workflowId: string, runId: string | undefined): Promise<HistoryEvent[]> {
  const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
  return history.events ?? [];
}

export interface CampaignHistory {
  runs: number;
  events: number;
  /** sendBatch activities started, per worker identity (`<pid>@<host>` by default); each batch counted once, by the attempt that ended it. */
  sendBatchesByIdentity: Map<string, number>;
}

/** Every run of a workflow from its first, following continue-as-new. */
export async function campaignHistory(client: Client, workflowId: string, firstRunId: string): Promise<CampaignHistory> {
  const out: CampaignHistory = { runs: 0, events: 0, sendBatchesByIdentity: new Map() };
  let runId: string | undefined = firstRunId;
  while (runId) {
    const events = await runEvents(client, workflowId, runId);
    out.runs++;
    out.events += events.length;
    const sendBatchScheduled = new Set<string>();
    for (const e of events) {
      const scheduled = e.activityTaskScheduledEventAttributes;
      if (scheduled?.activityType?.name === 'sendBatch') sendBatchScheduled.add(String(e.eventId));
      const started = e.activityTaskStartedEventAttributes;
      if (started && sendBatchScheduled.has(String(started.scheduledEventId))) {
        const identity = started.identity ?? '';
        out.sendBatchesByIdentity.set(identity, (out.sendBatchesByIdentity.get(identity) ?? 0) + 1);
      }
    }
    runId = events[events.length - 1]?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
  }
  return out;
}

/** Events of every run of a workflow so far, from its current run back (0 if it never ran). Called before and after a campaign, the difference is what the campaign caused. */
export async function allRunsEvents(client: Client, workflowId: string): Promise<number> {
  let total = 0;
  let runId: string | undefined;
  let first = true;
  while (first || runId) {
    first = false;
    let events: HistoryEvent[];
    try {
      events = await runEvents(client, workflowId, runId);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError || (err as { code?: number }).code === 5) return total;
      throw err;
    }
    total += events.length;
    runId = events[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId || undefined;
  }
  return total;
}
