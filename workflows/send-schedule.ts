/**
 * A campaign's schedule inside its workflow: its start time (`startAt`, from `campaign start --at`)
 * and its send window (the campaign file's `window`, see ./send-window.ts). The campaign workflow
 * asks it twice: once before its first batch (untilStart) and before dispatching each batch
 * (windowOpen). Waiting is a Temporal timer on workflow time (wf.condition with a timeout), so
 * cancel, pause and holds are answered while it waits; batches already dispatched are not cut.
 *
 * A campaign started with neither (every run recorded before them) never waits here and records
 * nothing new: the behaviour is gated on those input fields, not on a patch.
 */
import * as wf from '@temporalio/workflow';
import type { CampaignInput, CampaignProgress, CampaignStatus } from './campaign-api';
import { describeWindow, localTimeText, parseSendWindow, windowStateAt, type SendWindow } from './send-window';

export interface ScheduleHooks {
  cancelled: () => boolean;
  /** Paused or holding: a wait for the window ends, so that the campaign holds instead (and looks again once resumed). */
  paused: () => boolean;
  /** The status changed: search attributes and the Web UI details follow. */
  changed: () => void;
}

interface Wait {
  for: 'start' | 'send-window';
  /** epoch ms */
  until: number;
  reason: string;
}

/** A time for people: `2026-12-07 08:00:00 UTC`. */
export const utcText = (ms: number) => `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} UTC`;

export class CampaignSchedule {
  /** What is wrong with the schedule in the input (the launch checked it; a hand-made input may not be): the campaign is invalid. */
  readonly problem?: string;
  private readonly window?: SendWindow;
  private readonly startAt?: number;
  private wait?: Wait;
  /** The waitingUntil memo as last set (by the client at start, or here), so only changes are recorded. */
  private memo?: string;

  constructor(
    private readonly input: Pick<CampaignInput, 'startAt' | 'window' | 'carried'>,
    private readonly hooks: ScheduleHooks,
  ) {
    const problems: string[] = [];
    if (input.window !== undefined) {
      const r = parseSendWindow(input.window);
      if (r.window) this.window = r.window;
      else problems.push(...r.problems);
    }
    if (input.startAt !== undefined) {
      const at = typeof input.startAt === 'string' ? Date.parse(input.startAt) : NaN;
      if (Number.isNaN(at)) problems.push(`startAt: expected a time in ISO 8601, got ${JSON.stringify(input.startAt)}`);
      else this.startAt = at;
    }
    if (problems.length) this.problem = problems.join('; ');
    const memo = wf.workflowInfo().memo?.waitingUntil;
    if (typeof memo === 'string') this.memo = memo;
  }

  /** Before the first batch: wait for the start time (the first run only); a cancel ends the wait, a pause does not (it holds after). */
  async untilStart(): Promise<void> {
    const at = this.startAt;
    if (at === undefined || this.input.carried) return;
    while (!this.hooks.cancelled() && Date.now() < at) {
      await this.waitUntil({ for: 'start', until: at, reason: `to start at ${utcText(at)}` }, this.hooks.cancelled);
    }
  }

  /**
   * Before dispatching a batch: true when the window is open (or there is none). Else it waits until
   * the window opens, or it is paused or cancelled, and answers false: look again (the caller's loop
   * holds or stops first).
   */
  async windowOpen(): Promise<boolean> {
    const w = this.window;
    if (!w) return true;
    const state = windowStateAt(w, Date.now());
    if (state.open) return true;
    const until = state.opensAt;
    const reason = `for its send window (${describeWindow(w)}) until ${utcText(until)} (${localTimeText(until, w.zone)} ${w.zone})`;
    await this.waitUntil({ for: 'send-window', until, reason }, () => this.hooks.cancelled() || this.hooks.paused());
    return false;
  }

  /** The campaign's status with the wait shown: scheduled before its start, waiting outside its window (only instead of running). */
  status(base: CampaignStatus): CampaignStatus {
    if (base !== 'running' || !this.wait) return base;
    return this.wait.for === 'start' ? 'scheduled' : 'waiting';
  }

  /** The progress query's schedule fields (none for a campaign without a schedule). */
  progress(): Pick<CampaignProgress, 'scheduledFor' | 'sendWindow' | 'waitingUntil' | 'waitingFor' | 'waitReason'> {
    const w = this.wait;
    return {
      ...(this.startAt !== undefined ? { scheduledFor: new Date(this.startAt).toISOString() } : {}),
      ...(this.window ? { sendWindow: describeWindow(this.window) } : {}),
      ...(w ? { waitingUntil: new Date(w.until).toISOString(), waitingFor: w.for, waitReason: w.reason } : {}),
    };
  }

  private async waitUntil(wait: Wait, interrupted: () => boolean): Promise<void> {
    this.wait = wait;
    this.setMemo(new Date(wait.until).toISOString());
    this.hooks.changed();
    try {
      await wf.condition(interrupted, Math.max(1, wait.until - Date.now()));
    } finally {
      this.wait = undefined;
      this.setMemo(undefined);
      this.hooks.changed();
    }
  }

  /** `campaign list` reads when a scheduled or waiting campaign goes on from its memo (visibility has no query). */
  private setMemo(until: string | undefined) {
    if (until === this.memo) return;
    this.memo = until;
    wf.upsertMemo({ waitingUntil: until ?? null });
  }
}

/** One line on the wait for people: `scheduled to start at …`, `waiting for its send window (…) until …`. */
export function waitText(p: Pick<CampaignProgress, 'waitingFor' | 'waitReason'>): string | undefined {
  if (!p.waitingFor || !p.waitReason) return undefined;
  return `${p.waitingFor === 'start' ? 'scheduled' : 'waiting'} ${p.waitReason}`;
}
