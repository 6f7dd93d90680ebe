/**
 * The `notify` activity: workflows raise operational events (src/ops-events.ts) through it.
 * Every event is logged as one readable line and counted (metrics); then it is POSTed to each
 * configured alert target that wants its kind.
 *
 * Delivery: targets are tried in parallel; one failing target does not stop the others. If any
 * failed, the activity fails retryably so the caller's retry policy tries again, and the targets
 * already delivered are skipped on that retry: each success is heartbeated (the set of delivered
 * target names), and Temporal hands the last heartbeat to the next attempt. The caller decides
 * how long to keep trying; an alert that cannot be delivered never holds up a campaign.
 * Target URLs are secrets: only target names are logged.
 */
import { ApplicationFailure } from '@temporalio/common';
import { Context, log } from '@temporalio/activity';
import { deliverAlert } from '../src/alerts';
import type { AlertTarget } from '../src/config';
import type { MailoverMetrics } from '../src/metrics/metrics';
import { describeOpsEvent, isAlarming, type OpsEvent } from '../src/ops-events';
import { ERROR_TYPES } from './contracts';

export interface NotifyDeps {
  alerts?: AlertTarget[];
  metrics?: MailoverMetrics;
}

/** Heartbeat details of a notify attempt: the targets that have the event already. */
export interface NotifyProgress {
  delivered: string[];
}

function deliveredBefore(details: unknown): Set<string> {
  const d = details as Partial<NotifyProgress> | undefined;
  return new Set(Array.isArray(d?.delivered) ? d.delivered.filter((n): n is string => typeof n === 'string') : []);
}

export async function notify(deps: NotifyDeps, event: OpsEvent): Promise<void> {
  const ctx = Context.current();
  const { info } = ctx;
  const line = describeOpsEvent(event);
  if (info.attempt === 1) {
    // Logged and counted once per event; retries only retry delivery.
    if (isAlarming(event)) log.warn(line, { event: event.kind });
    else log.info(line, { event: event.kind });
    deps.metrics?.countEvent(event);
  }
  const targets = (deps.alerts ?? []).filter((t) => t.events.includes(event.kind));
  const delivered = deliveredBefore(info.heartbeatDetails);
  const pending = targets.filter((t) => !delivered.has(t.name));
  if (!pending.length) return;

  // Same time and key on every attempt: receivers can tell a retry from a new event.
  const at = new Date(info.scheduledTimestampMs);
  const wfe = info.workflowExecution;
  const idempotencyKey = wfe ? `${wfe.workflowId}/${wfe.runId}/${info.activityId}` : undefined;
  const failures: string[] = [];
  await Promise.all(
    pending.map(async (target) => {
      try {
        await deliverAlert(target, event, { at, idempotencyKey });
        delivered.add(target.name);
        deps.metrics?.countAlert(target.name, 'delivered');
        ctx.heartbeat({ delivered: [...delivered] } satisfies NotifyProgress);
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        failures.push(reason);
        deps.metrics?.countAlert(target.name, 'failed');
        log.warn(`alert not delivered (attempt ${info.attempt}): ${reason}`, { target: target.name, event: event.kind, attempt: info.attempt });
      }
    }),
  );
  if (failures.length) {
    throw ApplicationFailure.retryable(
      `${failures.length} of ${targets.length} alert target(s) not reached (attempt ${info.attempt}): ${failures.join('; ')}`,
      ERROR_TYPES.alertDelivery,
    );
  }
}
