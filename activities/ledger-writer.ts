/**
 * Groups the hot ledger writes of a batch: acceptances to settle and messages about to be
 * handed to the provider. Everything asked for in the same turn of the event loop (a Mailgun
 * call's whole batch; SMTP replies and next dispatches arriving together) goes into one
 * transaction. Each caller's promise resolves only once its rows are written, so the order
 * the ledger protocol needs (dispatched before handed over) holds.
 *
 * One write at a time (group commit): what is asked for while a write is in flight waits for it
 * and then goes in the next write, all together. On PostgreSQL, where the write is an await on
 * the network and a commit, the SMTP path's replies and dispatch marks from its parallel
 * sessions then share commits instead of each taking its own (SQLite's synchronous writes
 * block the event loop, which grouped them there already).
 */
export interface LedgerWrites {
  accepted: Array<{ seq: number; providerMessageId: string }>;
  dispatch: number[];
}

export class LedgerWriter {
  private accepted: Array<{ seq: number; providerMessageId: string; done: () => void; fail: (err: unknown) => void }> = [];
  private dispatches: Array<{ seqs: number[]; done: (marked: Set<number>) => void; fail: (err: unknown) => void }> = [];
  private scheduled = false;
  private writing = false;

  /** Writes both kinds in one transaction; returns the seqs it marked dispatched. */
  constructor(private readonly write: (w: LedgerWrites) => Promise<number[]>) {}

  settleAccepted(seq: number, providerMessageId: string): Promise<void> {
    return new Promise((done, fail) => {
      this.accepted.push({ seq, providerMessageId, done, fail });
      this.schedule();
    });
  }

  /** Resolves with the seqs this attempt may hand over (rows another attempt took over are left out). */
  markDispatched(seqs: number[]): Promise<Set<number>> {
    return new Promise((done, fail) => {
      this.dispatches.push({ seqs, done, fail });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.writing) return;
    this.scheduled = true;
    setImmediate(() => void this.flush());
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    this.writing = true;
    const accepted = this.accepted.splice(0);
    const dispatches = this.dispatches.splice(0);
    try {
      const marked = new Set(
        await this.write({
          accepted: accepted.map(({ seq, providerMessageId }) => ({ seq, providerMessageId })),
          dispatch: dispatches.flatMap((d) => d.seqs),
        }),
      );
      for (const a of accepted) a.done();
      for (const d of dispatches) d.done(new Set(d.seqs.filter((s) => marked.has(s))));
    } catch (err) {
      for (const a of accepted) a.fail(err);
      for (const d of dispatches) d.fail(err);
    } finally {
      this.writing = false;
      // What came in meanwhile: the next write.
      if (this.accepted.length + this.dispatches.length) this.schedule();
    }
  }
}
