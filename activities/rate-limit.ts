/**
 * Waits until a provider's rate limit (held in the store, so shared by every worker and
 * campaign) lets `count` more messages go. Heartbeats while waiting; stops when the attempt
 * is cancelled.
 */
import type { RateLimit } from '../src/config';
import type { Store } from '../src/store/types';
import { abortableSleep } from './attempt-clock';

/** Longest single wait between reservations: keeps heartbeats and cancellation prompt. */
const MAX_WAIT_MS = 1_000;

export async function acquireSends(
  store: Store,
  provider: string,
  limits: RateLimit,
  count: number,
  opts: { signal?: AbortSignal; onWait?: (waitingFor: number) => void } = {},
): Promise<void> {
  let need = count;
  while (need > 0) {
    opts.signal?.throwIfAborted();
    const r = await store.reserveSends(provider, need, limits, Date.now());
    need -= r.granted;
    if (need === 0) return;
    opts.onWait?.(need);
    await abortableSleep(Math.min(MAX_WAIT_MS, Math.max(1, r.retryAfterMs)), opts.signal);
  }
}
