/**
 * Groups ledger writes for accepted messages: every acceptance reported in the same turn of
 * the event loop (a Mailgun call's whole batch, or SMTP replies arriving together) is settled
 * in one transaction. Each caller's promise resolves only once its row is written, so a
 * provider adapter that awaits its report still never moves on before the ledger says so.
 */
export class AcceptedSettler {
  private queue: Array<{ seq: number; providerMessageId: string; done: () => void; fail: (err: unknown) => void }> = [];
  private scheduled = false;

  constructor(private readonly write: (settled: Array<{ seq: number; providerMessageId: string }>) => Promise<void>) {}

  settle(seq: number, providerMessageId: string): Promise<void> {
    return new Promise((done, fail) => {
      this.queue.push({ seq, providerMessageId, done, fail });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    const items = this.queue.splice(0);
    try {
      await this.write(items.map(({ seq, providerMessageId }) => ({ seq, providerMessageId })));
      for (const i of items) i.done();
    } catch (err) {
      for (const i of items) i.fail(err);
    }
  }
}
