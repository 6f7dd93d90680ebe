import { strict as assert } from 'assert';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { describeStore, openStore } from '../../src/store/open-store';
import type { AudienceRow, Store } from '../../src/store/types';
import { createScratchDatabase } from '../support/postgres';
import { Client as PgClient } from 'pg';
import { sql } from 'kysely';
import type { KyselyStore } from '../../src/store/kysely-store';

interface Backend {
  /** Open a new, independent store (own connection / pool) on the same database. */
  open(): Promise<Store>;
  cleanup(): Promise<void>;
  /** PostgreSQL: the scratch database's URL. */
  url?: string;
}

let uniq = 0;
/** Unique id per call, so tests sharing one database never see each other's rows. */
function id(prefix: string): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${++uniq}`;
}

function audience(tag: string, n: number, start = 1): AudienceRow[] {
  return Array.from({ length: n }, (_, i) => ({
    email: `user${start + i}.${tag}@example.com`,
    fields: { first: `U${start + i}`, city: 'Paris' },
  }));
}

async function sqliteBackend(): Promise<Backend & { file: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailover-store-'));
  const file = path.join(dir, 'sub', 'mailover.db');
  return {
    file,
    open: () => openStore({ databaseUrl: '', sqlitePath: file }),
    cleanup: async () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

async function postgresBackend(): Promise<Backend> {
  const db = await createScratchDatabase();
  return { url: db.url, open: () => openStore({ databaseUrl: db.url }), cleanup: () => db.drop() };
}

function storeSuite(name: 'sqlite' | 'postgres', makeBackend: () => Promise<Backend>): void {
  describe(`store (${name})`, function () {
    this.timeout(20_000);
    let backend: Backend;
    let store: Store;
    const extra: Store[] = [];

    before(async function () {
      backend = await makeBackend();
      store = await backend.open();
    });

    after(async () => {
      for (const s of extra) await s.close();
      await store?.close();
      await backend?.cleanup();
    });

    async function another(): Promise<Store> {
      const s = await backend.open();
      extra.push(s);
      return s;
    }

    async function campaignWith(rows: AudienceRow[]): Promise<string> {
      const cid = id('c');
      await store.createCampaign({
        id: cid,
        from: 'news@example.com',
        template: { subject: 'Hi', text: 'Hello {{first}}' },
        providers: ['a', 'b'],
        batchSize: 10,
      });
      if (rows.length) await store.importAudience(cid, rows);
      return cid;
    }

    it('reports its dialect and a location without credentials', () => {
      assert.equal(store.dialect, name);
      const where = describeStore(store);
      assert.ok(where.startsWith(name === 'sqlite' ? 'sqlite:' : 'postgres://'), where);
      assert.ok(!where.includes('@'), where);
    });

    it('migrate is idempotent and keeps data', async () => {
      const cid = await campaignWith(audience('mig', 2));
      await store.migrate();
      await store.migrate();
      const again = await another(); // opening runs migrate() once more
      assert.equal(await again.countAudience(cid), 2);
      assert.equal(await store.countAudience(cid), 2);
    });

    it('round-trips a campaign definition', async () => {
      const cid = id('c');
      await store.createCampaign({
        id: cid,
        name: 'Spring sale',
        from: 'Shop <shop@example.com>',
        template: { subject: 'Sale {{first}}', text: 'Hi {{first}}', html: '<p>Hi {{first}}</p>' },
        providers: ['mailgun', 'smtp'],
        batchSize: 250,
      });
      const c = await store.getCampaign(cid);
      assert.ok(c);
      assert.equal(c.id, cid);
      assert.equal(c.name, 'Spring sale');
      assert.equal(c.from, 'Shop <shop@example.com>');
      assert.deepEqual(c.template, { subject: 'Sale {{first}}', text: 'Hi {{first}}', html: '<p>Hi {{first}}</p>' });
      assert.deepEqual(c.providers, ['mailgun', 'smtp']);
      assert.equal(c.batchSize, 250);
      assert.ok(c.createdAt instanceof Date && Math.abs(c.createdAt.getTime() - Date.now()) < 60_000);

      const noName = await campaignWith([]);
      assert.equal((await store.getCampaign(noName))!.name, undefined);
      assert.equal(await store.getCampaign(id('missing')), undefined);
      await assert.rejects(
        store.createCampaign({ id: cid, from: 'x@example.com', template: { subject: 's', text: 't' }, providers: [], batchSize: 1 }),
        /already exists/,
      );
    });

    it('importAudience assigns seq in order, continues after the max, and skips duplicates', async () => {
      const cid = await campaignWith([]);
      const first = await store.importAudience(cid, [
        { email: 'b@example.com', fields: { first: 'B' } },
        { email: 'a@example.com', fields: { first: 'A', city: 'Oslo' } },
        { email: 'B@Example.com', fields: { first: 'dup' } }, // same address, other case
      ]);
      assert.deepEqual(first, { inserted: 2, duplicates: 1 });
      const second = await store.importAudience(cid, [
        { email: 'a@example.com', fields: {} }, // already in the campaign
        { email: 'c@example.com', fields: { first: 'C' } },
      ]);
      assert.deepEqual(second, { inserted: 1, duplicates: 1 });
      assert.deepEqual(await store.importAudience(cid, []), { inserted: 0, duplicates: 0 });

      const rows = await store.listRecipients(cid);
      assert.deepEqual(
        rows.map((r) => [r.seq, r.email, r.state, r.attempts, r.inFlightRecoveries, r.provider]),
        [
          [1, 'b@example.com', 'pending', 0, 0, null],
          [2, 'a@example.com', 'pending', 0, 0, null],
          [3, 'c@example.com', 'pending', 0, 0, null],
        ],
      );
      assert.deepEqual(rows[1]!.fields, { first: 'A', city: 'Oslo' });
      assert.ok(rows[0]!.createdAt instanceof Date && rows[0]!.updatedAt instanceof Date);
      assert.equal(await store.countAudience(cid), 3);
      assert.equal(await store.maxSeq(cid), 3);
      assert.equal(await store.maxSeq(id('empty')), 0);
      assert.equal(await store.countAudience(id('empty')), 0);

      // the same address in another campaign is not a duplicate
      const other = await campaignWith([{ email: 'a@example.com', fields: {} }]);
      assert.equal(await store.countAudience(other), 1);
    });

    it('imports a large audience in one call', async () => {
      const cid = await campaignWith([]);
      const r = await store.importAudience(cid, audience('big', 2500));
      assert.deepEqual(r, { inserted: 2500, duplicates: 0 });
      assert.equal(await store.maxSeq(cid), 2500);
    });

    it('refreshPlannerStats before a campaign sends: PostgreSQL has statistics of a freshly imported ledger (SQLite: nothing to do)', async () => {
      const cid = await campaignWith(audience('stats', 1200));
      await store.refreshPlannerStats();
      if (!backend.url) return;
      const pg = new PgClient({ connectionString: backend.url });
      await pg.connect();
      try {
        // ANALYZE sets pg_class.reltuples at once (-1 for a table never analyzed or vacuumed).
        const { rows } = await pg.query<{ tuples: number }>(`select reltuples as tuples from pg_class where relname = 'recipients'`);
        assert.ok(Number(rows[0]?.tuples) >= 1200, `the planner knows the rows (${rows[0]?.tuples}) of ${cid}`);
      } finally {
        await pg.end();
      }
    });

    it('lists merge-field names and rows missing fields', async () => {
      const cid = await campaignWith([
        { email: 'f1@example.com', fields: { first: 'A', city: 'X' } },
        { email: 'f2@example.com', fields: { first: '', city: 'Y' } },
        { email: 'f3@example.com', fields: { city: 'Z', 'plan tier': 'gold' } },
        { email: 'f4@example.com', fields: { first: '  ', city: '' } },
        { email: 'f5@example.com', fields: { first: 'E', city: 'W' } },
      ]);
      assert.deepEqual(await store.audienceFieldNames(cid), ['city', 'first', 'plan tier']);
      assert.deepEqual(await store.rowsMissingFields(cid, ['first', 'city'], 10), [
        { seq: 2, missing: ['first'] },
        { seq: 3, missing: ['first'] },
        { seq: 4, missing: ['first', 'city'] },
      ]);
      assert.deepEqual(await store.rowsMissingFields(cid, ['first'], 1), [{ seq: 2, missing: ['first'] }]);
      assert.deepEqual(await store.rowsMissingFields(cid, ['city'], 10), [{ seq: 4, missing: ['city'] }]);
      assert.deepEqual(await store.rowsMissingFields(cid, [], 10), []);
    });

    it('claimRange moves pending to sending and suppresses suppressed addresses', async () => {
      const tag = id('claim');
      const cid = await campaignWith(audience(tag, 6));
      await store.addSuppression(`USER2.${tag}@Example.com`, 'unsubscribed', 'test');

      const r = await store.claimRange(cid, 1, 4, 'a', 'tok-a');
      assert.deepEqual(
        r.claimed.map((x) => x.seq),
        [1, 3, 4],
      );
      assert.equal(r.suppressed, 1);
      assert.deepEqual(r.inFlight, []);
      for (const row of r.claimed) {
        assert.equal(row.state, 'sending');
        assert.equal(row.provider, 'a');
        assert.equal(row.attempts, 1);
        assert.equal(row.inFlightRecoveries, 0);
        assert.deepEqual(row.fields, { first: `U${row.seq}`, city: 'Paris' });
      }
      const rows = await store.listRecipients(cid);
      assert.deepEqual(
        rows.map((x) => x.state),
        ['sending', 'suppressed', 'sending', 'sending', 'pending', 'pending'],
      );
      assert.match(rows[1]!.lastError ?? '', /suppressed/);
      assert.equal(rows[1]!.attempts, 0);
    });

    it('countInFlight counts rows in state sending across campaigns (claimed or dispatched) and drops them once settled or released', async () => {
      const base = await store.countInFlight(); // other tests of this suite share the database
      const c1 = await campaignWith(audience(id('cif1'), 5));
      const c2 = await campaignWith(audience(id('cif2'), 3));
      await store.claimRange(c1, 1, 4, 'a', 't1');
      await store.claimRange(c2, 1, 3, 'b', 't2');
      assert.equal(await store.countInFlight(), base + 7);
      await store.markDispatched(c1, [1, 2], 'a', 't1');
      assert.equal(await store.countInFlight(), base + 7, 'dispatched rows are still in flight');
      await store.settleAccepted(c1, 1, 'a', 'm-1');
      await store.settleRejected(c2, 1, 'b', 'mailbox unavailable', false);
      await store.release(c2, [2], 'connection refused', 't2');
      assert.equal(await store.countInFlight(), base + 4);
    });

    it('claimRange reports rows handed to a provider but never settled as in flight, keeping their provider', async () => {
      const tag = id('inflight');
      const cid = await campaignWith(audience(tag, 6));
      await store.claimRange(cid, 1, 4, 'a', 'tok-a');
      await store.markDispatched(cid, [1, 2, 3], 'a', 'tok-a'); // seq 4 claimed but never handed over
      await store.settleAccepted(cid, 2, 'a', 'msg-2'); // then "crash": 1 and 3 never settled

      const r = await store.claimRange(cid, 1, 6, 'b', 'tok-b');
      assert.deepEqual(
        r.inFlight.map((x) => x.seq),
        [1, 3],
      );
      assert.deepEqual(
        r.claimed.map((x) => x.seq),
        [4, 5, 6],
        'a row claimed but never dispatched is certainly unsent: claimed again',
      );
      assert.equal(r.suppressed, 0);
      for (const row of r.inFlight) {
        assert.equal(row.state, 'sending');
        assert.equal(row.inFlightRecoveries, 1);
        assert.equal(row.attempts, 1);
        assert.equal(row.provider, 'a', 'in-flight rows keep the provider they were handed to');
      }
      assert.equal(r.claimed[0]!.inFlightRecoveries, 0);
      assert.equal(r.claimed[0]!.provider, 'b');
      await store.markDispatched(cid, [4, 5, 6], 'b', 'tok-b');
      const again = await store.claimRange(cid, 1, 6, 'b', 'tok-b');
      assert.deepEqual(again.claimed, []);
      assert.deepEqual(
        again.inFlight.map((x) => [x.seq, x.inFlightRecoveries]),
        [
          [1, 2],
          [3, 2],
          [4, 1],
          [5, 1],
          [6, 1],
        ],
      );
      const accepted = (await store.listRecipients(cid))[1]!;
      assert.equal(accepted.state, 'accepted');
      assert.equal(accepted.inFlightRecoveries, 0);
    });

    it('settleAccepted records provider and message id; settling twice changes nothing', async () => {
      const cid = await campaignWith(audience(id('acc'), 2));
      await store.claimRange(cid, 1, 2, 'a', 'tok-a');
      await store.settleAccepted(cid, 1, 'a', 'msg-1');
      await store.settleAccepted(cid, 1, 'b', 'msg-other');
      const [row] = await store.listRecipients(cid);
      assert.equal(row!.state, 'accepted');
      assert.equal(row!.provider, 'a');
      assert.equal(row!.providerMessageId, 'msg-1');
      assert.equal(row!.lastError, null);
    });

    it('recordSends: a whole API call (one provider id, more rows than one IN list) and single SMTP replies settle with the right ids; settled rows keep theirs; dispatch marks only this claim', async () => {
      const n = 1000;
      const cid = await campaignWith(audience(id('group'), n));
      await store.claimRange(cid, 1, n, 'a', 'tok-g');
      await store.settleRejected(cid, 5, 'a', 'mailbox unavailable', false);
      await store.recordSends(cid, 'a', 'tok-g', { accepted: [{ seq: 7, providerMessageId: '<smtp-7>' }], dispatch: [] });
      const call = Array.from({ length: 995 }, (_, i) => i + 1).filter((s) => s !== 7);
      const marked = await store.recordSends(cid, 'a', 'tok-g', {
        // The call's rows, a row settled before (5: rejected, 7: accepted) and another id in the same write.
        accepted: [...call.map((seq) => ({ seq, providerMessageId: 'mg-call-1' })), { seq: 996, providerMessageId: '<smtp-996>' }],
        dispatch: [997, 998],
      });
      assert.deepEqual(marked, [997, 998]);
      assert.deepEqual(await store.recordSends(cid, 'a', 'other-claim', { accepted: [], dispatch: [999] }), [], 'not our claim');
      assert.deepEqual(await store.recordSends(cid, 'a', 'tok-g', { accepted: [], dispatch: [999] }), [999]);
      const rows = await store.listRecipients(cid);
      const bySeq = new Map(rows.map((r) => [r.seq, r]));
      assert.equal(bySeq.get(5)!.state, 'rejected', 'a rejected row stays rejected');
      assert.equal(bySeq.get(7)!.providerMessageId, '<smtp-7>', 'an accepted row keeps its id');
      assert.equal(bySeq.get(996)!.providerMessageId, '<smtp-996>');
      for (const seq of call.filter((s) => s !== 5)) {
        assert.equal(bySeq.get(seq)!.state, 'accepted', `seq ${seq}`);
        assert.equal(bySeq.get(seq)!.providerMessageId, 'mg-call-1', `seq ${seq}`);
      }
      for (const seq of [997, 998, 999]) assert.equal(bySeq.get(seq)!.state, 'sending');
      assert.equal(bySeq.get(1000)!.state, 'sending');
      const tally = await store.tallyRange(cid, 1, n);
      assert.deepEqual([tally.accepted['a'], tally.rejected, tally.sending], [995, 1, 4]);
    });

    it('recordSends: SMTP replies and next dispatch marks in one write settle and mark; a row both accepted and dispatched in one write is accepted, not marked', async () => {
      const cid = await campaignWith(audience(id('smtpw'), 6));
      await store.claimRange(cid, 1, 6, 'a', 'tok-s');
      assert.deepEqual(await store.recordSends(cid, 'a', 'tok-s', { accepted: [], dispatch: [1, 2] }), [1, 2]);
      const marked = await store.recordSends(cid, 'a', 'tok-s', {
        accepted: [
          { seq: 1, providerMessageId: '<a"b\\c,{1}@x>' },
          { seq: 2, providerMessageId: '<m2>' },
        ],
        dispatch: [4, 3],
      });
      assert.deepEqual(marked, [3, 4]);
      assert.deepEqual(await store.recordSends(cid, 'a', 'tok-s', { accepted: [{ seq: 5, providerMessageId: '<m5>' }], dispatch: [5, 6] }), [6]);
      const bySeq = new Map((await store.listRecipients(cid)).map((r) => [r.seq, r]));
      assert.deepEqual(
        [1, 2, 3, 4, 5, 6].map((s) => [bySeq.get(s)!.state, bySeq.get(s)!.providerMessageId, bySeq.get(s)!.dispatchedAt !== null]),
        [
          ['accepted', '<a"b\\c,{1}@x>', true],
          ['accepted', '<m2>', true],
          ['sending', null, true],
          ['sending', null, true],
          ['accepted', '<m5>', false],
          ['sending', null, true],
        ],
      );
    });

    it('settleRejected records the reason; a hard bounce adds the address to the suppression list', async () => {
      const tag = id('rej');
      const cid = await campaignWith(audience(tag, 3));
      await store.claimRange(cid, 1, 3, 'mailgun', 'tok-mailgun');
      await store.settleRejected(cid, 1, 'mailgun', '552 mailbox full', false);
      await store.settleRejected(cid, 2, 'mailgun', '550 no such user', true);
      await store.settleRejected(cid, 2, 'mailgun', '550 again', true); // idempotent

      const rows = await store.listRecipients(cid);
      assert.deepEqual(
        rows.map((r) => [r.state, r.lastError]),
        [
          ['rejected', '552 mailbox full'],
          ['rejected', '550 no such user'],
          ['sending', null],
        ],
      );
      assert.equal(await store.isSuppressed(`user1.${tag}@example.com`), false);
      assert.equal(await store.isSuppressed(`USER2.${tag}@example.com`), true);
      const sup = (await store.listSuppressions()).find((s) => s.email === `user2.${tag}@example.com`);
      assert.ok(sup);
      assert.equal(sup.source, 'mailgun');
      assert.match(sup.reason, /550 no such user/);
      assert.ok(sup.createdAt instanceof Date);

      // the suppression applies to every campaign and provider
      const next = await campaignWith([{ email: `user2.${tag}@example.com`, fields: {} }]);
      const claim = await store.claimRange(next, 1, 1, 'smtp', 'tok-smtp');
      assert.equal(claim.suppressed, 1);
      assert.deepEqual(claim.claimed, []);
    });

    it('release puts sending rows back to pending with the error; settled rows are untouched', async () => {
      const cid = await campaignWith(audience(id('rel'), 3));
      await store.claimRange(cid, 1, 3, 'a', 'tok-a');
      await store.settleAccepted(cid, 3, 'a', 'm3');
      await store.release(cid, [1, 2, 3], 'connection refused', 'tok-a');
      await store.release(cid, [], 'nothing', 'tok-a');
      let rows = await store.listRecipients(cid);
      assert.deepEqual(
        rows.map((r) => [r.state, r.lastError]),
        [
          ['pending', 'connection refused'],
          ['pending', 'connection refused'],
          ['accepted', null],
        ],
      );
      const r = await store.claimRange(cid, 1, 3, 'b', 'tok-b');
      assert.deepEqual(
        r.claimed.map((x) => [x.seq, x.attempts, x.provider]),
        [
          [1, 2, 'b'],
          [2, 2, 'b'],
        ],
      );
      rows = await store.listRecipients(cid);
      assert.equal(rows[2]!.provider, 'a');
    });

    it('tallyRange counts final states, accepted by provider, and recovered rows', async () => {
      const tag = id('tally');
      const cid = await campaignWith(audience(tag, 8));
      await store.addSuppression(`user8.${tag}@example.com`, 'complaint', 'test');
      await store.claimRange(cid, 1, 3, 'a', 'tok-a');
      await store.markDispatched(cid, [1, 2, 3], 'a', 'tok-a');
      await store.settleAccepted(cid, 1, 'a', 'm1');
      await store.settleAccepted(cid, 2, 'a', 'm2');
      await store.claimRange(cid, 3, 6, 'b', 'tok-b'); // seq 3 found in flight
      await store.settleAccepted(cid, 3, 'b', 'm3');
      await store.settleAccepted(cid, 4, 'b', 'm4');
      await store.settleRejected(cid, 5, 'b', 'bad', false);
      await store.claimRange(cid, 8, 8, 'b', 'tok-b');

      assert.deepEqual(await store.tallyRange(cid, 1, 8), {
        accepted: { a: 2, b: 2 },
        rejected: 1,
        suppressed: 1,
        pending: 1,
        sending: 1,
        inFlightRecovered: 1,
        deferred: 0,
        held: 0,
      });
      assert.deepEqual(await store.tallyRange(cid, 1, 2), {
        accepted: { a: 2 },
        rejected: 0,
        suppressed: 0,
        pending: 0,
        sending: 0,
        inFlightRecovered: 0,
        deferred: 0,
        held: 0,
      });
    });

    it('manages the suppression list case-insensitively', async () => {
      const email = `${id('sup')}@Example.COM`;
      await store.addSuppression(email, 'unsubscribed', 'link');
      await store.addSuppression(email.toUpperCase(), 'complaint', 'fbl'); // first one wins
      assert.equal(await store.isSuppressed(email.toLowerCase()), true);
      const row = (await store.listSuppressions()).find((s) => s.email === email.toLowerCase());
      assert.deepEqual(row && [row.reason, row.source], ['unsubscribed', 'link']);
      assert.equal(await store.removeSuppression(email), true);
      assert.equal(await store.removeSuppression(email), false);
      assert.equal(await store.isSuppressed(email), false);
    });

    it('addSuppressions adds many addresses at once (over several statements), counts only new ones and keeps an existing entry as it was', async () => {
      const tag = id('bulk');
      await store.addSuppression(`x7.${tag}@example.com`, 'complaint', 'fbl');
      const emails = Array.from({ length: 1234 }, (_, i) => `X${i}.${tag}@Example.com`);
      assert.equal(await store.addSuppressions(emails, 'imported', 'cli import'), 1233);
      assert.equal(await store.addSuppressions(emails.slice(0, 10), 'again', 'cli import'), 0);
      const rows = (await store.listSuppressions()).filter((r) => r.email.endsWith(`.${tag}@example.com`));
      assert.equal(rows.length, 1234);
      assert.deepEqual(rows.find((r) => r.email === `x7.${tag}@example.com`) && [rows.find((r) => r.email === `x7.${tag}@example.com`)!.reason], ['complaint']);
      assert.equal(rows.filter((r) => r.reason === 'imported').length, 1233);
      assert.equal(await store.addSuppressions([], 'none', 'cli import'), 0);
    });

    it('concurrent claim-then-dispatch of the same ranges from two connections hands every row to exactly one claimer', async () => {
      const n = 400;
      const cid = await campaignWith(audience(id('conc'), n));
      const s2 = await another();
      const dispatchedBy = new Map<number, string>();
      const claimAndDispatch = async (s: Store, who: string, from: number, to: number) => {
        const r = await s.claimRange(cid, from, to, who, `tok-${who}`);
        const sent = await s.markDispatched(
          cid,
          r.claimed.map((x) => x.seq),
          who,
          `tok-${who}`,
        );
        for (const seq of sent) {
          assert.equal(dispatchedBy.get(seq), undefined, `seq ${seq} dispatched by ${dispatchedBy.get(seq)} and ${who}`);
          dispatchedBy.set(seq, who);
        }
      };
      const step = 10;
      const jobs: Promise<void>[] = [];
      for (let from = 1; from <= n; from += step) {
        // overlapping ranges, both connections at once
        jobs.push(claimAndDispatch(store, 'a', from, from + step - 1));
        jobs.push(claimAndDispatch(s2, 'b', from + 5, from + step + 4));
      }
      await Promise.all(jobs);
      assert.equal(dispatchedBy.size, n, 'every row dispatched once');
      const byA = [...dispatchedBy.values()].filter((w) => w === 'a').length;
      assert.ok(byA > 0 && byA < n, `both connections dispatched rows (a: ${byA}, b: ${n - byA})`);
      const rows = await store.listRecipients(cid);
      assert.ok(rows.every((r) => r.state === 'sending' && r.provider === dispatchedBy.get(r.seq)));
    });

    it('settleDeferred: a recipient answered "later" waits with its own backoff (doubling, capped), then is rejected as a soft bounce once the window is over, never suppressed', async () => {
      const cid = await campaignWith(audience(id('defer'), 2));
      const policy = { firstRetryMs: 60_000, maxRetryMs: 150_000, windowMs: 600_000 };
      const t0 = new Date('2026-12-01T10:00:00.000Z');
      await store.claimRange(cid, 1, 2, 'a', 'tok-a');
      const first = await store.settleDeferred(cid, 1, 'a', 'a: mailbox full (452 4.2.2)', policy, t0);
      assert.deepEqual(first, { state: 'deferred', deferUntil: new Date(t0.getTime() + 60_000) });
      let row = (await store.getRecipients(cid, [1]))[0]!;
      assert.equal(row.state, 'deferred');
      assert.equal(row.deferrals, 1);
      assert.equal(row.deferredSince?.toISOString(), t0.toISOString());
      assert.equal(row.lastError, 'a: mailbox full (452 4.2.2)');
      assert.equal((await store.nextDeferral(cid))?.toISOString(), '2026-12-01T10:01:00.000Z');
      await store.settleAccepted(cid, 2, 'a', '<id-2>');
      // Not due yet: a sweep at t0 takes nothing; at its time it takes it (back to sending).
      const early = await store.claimSweep(cid, 'a', 'tok-s1', { upToSeq: 2, limit: 10, now: t0 });
      assert.deepEqual(
        [...early.claimed, ...early.inFlight].map((r) => r.seq),
        [],
      );
      const t1 = new Date(t0.getTime() + 60_000);
      const due = await store.claimSweep(cid, 'a', 'tok-s2', { upToSeq: 2, limit: 10, now: t1 });
      assert.deepEqual(
        due.claimed.map((r) => r.seq),
        [1],
      );
      assert.equal(due.fromDeferred, 1);
      assert.equal(due.fromPending, 0);
      const second = await store.settleDeferred(cid, 1, 'a', 'a: mailbox full (452 4.2.2)', policy, t1);
      assert.deepEqual(second, { state: 'deferred', deferUntil: new Date(t1.getTime() + 120_000) }, 'doubled');
      const t2 = new Date(t1.getTime() + 120_000);
      await store.claimSweep(cid, 'a', 'tok-s3', { upToSeq: 1, limit: 10, now: t2 });
      const third = await store.settleDeferred(cid, 1, 'a', 'a: mailbox full (452 4.2.2)', policy, t2, 10_000);
      assert.deepEqual(third, { state: 'deferred', deferUntil: new Date(t2.getTime() + 150_000) }, 'capped at maxRetryMs');
      const t3 = new Date(t0.getTime() + 600_000);
      await store.claimSweep(cid, 'a', 'tok-s4', { upToSeq: 1, limit: 10, now: t3 });
      const last = await store.settleDeferred(cid, 1, 'a', 'a: mailbox full (452 4.2.2)', policy, t3);
      assert.equal(last.state, 'rejected');
      assert.match(
        last.state === 'rejected' ? last.reason : '',
        /^soft bounce: deferred 4 times over 10 min \(deferral window 10 min\); last answer: a: mailbox full \(452 4\.2\.2\)$/,
      );
      row = (await store.getRecipients(cid, [1]))[0]!;
      assert.equal(row.state, 'rejected');
      assert.equal(await store.isSuppressed(row.email), false, 'a soft bounce is never suppressed');
      assert.equal(await store.nextDeferral(cid), undefined);
    });

    it('holdRows, listHeld and releaseHeld: held rows are listed with why and since; mark-sent settles them accepted and resend puts them back to pending, recording who and when', async () => {
      const cid = await campaignWith(audience(id('held'), 6));
      await store.claimRange(cid, 1, 6, 'a', 'tok-a');
      await store.markDispatched(cid, [1, 2, 3, 4, 5], 'a', 'tok-a');
      await store.holdRows(cid, [2, 3, 5], 'in doubt: reply lost');
      const held = await store.listHeld(cid);
      assert.deepEqual(
        held.map((h) => [h.seq, h.provider, h.reason]),
        [
          [2, 'a', 'in doubt: reply lost'],
          [3, 'a', 'in doubt: reply lost'],
          [5, 'a', 'in doubt: reply lost'],
        ],
      );
      assert.ok(held.every((h) => h.heldAt instanceof Date && h.email.includes('@')));
      const tally = await store.tallyRange(cid, 1, 6);
      assert.equal(tally.held, 3);
      // A held row is not claimed again by a later attempt on its range, nor swept.
      const again = await store.claimRange(cid, 1, 6, 'a', 'tok-b');
      assert.deepEqual([...again.claimed, ...again.inFlight].map((r) => r.seq).sort(), [1, 4, 6]);
      assert.deepEqual(
        (await store.claimSweep(cid, 'a', 'tok-c', { upToSeq: 6, limit: 10, now: new Date() })).claimed.map((r) => r.seq),
        [6],
      );

      const marked = await store.releaseHeld(cid, { action: 'mark-sent', fromSeq: 1, toSeq: 2, by: 'alice' });
      assert.deepEqual(marked, { released: 1, acceptedByProvider: { a: 1 }, ranges: [[2, 2]] });
      const two = (await store.getRecipients(cid, [2]))[0]!;
      assert.equal(two.state, 'accepted');
      assert.equal(two.releasedBy, 'alice');
      assert.ok(two.releasedAt instanceof Date);
      assert.match(two.lastError ?? '', /^marked sent by alice at .* \(held: in doubt: reply lost\)$/);

      const resent = await store.releaseHeld(cid, { action: 'resend', by: 'bob' });
      assert.deepEqual(resent, {
        released: 2,
        acceptedByProvider: {},
        ranges: [
          [3, 3],
          [5, 5],
        ],
      });
      const rows = await store.getRecipients(cid, [3, 5]);
      assert.ok(rows.every((r) => r.state === 'pending' && r.releasedBy === 'bob' && r.dispatchedAt === null));
      assert.deepEqual(await store.listHeld(cid), []);
      assert.deepEqual(
        await store.releaseHeld(cid, { action: 'resend', by: 'bob' }),
        { released: 0, acceptedByProvider: {}, ranges: [] },
        'nothing left to release',
      );
      // Released rows behind the cursor are what a sweep sends.
      const sweep = await store.claimSweep(cid, 'a', 'tok-d', { upToSeq: 6, limit: 10, now: new Date() });
      assert.deepEqual(
        sweep.claimed.map((r) => r.seq),
        [3, 5, 6],
      );
      assert.equal(sweep.fromPending, 2);
      assert.deepEqual((await store.tallyRows(cid, [2, 3, 5])).accepted, { a: 1 });
    });

    it('markDispatched only marks rows the claim still holds; a later claimer takes over undispatched rows', async () => {
      const cid = await campaignWith(audience(id('lease'), 3));
      await store.claimRange(cid, 1, 3, 'a', 'tok-a');
      assert.deepEqual(await store.markDispatched(cid, [1], 'a', 'tok-a'), [1]);
      const b = await store.claimRange(cid, 1, 3, 'b', 'tok-b'); // a crashed or stalled: b takes over
      assert.deepEqual(
        b.claimed.map((x) => x.seq),
        [2, 3],
      );
      assert.deepEqual(
        b.inFlight.map((x) => x.seq),
        [1],
      );
      assert.deepEqual(await store.markDispatched(cid, [2, 3], 'a', 'tok-a'), [], 'the old attempt may not send rows taken over');
      await store.release(cid, [2, 3], 'old attempt gave up', 'tok-a');
      assert.ok(
        (await store.listRecipients(cid)).slice(1).every((r) => r.state === 'sending'),
        'release by the old attempt leaves the new claim alone',
      );
      assert.deepEqual(await store.markDispatched(cid, [2, 3], 'b', 'tok-b'), [2, 3]);
    });

    it('reserveSends grants up to the per-second limit and says when capacity frees up', async () => {
      const provider = id('rate-s');
      const t0 = 1_700_000_000_000;
      assert.deepEqual(await store.reserveSends(provider, 15, { perSecond: 10 }, t0), { granted: 10, retryAfterMs: 1_000 });
      assert.deepEqual(await store.reserveSends(provider, 5, { perSecond: 10 }, t0 + 400), { granted: 0, retryAfterMs: 600 });
      assert.deepEqual(await store.reserveSends(provider, 5, { perSecond: 10 }, t0 + 1_000), { granted: 5, retryAfterMs: 0 });
      assert.deepEqual(
        await store.reserveSends(id('rate-other'), 10, { perSecond: 10 }, t0 + 1_000),
        { granted: 10, retryAfterMs: 0 },
        'limits are per provider',
      );
    });

    it('reserveSends holds a sliding window (e.g. per hour) together with the per-second limit', async () => {
      const provider = id('rate-w');
      const limits = { perSecond: 100, perWindow: { max: 150, windowMs: 60_000 } };
      const t0 = 1_700_000_000_000;
      assert.equal((await store.reserveSends(provider, 100, limits, t0)).granted, 100);
      assert.equal((await store.reserveSends(provider, 100, limits, t0 + 1_000)).granted, 50);
      const full = await store.reserveSends(provider, 10, limits, t0 + 2_000);
      assert.deepEqual(full, { granted: 0, retryAfterMs: 58_000 }, 'the first grant leaves the window after a minute');
      assert.equal((await store.reserveSends(provider, 100, limits, t0 + 60_000)).granted, 100);
    });

    it('reserveSends from two connections at once never grants more than the limit', async () => {
      const provider = id('rate-c');
      const s2 = await another();
      const t = 1_700_000_000_000;
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? store : s2).reserveSends(provider, 3, { perSecond: 25 }, t)));
      assert.equal(
        results.reduce((n, r) => n + r.granted, 0),
        25,
      );
    });

    it('campaign compliance fields (transactional, postal address, list) round-trip', async () => {
      const cid = id('compliance');
      await store.createCampaign({
        id: cid,
        from: 'a@example.com',
        template: { subject: 's', text: 't' },
        providers: ['p'],
        batchSize: 10,
        postalAddress: '1 Main St',
        list: 'weekly',
        transactional: true,
      });
      const c = await store.getCampaign(cid);
      assert.equal(c?.postalAddress, '1 Main St');
      assert.equal(c?.list, 'weekly');
      assert.equal(c?.transactional, true);
      assert.ok((await store.listCampaignIds()).includes(cid));
    });

    it('a database created before the compliance fields gains their column on migrate (old rows read as marketing, no postal address)', async () => {
      const old = id('old');
      await store.createCampaign({ id: old, from: 'a@example.com', template: { subject: 's', text: 't' }, providers: ['p'], batchSize: 10 });
      await sql`alter table campaigns drop column compliance_json`.execute((store as KyselyStore).db);
      await store.migrate();
      await store.migrate(); // idempotent
      const before = await store.getCampaign(old);
      assert.equal(before?.transactional, undefined);
      assert.equal(before?.postalAddress, undefined);
      const fresh = id('after-migrate');
      await store.createCampaign({
        id: fresh,
        from: 'a@example.com',
        template: { subject: 's', text: 't' },
        providers: ['p'],
        batchSize: 10,
        postalAddress: '2 High St',
      });
      assert.equal((await store.getCampaign(fresh))?.postalAddress, '2 High St');
    });

    it('a provider event is stored once, linked to its ledger row by campaign and seq of that address, and suppresses in the same transaction', async () => {
      const cid = id('events');
      await store.createCampaign({ id: cid, from: 'a@example.com', template: { subject: 's', text: 't' }, providers: ['p'], batchSize: 10 });
      await store.importAudience(cid, audience(cid, 3));
      const email = `user2.${cid}@example.com`;
      const event = {
        provider: 'mailgun',
        providerEventId: `ev-${cid}`,
        type: 'complained' as const,
        occurredAt: new Date('2026-01-02T03:04:05Z'),
        email: email.toUpperCase(),
        campaignId: cid,
        seq: 2,
        reason: 'abuse',
      };
      const first = await store.recordEvent(event, { reason: 'complaint (mailgun): abuse', source: 'mailgun' });
      assert.deepEqual(first, { recorded: true, linked: true, suppressed: true });
      assert.equal(await store.isSuppressed(email), true);
      const again = await store.recordEvent(event, { reason: 'complaint (mailgun): abuse', source: 'mailgun' });
      assert.deepEqual(again, { recorded: false, linked: true, suppressed: false }, 'a repeated event changes nothing');
      const events = await store.listEvents({ campaignId: cid });
      assert.equal(events.length, 1);
      assert.deepEqual(
        { ...events[0], receivedAt: undefined },
        {
          id: `mailgun:ev-${cid}`,
          provider: 'mailgun',
          type: 'complained',
          occurredAt: new Date('2026-01-02T03:04:05Z'),
          receivedAt: undefined,
          email,
          campaignId: cid,
          seq: 2,
          reason: 'abuse',
        },
      );
      // An identity naming another address's row links nothing.
      const wrong = await store.recordEvent({ ...event, providerEventId: `ev2-${cid}`, email: `someone.${cid}@example.com`, seq: 1 });
      assert.deepEqual(wrong, { recorded: true, linked: false, suppressed: false });
      assert.equal((await store.listEvents({ email: `someone.${cid}@example.com` }))[0].campaignId, null);
    });

    it('a list-scoped suppression skips the address only in campaigns of that list', async () => {
      const [a, b] = [id('list-a'), id('list-b')];
      const list = id('newsletter');
      await store.createCampaign({ id: a, from: 'a@example.com', template: { subject: 's', text: 't' }, providers: ['p'], batchSize: 10, list });
      await store.createCampaign({ id: b, from: 'a@example.com', template: { subject: 's', text: 't' }, providers: ['p'], batchSize: 10 });
      const shared = [
        { email: `shared.${list}@example.com`, fields: {} },
        { email: `other.${list}@example.com`, fields: {} },
      ];
      await store.importAudience(a, shared);
      await store.importAudience(b, shared);
      await store.addListSuppression(list, shared[0].email, 'unsubscribed', 'test');
      const inList = await store.claimRange(a, 1, 2, 'p', 't1');
      assert.equal(inList.suppressed, 1);
      assert.deepEqual(
        inList.claimed.map((r) => r.email),
        [shared[1].email],
      );
      assert.match((await store.listRecipients(a))[0].lastError ?? '', new RegExp(`suppressed for list ${list}: unsubscribed`));
      const otherList = await store.claimRange(b, 1, 2, 'p', 't2');
      assert.equal(otherList.suppressed, 0, 'a campaign of another list still sends to it');
      assert.equal(otherList.claimed.length, 2);
      assert.ok((await store.listListSuppressions()).some((r) => r.list === list && r.email === shared[0].email));
    });

    it('a webhook token is accepted once; a replay is refused; old tokens are forgotten', async () => {
      const token = id('tok');
      assert.equal(await store.rememberWebhookToken('mailgun', token, new Date(Date.now() - 60_000)), true);
      assert.equal(await store.rememberWebhookToken('mailgun', token, new Date(Date.now() - 60_000)), false, 'replayed');
      assert.equal(await store.rememberWebhookToken('other', token, new Date(Date.now() - 60_000)), true, 'per provider');
      await store.forgetWebhookToken('mailgun', token);
      assert.equal(await store.rememberWebhookToken('mailgun', token, new Date(Date.now() - 60_000)), true, 'forgotten after a failed processing');
      // Everything seen before "now + 1 s" is dropped: the token is new again.
      assert.equal(await store.rememberWebhookToken('mailgun', token, new Date(Date.now() + 1000)), true);
    });
  });
}

storeSuite('sqlite', sqliteBackend);
storeSuite('postgres', postgresBackend);

describe('store (sqlite, two processes)', function () {
  this.timeout(30_000);
  let backend: Awaited<ReturnType<typeof sqliteBackend>>;
  let store: Store;

  before(async () => {
    backend = await sqliteBackend();
    store = await backend.open();
  });
  after(async () => {
    await store?.close();
    await backend?.cleanup();
  });

  it('a child process and this process claim and dispatch the same ranges of one SQLite file; every row is dispatched exactly once', async () => {
    const n = 2000;
    const step = 5;
    const cid = id('xproc');
    await store.createCampaign({ id: cid, from: 'x@example.com', template: { subject: 's', text: 't' }, providers: ['a'], batchSize: step });
    await store.importAudience(cid, audience(cid, n));

    const storeModule = path.resolve(__dirname, '../../src/store/open-store.js');
    const script = `
      const { openStore } = require(${JSON.stringify(storeModule)});
      (async () => {
        const s = await openStore({ databaseUrl: '', sqlitePath: ${JSON.stringify(backend.file)} });
        process.stdout.write('ready\\n');
        await new Promise((resolve) => process.stdin.once('data', resolve)); // wait for "go"
        const mine = [];
        for (let from = 1; from <= ${n}; from += ${step}) {
          const r = await s.claimRange(${JSON.stringify(cid)}, from, from + ${step - 1}, 'child', 'tok-child');
          mine.push(...(await s.markDispatched(${JSON.stringify(cid)}, r.claimed.map((x) => x.seq), 'child', 'tok-child')));
        }
        await s.close();
        process.stdin.destroy();
        process.stdout.write(JSON.stringify(mine) + '\\n');
      })().catch((e) => { console.error(e); process.exit(1); });`;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    const ready = new Promise<void>((resolve) => {
      child.stdout.on('data', (d) => {
        out += d;
        if (out.includes('ready')) resolve();
      });
    });
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    await Promise.race([ready, exited]);
    child.stdin.write('go\n');

    const mine: number[] = [];
    for (let from = 1; from <= n; from += step) {
      const r = await store.claimRange(cid, from, from + step - 1, 'parent', 'tok-parent');
      mine.push(
        ...(await store.markDispatched(
          cid,
          r.claimed.map((x) => x.seq),
          'parent',
          'tok-parent',
        )),
      );
    }
    const code = await exited;
    assert.equal(code, 0, err);
    const theirs: number[] = JSON.parse(out.split('\n').filter(Boolean).pop()!);
    const all = [...mine, ...theirs];
    assert.equal(new Set(all).size, all.length, 'a row was dispatched twice');
    assert.equal(all.length, n);
    if (process.env.MAILOVER_TEST_VERBOSE) console.log(`parent claimed ${mine.length}, child ${theirs.length}`);
    const rows = await store.listRecipients(cid);
    assert.equal(rows.filter((r) => r.provider === 'child').length + rows.filter((r) => r.provider === 'parent').length, n);
  });
});

describe('store (postgres, connections that die)', function () {
  this.timeout(30_000);

  it('a connection terminated between the statements of a transaction fails that transaction instead of crashing the process', async () => {
    const db = await createScratchDatabase();
    const store = (await openStore({ databaseUrl: db.url })) as KyselyStore;
    try {
      const admin = new PgClient({ connectionString: db.url });
      await admin.connect();
      try {
        const outcome = await store.db
          .transaction()
          .execute(async (trx) => {
            const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx);
            await admin.query('select pg_terminate_backend($1)', [rows[0].pid]);
            // The checked-out client now emits 'error' with no query running: it must be handled.
            await new Promise((r) => setTimeout(r, 200));
            await sql`select 1`.execute(trx);
            return 'committed';
          })
          .catch((err: Error) => `failed: ${err.message}`);
        assert.match(outcome, /^failed: /);
        // The pool recovers: the next statement gets a fresh connection.
        assert.equal(await store.countAudience('nothing-here'), 0);
      } finally {
        await admin.end();
      }
    } finally {
      await store.close();
      await db.drop();
    }
  });
});

describe('store (sqlite, fault injection)', function () {
  this.timeout(30_000);
  let backend: Awaited<ReturnType<typeof sqliteBackend>>;

  before(async () => {
    backend = await sqliteBackend();
  });
  after(async () => {
    await backend?.cleanup();
  });

  /** In a child process: open the store (with `faults`), import an audience (transaction 1), claim it (transaction 2). */
  function importAndClaim(
    cid: string,
    faults: unknown,
    env: NodeJS.ProcessEnv = {},
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null; err: string }> {
    const storeModule = path.resolve(__dirname, '../../src/store/open-store.js');
    const script = `
      const { openStore } = require(${JSON.stringify(storeModule)});
      (async () => {
        const s = await openStore({ databaseUrl: '', sqlitePath: ${JSON.stringify(backend.file)}, faults: ${JSON.stringify(faults)} });
        await s.createCampaign({ id: ${JSON.stringify(cid)}, from: 'x@example.com', template: { subject: 's', text: 't' }, providers: ['a'], batchSize: 10 });
        await s.importAudience(${JSON.stringify(cid)}, ${JSON.stringify(audience(cid, 10))});
        await s.claimRange(${JSON.stringify(cid)}, 1, 10, 'a', 'tok');
        await s.close();
      })().catch((e) => { console.error(e); process.exit(1); });`;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, err })));
  }

  it('faults.killInTransaction: the process dies inside that transaction, which rolls back', async () => {
    const cid = id('kill-2');
    const r = await importAndClaim(cid, { killInTransaction: 2 });
    assert.equal(r.signal, 'SIGKILL', r.err);
    const store = await backend.open();
    try {
      const rows = await store.listRecipients(cid);
      assert.equal(rows.length, 10, 'the import (transaction 1) was committed');
      assert.ok(
        rows.every((row) => row.state === 'pending' && row.attempts === 0),
        'the claim (transaction 2) was rolled back',
      );
    } finally {
      await store.close();
    }
  });

  it('the store reads no fault hook from the environment: MAILOVER_FAULT_KILL_IN_TRANSACTION alone does nothing', async () => {
    const cid = id('env-only');
    const r = await importAndClaim(cid, undefined, { MAILOVER_FAULT_KILL_IN_TRANSACTION: '1' });
    assert.equal(r.signal, null, r.err);
    assert.equal(r.code, 0, r.err);
    const store = await backend.open();
    try {
      assert.ok((await store.listRecipients(cid)).every((row) => row.state === 'sending'));
    } finally {
      await store.close();
    }
  });
});
