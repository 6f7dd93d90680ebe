/**
 * The reputation breaker's windows in the store (src/store/reputation.ts), on SQLite and PostgreSQL:
 * which rows are sends, which of them hard-bounced (answer or later event) or complained, the
 * window of the last N, `since`, and other campaigns and providers kept apart.
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { openStore } from '../../src/store/open-store';
import type { DeliveryEventType, Store } from '../../src/store/types';
import { createScratchDatabase, type ScratchDatabase } from '../support/postgres';

let uniq = 0;
const id = (prefix: string) => `${prefix}-${process.pid}-${Date.now().toString(36)}-${++uniq}`;
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

function suite(name: 'sqlite' | 'postgres'): void {
  describe(`routing: reputation windows in the store (${name})`, function () {
    this.timeout(30_000);
    let store: Store;
    let dir: string | undefined;
    let pg: ScratchDatabase | undefined;

    before(async () => {
      if (name === 'postgres') {
        pg = await createScratchDatabase();
        store = await openStore({ databaseUrl: pg.url });
      } else {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailover-reputation-'));
        store = await openStore({ databaseUrl: '', sqlitePath: path.join(dir, 'mailover.db') });
      }
    });
    after(async () => {
      await store?.close();
      await pg?.drop();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    const email = (cid: string, seq: number) => `u${seq}.${cid}@example.com`;
    async function campaign(n: number): Promise<string> {
      const cid = id('rep');
      await store.createCampaign({ id: cid, from: 'news@mailover.test', template: { subject: 's', text: 't' }, providers: ['a', 'b'], batchSize: 10 });
      await store.importAudience(
        cid,
        range(1, n).map((seq) => ({ email: email(cid, seq), fields: {} })),
      );
      return cid;
    }
    /** Claimed, handed to `provider` and accepted, except the seqs left to the caller. */
    async function send(cid: string, from: number, to: number, provider: string, leave: number[] = []): Promise<void> {
      const token = id('claim');
      await store.claimRange(cid, from, to, provider, token);
      await store.markDispatched(cid, range(from, to), provider, token);
      for (const seq of range(from, to)) if (!leave.includes(seq)) await store.settleAccepted(cid, seq, provider, `<m${seq}@a>`);
    }
    async function event(cid: string, seq: number, type: DeliveryEventType, provider = 'a'): Promise<void> {
      await store.recordEvent({
        providerEventId: id('ev'),
        provider,
        type,
        occurredAt: new Date(),
        email: email(cid, seq),
        campaignId: cid,
        seq,
        reason: type,
      });
    }

    it('routing: sends are rows the provider answered for (accepted; rejected once handed over, or as a hard bounce); hard bounces come from answers and events, complaints from events, each row once', async () => {
      const cid = await campaign(39);
      await send(cid, 1, 30, 'a', [3, 4, 5]);
      await store.settleRejected(cid, 3, 'a', '550 5.1.1 no such user', true);
      await store.settleRejected(cid, 4, 'a', '550 5.1.1 no such user', true);
      await store.settleRejected(cid, 5, 'a', '552 mailbox full (soft bounce after the deferral window)', false);
      await event(cid, 3, 'failed-permanent'); // an answer and a DSN about one row: one hard bounce
      await event(cid, 26, 'failed-permanent'); // accepted, bounced afterwards
      await event(cid, 10, 'complained');
      await event(cid, 25, 'complained');
      await event(cid, 25, 'complained'); // a second report about the same message
      await event(cid, 12, 'delivered');
      await event(cid, 13, 'unsubscribed');
      // Rejected before it was handed over (a render failure): not a send.
      const t = id('claim');
      await store.claimRange(cid, 31, 31, 'a', t);
      await store.settleRejected(cid, 31, 'a', 'invalid message: missing field', false);
      // Handed over, not settled yet: not a send (yet).
      const t2 = id('claim');
      await store.claimRange(cid, 36, 36, 'a', t2);
      await store.markDispatched(cid, [36], 'a', t2);
      // A hard bounce answered before hand-over (SMTP refuses at RCPT TO) is a send; a soft refusal there is not.
      const t3 = id('claim');
      await store.claimRange(cid, 37, 38, 'a', t3);
      await store.settleRejected(cid, 37, 'a', '550 5.1.1 no such user (at RCPT TO)', true);
      await store.settleRejected(cid, 38, 'a', '552 5.2.2 mailbox full (at RCPT TO)', false);
      // Accepted in the same write as its dispatch mark (so it has no dispatched_at): a send all the same.
      const t4 = id('claim');
      await store.claimRange(cid, 39, 39, 'a', t4);
      await store.recordSends(cid, 'a', t4, { accepted: [{ seq: 39, providerMessageId: '<m39@a>' }], dispatch: [] });
      // Another provider of the same campaign.
      await send(cid, 32, 35, 'b');
      await event(cid, 33, 'complained', 'b');

      const windows = await store.sendWindows(cid, ['a', 'b', 'a', 'c'], { window: 100 });
      assert.deepEqual(windows, [
        { provider: 'a', sends: 32, hardBounces: 4, complaints: 2 },
        { provider: 'b', sends: 4, hardBounces: 0, complaints: 1 },
        { provider: 'c', sends: 0, hardBounces: 0, complaints: 0 },
      ]);
    });

    it('routing: the window is the last N sends (newest first), and `since` leaves out sends before it; other campaigns never count', async () => {
      const cid = await campaign(40);
      await send(cid, 1, 20, 'a');
      await event(cid, 2, 'complained');
      await event(cid, 19, 'complained');
      await event(cid, 20, 'failed-permanent');
      // The last 5 sends (settled last) are 16..20.
      assert.deepEqual(await store.sendWindows(cid, ['a'], { window: 5 }), [{ provider: 'a', sends: 5, hardBounces: 1, complaints: 1 }]);
      assert.deepEqual(await store.sendWindows(cid, ['a'], { window: 20 }), [{ provider: 'a', sends: 20, hardBounces: 1, complaints: 2 }]);

      // An operator resumed here: only later sends count.
      const before = Date.now();
      while (Date.now() === before) await new Promise((r) => setImmediate(r));
      const since = new Date();
      while (Date.now() === since.getTime()) await new Promise((r) => setImmediate(r));
      await send(cid, 21, 30, 'a');
      await event(cid, 30, 'complained');
      assert.deepEqual(await store.sendWindows(cid, ['a'], { window: 100, since }), [{ provider: 'a', sends: 10, hardBounces: 0, complaints: 1 }]);
      // Newer sends push older ones out of a window: the last 10 are all after `since`.
      assert.deepEqual(await store.sendWindows(cid, ['a'], { window: 10 }), [{ provider: 'a', sends: 10, hardBounces: 0, complaints: 1 }]);

      // Another campaign on the same provider, with complaints of its own: not this campaign's window.
      const other = await campaign(5);
      await send(other, 1, 5, 'a');
      for (const seq of range(1, 5)) await event(other, seq, 'complained');
      assert.deepEqual(await store.sendWindows(cid, ['a'], { window: 100 }), [{ provider: 'a', sends: 30, hardBounces: 1, complaints: 3 }]);
      assert.deepEqual(await store.sendWindows(other, ['a'], { window: 100 }), [{ provider: 'a', sends: 5, hardBounces: 0, complaints: 5 }]);
    });
  });
}

suite('sqlite');
suite('postgres');
