/**
 * relay answers / PostgreSQL claims: two send attempts of one batch at once (a worker Temporal gave
 * up on that still runs, and the attempt that replaced it) on PostgreSQL's READ COMMITTED. A row
 * must never end claimed by nobody, pending behind the cursor, or sent twice.
 */
import { strict as assert } from 'assert';
import { sql } from 'kysely';
import { createActivities } from '../../activities';
import { SmtpSink } from '../../src/providers/smtp/emulator';
import { ProviderRegistry } from '../../src/providers/registry';
import type { KyselyStore } from '../../src/store/kysely-store';
import { openStore } from '../../src/store/open-store';
import type { Store } from '../../src/store/types';
import { DEFAULT_HEALTH_SETTINGS } from '../../workflows/provider-health-api';
import { createScratchDatabase, type ScratchDatabase } from '../support/postgres';

describe('claims on PostgreSQL: two attempts of one batch at once', function () {
  this.timeout(120_000);
  let db: ScratchDatabase;
  let a: Store;
  let b: Store;
  const sinks: SmtpSink[] = [];
  const registries: ProviderRegistry[] = [];

  before(async () => {
    db = await createScratchDatabase();
    a = await openStore({ databaseUrl: db.url });
    b = await openStore({ databaseUrl: db.url });
  });
  after(async () => {
    for (const r of registries) await r.closeAll();
    for (const s of sinks) await s.stop();
    await a?.close();
    await b?.close();
    await db?.drop();
  });

  let n = 0;
  async function campaign(rows: number): Promise<string> {
    const id = `claims-${process.pid}-${++n}`;
    await a.createCampaign({
      id,
      from: 'news@mailover.test',
      template: { subject: 'Hi {{first}}', text: 'Hello {{first}}' },
      providers: ['relay'],
      batchSize: rows,
    });
    await a.importAudience(
      id,
      Array.from({ length: rows }, (_, i) => ({ email: `user${i + 1}@example.com`, fields: { first: `U${i + 1}` } })),
    );
    return id;
  }

  it('claims on PostgreSQL: an older attempt marking rows dispatched while a newer one claims the range never leaves a row held by the older one', async () => {
    // Without the claim's row lock, a dispatch mark landing between the claim's statements leaves the
    // row dispatched under the old token: neither in flight for the new attempt nor claimed by it.
    for (let round = 0; round < 60; round++) {
      const id = await campaign(12);
      const oldClaim = await a.claimRange(id, 1, 12, 'relay', 'old');
      const seqs = oldClaim.claimed.map((r) => r.seq);
      const marks = (async () => {
        for (const seq of seqs) await a.markDispatched(id, [seq], 'relay', 'old');
      })();
      const newClaim = await b.claimRange(id, 1, 12, 'relay', 'new');
      await marks;
      const rows = await sql<{
        seq: number;
        claim_token: string | null;
        state: string;
      }>`select seq, claim_token, state from recipients where campaign_id = ${id} order by seq`.execute((a as KyselyStore).db);
      const strays = rows.rows.filter((r) => r.claim_token !== 'new').map((r) => `#${r.seq} ${r.state} ${r.claim_token}`);
      assert.deepEqual(strays, [], `round ${round}: rows not held by the newer claim`);
      assert.deepEqual(
        [...newClaim.claimed, ...newClaim.inFlight].map((r) => r.seq).sort((x, y) => x - y),
        seqs,
        `round ${round}: the newer claim took every row (claimed or in flight)`,
      );
    }
  });

  it('claims on PostgreSQL: two sendBatch attempts on one range at once, through a real SMTP relay: every recipient sent exactly once and every row accepted', async () => {
    const sink = await SmtpSink.start({ name: 'relay' });
    sinks.push(sink);
    sink.setAcceptDelay(15);
    const def = {
      kind: 'smtp' as const,
      name: 'relay',
      host: '127.0.0.1',
      port: sink.port,
      pool: { maxConnections: 3 },
      timeouts: { connectionMs: 2_000, greetingMs: 2_000, socketMs: 1_000 },
    };
    const activitiesFor = (store: Store) => {
      const providers = new ProviderRegistry([def]);
      registries.push(providers);
      return createActivities({ store, providers, inFlightPolicy: 'resend', health: { ...DEFAULT_HEALTH_SETTINGS } });
    };
    const older = activitiesFor(a);
    const newer = activitiesFor(b);
    const id = await campaign(80);
    const input = { campaignId: id, provider: 'relay', fromSeq: 1, toSeq: 80 };
    const first = older.sendBatch(input).then(
      (t) => ({ ok: true as const, t }),
      (err: unknown) => ({ ok: false as const, err }),
    );
    await sink.waitForCount(15, 20_000);
    const second = await newer.sendBatch(input);
    const firstOutcome = await first;
    if (!firstOutcome.ok)
      assert.match(String((firstOutcome.err as Error).message), /newer send attempt took over/, 'the older attempt stops once its rows are taken over');
    assert.deepEqual(second.acceptedByProvider, { relay: 80 }, 'the newer attempt ends with every row accepted');
    const counts = sink.countByRecipient();
    const dupes = [...counts].filter(([, c]) => c > 1);
    assert.deepEqual(dupes, [], 'nobody sent twice');
    assert.equal(counts.size, 80, 'everybody sent');
    const rows = await a.listRecipients(id);
    assert.ok(
      rows.every((r) => r.state === 'accepted'),
      `every row accepted: ${rows
        .filter((r) => r.state !== 'accepted')
        .map((r) => `#${r.seq} ${r.state}`)
        .join(', ')}`,
    );
  });
});
