/**
 * The `notify` activity: workflows raise operational events (src/ops-events.ts) through it.
 * Every event is logged as one readable line; alert delivery and metrics hang off this one path.
 */
import { log } from '@temporalio/activity';
import { describeOpsEvent, isAlarming, type OpsEvent } from '../src/ops-events';

export async function notify(event: OpsEvent): Promise<void> {
  const line = describeOpsEvent(event);
  if (isAlarming(event)) log.warn(line, { event: event.kind });
  else log.info(line, { event: event.kind });
}
