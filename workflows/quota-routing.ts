/**
 * The campaign's side of provider quotas (workflow code: deterministic, workflow time only).
 * A batch whose provider's quota or warm-up allowance ran out comes back with `quotaSpent` and
 * its unsent rows back to pending; this hook hands that to the failover decision (./failover.ts,
 * `quota-spent`: overflow to the next provider, or a `quota` hold), keeps the spent quota in the
 * carried state with when it resets, and sets a Temporal timer for the reset (`quota-reset`: back
 * to the provider, or the wait ends). The reset is the quota's time to its reset (the activity
 * measured it on the quota's clock) from the workflow's now; timers are set again after
 * continue-as-new. While a quota overflows, its switch's reason counts the recipients accepted
 * elsewhere since. A campaign whose batches never report a spent quota sets no timer and records
 * nothing here (its history is as before).
 */
import * as wf from '@temporalio/workflow';
import type { BatchTally } from '../activities/contracts';
import type { CarriedState, QuotaWatch } from './campaign-api';
import type { Decision, FailoverEvent } from './failover';

/** A reset is never awaited for less than this (a quota's clock that stands still does not make a busy loop). */
const MIN_WAIT_MS = 1_000;

export interface QuotaHookDeps {
  /** The campaign's current carried state (it is replaced as decisions are applied: always read it through this). */
  state(): CarriedState;
  apply(event: FailoverEvent): Decision;
  /** Something shown changed (search attributes, Web UI details). */
  changed(): void;
}

export interface QuotaHook {
  /** Set the timers of quotas carried over continue-as-new. */
  resume(): void;
  /** After a batch on `provider`: whether its quota was spent and rows held back (then the rows are sent again, elsewhere or later). */
  heldBack(provider: string, tally: BatchTally, atSeq: number): boolean;
  /** After each batch: the overflow switches' counts of recipients moved. */
  afterBatch(): void;
}

const sum = (r: Record<string, number>, except: string) =>
  Object.entries(r)
    .filter(([p]) => p !== except)
    .reduce((a, [, n]) => a + n, 0);

export function quotaHook(d: QuotaHookDeps): QuotaHook {
  const armed = new Set<string>();
  const watches = () => d.state().quota ?? {};
  const setWatch = (provider: string, w: QuotaWatch | undefined) => {
    const { [provider]: _old, ...rest } = watches();
    d.state().quota = w ? { ...rest, [provider]: w } : rest;
  };

  const arm = (provider: string) => {
    const w = watches()[provider];
    if (!w || armed.has(provider)) return;
    armed.add(provider);
    void wf.sleep(Math.max(MIN_WAIT_MS, w.until - Date.now())).then(() => {
      armed.delete(provider);
      const now = watches()[provider];
      if (!now) return;
      if (now.until > Date.now()) return arm(provider); // spent again meanwhile: a later reset
      setWatch(provider, undefined);
      const s = d.state();
      d.apply({
        type: 'quota-reset',
        provider,
        ...(now.onQuota === 'overflow' ? { moved: now.moved ?? 0 } : {}),
        atSeq: s.cursor + 1,
        at: new Date().toISOString(),
      });
      d.changed();
    });
  };

  return {
    resume() {
      for (const provider of Object.keys(watches())) arm(provider);
    },

    heldBack(provider, tally, atSeq) {
      const q = tally.quotaSpent;
      if (!q) return false;
      const before = d.state().switches.length;
      const decision = d.apply({
        type: 'quota-spent',
        provider,
        limit: q.limit,
        used: q.used,
        allowance: q.allowance,
        resetAt: new Date(q.resetAt).toISOString(),
        onQuota: q.onQuota,
        atSeq,
        at: new Date().toISOString(),
      });
      const until = Date.now() + Math.max(MIN_WAIT_MS, q.resetInMs);
      const old = watches()[provider];
      const w: QuotaWatch = { ...old, limit: q.limit, allowance: q.allowance, onQuota: q.onQuota, until: Math.max(until, old?.until ?? 0) };
      if (decision.switch && q.onQuota === 'overflow') {
        w.switchIndex = before;
        w.acceptedElsewhereBefore = sum(d.state().counts.acceptedByProvider, provider);
        w.moved = 0;
      }
      setWatch(provider, w);
      arm(provider);
      d.changed();
      return true;
    },

    afterBatch() {
      for (const [provider, w] of Object.entries(watches())) {
        if (w.switchIndex === undefined || w.acceptedElsewhereBefore === undefined) continue;
        const moved = sum(d.state().counts.acceptedByProvider, provider) - w.acceptedElsewhereBefore;
        if (moved === w.moved) continue;
        setWatch(provider, { ...w, moved });
        const s = d.state();
        const sw = s.switches[w.switchIndex];
        if (!sw?.to) continue;
        const reason = sw.reason.replace(/; (\d[\d,]* )?moved to /, `; ${thousands(moved)} moved to `);
        s.switches = s.switches.map((x, i) => (i === w.switchIndex ? { ...x, reason } : x));
      }
    },
  };
}

const thousands = (n: number): string => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
