/**
 * A send attempt's clock: heartbeats on a timer while it runs (a provider call or a look-up can
 * take longer than the heartbeat timeout, and must not look like a dead worker), its cancellation
 * (a newer attempt took over, or the campaign was cancelled), and how much time it has left before
 * its start-to-close timeout.
 */
import { Context } from '@temporalio/activity';

/** Heartbeats at most every 5 s, at least every quarter of the heartbeat timeout. */
const MAX_HEARTBEAT_EVERY_MS = 5_000;

export class AttemptClock {
  private timer?: NodeJS.Timeout;
  private details: unknown;
  private readonly startedAt = Date.now();
  private readonly context?: Context;

  constructor() {
    try {
      this.context = Context.current();
    } catch {
      this.context = undefined; // not running inside an activity (a direct call from a tool or test)
    }
  }

  /** The attempt's cancellation (undefined outside an activity). */
  get signal(): AbortSignal | undefined {
    return this.context?.cancellationSignal;
  }

  /** Starts heartbeating `details` (updated with `progress`) until `stop`. */
  start(details: unknown): void {
    this.details = details;
    const context = this.context;
    if (!context) return;
    context.heartbeat(details);
    const timeout = context.info.heartbeatTimeoutMs ?? 0;
    const every = timeout > 0 ? Math.min(MAX_HEARTBEAT_EVERY_MS, Math.max(100, timeout / 4)) : MAX_HEARTBEAT_EVERY_MS;
    this.timer = setInterval(() => context.heartbeat(this.details), every);
  }

  /** What the next heartbeat says (shown in the Web UI's pending activity). */
  progress(details: unknown): void {
    this.details = details;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Milliseconds left before the attempt's start-to-close timeout (Infinity outside an activity). */
  remainingMs(): number {
    const limit = this.context?.info.startToCloseTimeoutMs;
    if (!limit) return Infinity;
    return this.startedAt + limit - Date.now();
  }

  /** Waits `ms`, or rejects when the attempt is cancelled. */
  sleep(ms: number): Promise<void> {
    return abortableSleep(ms, this.signal);
  }
}

export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
