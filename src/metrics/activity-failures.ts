/**
 * Counts failed activity attempts into mailover_activity_failures_total: an activity interceptor,
 * so every activity of the worker is covered without touching it. A cancelled attempt (the
 * workflow or the worker cancelled it) is not a failure.
 */
import { CancelledFailure } from '@temporalio/common';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import type { MailoverMetrics } from './metrics';

export function activityFailureCounter(metrics: MailoverMetrics): ActivityInterceptorsFactory {
  return (ctx) => ({
    inbound: {
      async execute(input, next) {
        try {
          return await next(input);
        } catch (err) {
          if (!(err instanceof CancelledFailure)) metrics.countActivityFailure(ctx.info.activityType);
          throw err;
        }
      },
    },
  });
}
