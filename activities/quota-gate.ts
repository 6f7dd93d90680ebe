/**
 * One send attempt's gate on its provider's hourly, daily and warm-up counters (src/quota.ts),
 * held in the store so every worker and campaign takes from the same ones. Each hand-over takes
 * its messages from the counters first; what they do not grant is held back (neither sent nor
 * reported: the attempt releases those rows to pending), and once a quota is spent the attempt
 * holds back everything after it without asking again. `spent` tells the workflow which limit,
 * its use and when it resets (on the quota's clock: `deps.quotaClock`, the wall clock by default).
 */
import type { OutgoingMessage } from '../src/providers/provider';
import { describeLimit, hasCountedQuota, quotaPeriods, type ProviderQuotaFields, type QuotaSpent } from '../src/quota';
import type { ActivityDeps } from './index';

export class QuotaGate {
  readonly heldBack: number[] = [];
  spent?: Omit<QuotaSpent, 'heldBack'>;
  private readonly settings: ProviderQuotaFields;
  private readonly counted: boolean;

  constructor(
    private readonly deps: Pick<ActivityDeps, 'store' | 'providers' | 'metrics' | 'quotaClock'>,
    private readonly provider: string,
  ) {
    this.settings = deps.providers.quota(provider);
    this.counted = hasCountedQuota(this.settings);
  }

  /** The messages that may go now (a prefix of `ms`); the rest are held back. */
  async take(ms: OutgoingMessage[]): Promise<OutgoingMessage[]> {
    if (!this.counted || !ms.length) return ms;
    if (this.spent) return this.holdBack(ms);
    const now = (this.deps.quotaClock ?? Date.now)();
    const t = await this.deps.store.takeQuota(this.provider, ms.length, quotaPeriods(this.settings, now));
    this.deps.metrics?.observeQuota(this.provider, t.usage);
    if (t.spent) {
      const s = t.spent;
      this.spent = {
        provider: this.provider,
        limit: s.limit,
        used: s.used,
        allowance: s.allowance,
        resetAt: s.resetAt,
        resetInMs: Math.max(0, s.resetAt - now),
        onQuota: this.settings.quota?.onQuota ?? 'overflow',
      };
    }
    this.holdBack(ms.slice(t.granted));
    return ms.slice(0, t.granted);
  }

  /** Why the held-back rows were not sent (their last_error). */
  reason(): string {
    const s = this.spent;
    return s
      ? `quota: ${describeLimit(s.limit, s.allowance)} spent on ${s.provider} (resets ${new Date(s.resetAt).toISOString()}); not sent, back to pending`
      : 'quota spent; back to pending';
  }

  private holdBack(ms: OutgoingMessage[]): OutgoingMessage[] {
    for (const m of ms) this.heldBack.push(m.seq);
    if (ms.length) this.deps.metrics?.countQuotaHeldBack(this.provider, this.spent?.limit ?? 'day', ms.length);
    return [];
  }
}
