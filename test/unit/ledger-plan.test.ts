/**
 * The ledger's hot statements on SQLite find their rows by seq: a statement naming a call's seqs and
 * the states they may be in must not walk every pending row of the campaign (on an index of
 * (campaign_id, state) alone SQLite did: each settle cost time in proportion to the audience).
 */
import { strict as assert } from 'assert';
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import Database from 'better-sqlite3';
import { openStore } from '../../src/store/open-store';

describe('ledger query plans (SQLite)', () => {
  let dir: string;
  let db: Database.Database;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mailover-plan-'));
    const store = await openStore({ sqlitePath: join(dir, 'ledger.db') });
    await store.createCampaign({
      id: 'c',
      from: 'News <news@example.org>',
      template: { subject: 's', text: 't' },
      providers: ['p'],
      batchSize: 100,
      transactional: true,
    });
    await store.importAudience(
      'c',
      Array.from({ length: 5000 }, (_, i) => ({ email: `user${i + 1}@example.com`, fields: {} })),
    );
    await store.close();
    db = new Database(join(dir, 'ledger.db'), { readonly: true });
  });
  after(() => {
    db?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const plan = (sql: string, params: unknown[]) =>
    db
      .prepare(`explain query plan ${sql}`)
      .all(params)
      .map((r) => (r as { detail: string }).detail)
      .join('; ');
  const seqs = Array.from({ length: 900 }, (_, i) => i + 1001);
  const list = seqs.map(() => '?').join(', ');

  it("ledger: settling a call's acceptances (seq in ..., state in pending/sending) looks each row up by campaign, state and seq", () => {
    const sql = `update recipients set state = 'accepted', provider = ?, provider_message_id = ?, last_error = null, updated_at = ? where campaign_id = ? and seq in (${list}) and state in ('pending', 'sending')`;
    assert.match(plan(sql, ['p', 'id', 'now', 'c', ...seqs]), /USING INDEX recipients_campaign_state_seq_idx \(campaign_id=\? AND state=\? AND seq=\?\)/);
  });

  it("ledger: a dispatch mark (seq in ..., state sending, this claim's token) looks each row up by campaign, state and seq", () => {
    const sql = `update recipients set dispatched_at = ?, provider = ?, updated_at = ? where campaign_id = ? and seq in (${list}) and state = 'sending' and claim_token = ? returning seq`;
    assert.match(
      plan(sql, ['now', 'p', 'now', 'c', ...seqs, 'token']),
      /USING INDEX recipients_campaign_state_seq_idx \(campaign_id=\? AND state=\? AND seq=\?\)/,
    );
  });

  it("routing: the reputation breaker's window (a campaign's last N sends on a provider, newest first) is read from an index in its own order, never sorted", () => {
    const sql = `select r.seq from recipients r where r.campaign_id = ? and r.provider = ? and (r.state = 'accepted' or (r.state = 'rejected' and (r.dispatched_at is not null or r.hard_bounce = 1))) order by r.updated_at desc, r.seq desc limit 5000`;
    const p = plan(sql, ['c', 'p']);
    assert.match(p, /USING INDEX recipients_campaign_provider_updated_seq_idx \(campaign_id=\? AND provider=\?\)/);
    assert.doesNotMatch(p, /TEMP B-TREE/, p);
  });

  it('ledger: the indexes they replace, (campaign_id, state) and (campaign_id, provider, updated_at), are gone (a store opened by an older version drops them)', () => {
    const names = db
      .prepare(`select name from sqlite_master where type = 'index' and tbl_name = 'recipients'`)
      .all()
      .map((r) => (r as { name: string }).name);
    assert.ok(names.includes('recipients_campaign_state_seq_idx'));
    assert.ok(!names.includes('recipients_campaign_state_idx'), names.join(', '));
    assert.ok(names.includes('recipients_campaign_provider_updated_seq_idx'));
    assert.ok(!names.includes('recipients_campaign_provider_updated_idx'), names.join(', '));
  });
});
