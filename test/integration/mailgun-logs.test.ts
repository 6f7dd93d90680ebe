/**
 * Mailgun look-ups through the Logs API (POST /v1/analytics/logs, mailgun.js `logs.list`) against
 * the loopback Mailgun API over real HTTP: the query the provider sends, paging, and how each
 * answer settles a row in flight. No Temporal.
 */
import { strict as assert } from 'assert';
import Mailgun from 'mailgun.js';
import { MailgunServer } from '../../src/providers/mailgun/emulator';
import { MailgunProvider } from '../../src/providers/mailgun/provider';
import type { OutgoingMessage } from '../../src/providers/provider';

const API_KEY = 'key-logs-0123456789';
const DOMAIN = 'mg.example.com';

function message(campaignId: string, seq: number, to: string): OutgoingMessage {
  return { campaignId, seq, to, from: 'News <news@mg.example.com>', subject: `s${seq}`, text: `t${seq}`, messageId: `<${campaignId}.${seq}@mailover>` };
}

describe('mailgun Logs API look-ups (loopback Mailgun API, mailgun.js logs.list)', () => {
  let server: MailgunServer;
  let provider: MailgunProvider;

  beforeEach(async () => {
    server = await MailgunServer.start({ apiKey: API_KEY, name: 'mailgun-logs' });
    provider = new MailgunProvider({ name: 'mg', domain: DOMAIN, apiKey: API_KEY, url: server.url, lookupSettleMs: 0, timeoutMs: 2_000 });
  });

  afterEach(async () => {
    await provider.close();
    await server.stop();
  });

  async function send(messages: OutgoingMessage[]): Promise<void> {
    await provider.sendBatch(messages, async () => undefined);
  }

  it('mailgun: a look-up queries the Logs API for the recipient on the domain and settles accepted / not-found', async () => {
    const sent = message('camp-a', 1, 'Ann@Example.org');
    await send([sent, message('camp-a', 2, 'bob@example.org')]);
    const dispatchedAt = new Date(Date.now() - 5_000);
    const results = await provider.lookup([
      { message: sent, dispatchedAt },
      { message: message('camp-a', 3, 'carol@example.org'), dispatchedAt },
    ]);
    assert.deepEqual(results.get(1), { status: 'accepted', providerMessageId: server.calls[0].id });
    assert.deepEqual(results.get(3), { status: 'not-found' });

    assert.equal(server.logQueries.length, 2, 'one Logs API query per recipient (one page each)');
    const query = server.logQueries.find((q) => JSON.stringify(q).includes('Ann@Example.org')) as Record<string, unknown>;
    assert.deepEqual(query.events, ['accepted']);
    assert.deepEqual(query.filter, {
      AND: [
        { attribute: 'domain', comparator: '=', values: [{ label: DOMAIN, value: DOMAIN }] },
        { attribute: 'recipient', comparator: '=', values: [{ label: 'Ann@Example.org', value: 'Ann@Example.org' }] },
      ],
    });
    assert.deepEqual(query.pagination, { sort: 'timestamp:asc', limit: 100 });
    // From a minute before the hand-over, in RFC 2822 as the reference asks.
    const start = Date.parse(String(query.start));
    assert.ok(Math.abs(start - (dispatchedAt.getTime() - 60_000)) <= 1_000, `start ${String(query.start)}`);
    assert.ok(Date.parse(String(query.end)) >= Math.floor(Date.now() / 1000) * 1000 - 5_000, `end ${String(query.end)}`);
  });

  it('mailgun: the look-up matches the campaign in the JSON-string user-variables and pages past other campaigns', async () => {
    // 150 earlier sends to the same address from other campaigns: the match is on page 2.
    for (let i = 0; i < 150; i++) await send([message(`other-${i}`, 1, 'dave@example.org')]);
    const mine = message('camp-b', 7, 'dave@example.org');
    await send([mine]);
    const results = await provider.lookup([{ message: mine, dispatchedAt: new Date(Date.now() - 10_000) }]);
    assert.deepEqual(results.get(7), { status: 'accepted', providerMessageId: server.calls[server.calls.length - 1].id });
    assert.equal(server.logQueries.length, 2, 'two pages of 100');
    const second = server.logQueries[1] as { pagination: { token?: unknown } };
    assert.equal(typeof second.pagination.token, 'string', 'the second page is asked for with the first page’s next token');
  });

  it('mailgun: a Logs API that keeps failing settles the row as failed (held), never not-found', async () => {
    const sent = message('camp-c', 1, 'erin@example.org');
    await send([sent]);
    server.failEvents(503);
    const results = await provider.lookup([{ message: sent, dispatchedAt: new Date(Date.now() - 5_000) }]);
    const result = results.get(1);
    assert.equal(result?.status, 'failed');
    assert.match(result.status === 'failed' ? result.reason : '', /look-up failed: mg: server error \(503/);
    assert.equal(server.logQueries.length, 3, 'three tries of the Logs API query');
  });

  it('mailgun: a message still inside the lag window and not in the log is unknown, looked up again later', async () => {
    const late = new MailgunProvider({ name: 'mg', domain: DOMAIN, apiKey: API_KEY, url: server.url, lookupSettleMs: 60_000, timeoutMs: 1_000 });
    try {
      const results = await late.lookup([{ message: message('camp-d', 1, 'fay@example.org'), dispatchedAt: new Date() }]);
      const result = results.get(1);
      assert.equal(result?.status, 'unknown');
      assert.ok(result.status === 'unknown' && result.retryAfterMs > 50_000 && result.retryAfterMs <= 61_000, JSON.stringify(result));
      assert.equal(server.logQueries.length, 1, 'asked the Logs API once');
    } finally {
      await late.close();
    }
  });

  it('mailgun: the emulator’s Logs API answers mailgun.js logs.list in the published shape and refuses unknown filters', async () => {
    await send([message('camp-e', 1, 'gus@example.org'), message('camp-e', 2, 'hal@example.org')]);
    const mg = new Mailgun(FormData).client({ username: 'api', key: API_KEY, url: server.url });
    const page = await mg.logs.list({
      start: new Date(Date.now() - 60_000),
      end: new Date(Date.now() + 1_000),
      filter: { AND: [{ attribute: 'recipient', comparator: '!=', values: [{ label: 'gus', value: 'gus@example.org' }] }] },
      include_totals: true,
    });
    assert.equal(page.status, 200);
    assert.equal(page.items.length, 1);
    const item = page.items[0];
    assert.equal(item.recipient, 'hal@example.org');
    assert.equal(item.event, 'accepted');
    assert.deepEqual(item.domain, { name: DOMAIN });
    assert.ok(item['@timestamp'] instanceof Date && !Number.isNaN(item['@timestamp'].getTime()));
    assert.equal(typeof item['user-variables'], 'string');
    assert.equal((JSON.parse(item['user-variables'] ?? '{}') as Record<string, string>)['mailover-campaign'], 'camp-e');
    assert.equal(page.pagination.total, 1);
    assert.equal(page.pagination.next, undefined, 'no next token on the last page');

    await assert.rejects(
      mg.logs.list({
        start: new Date(Date.now() - 60_000),
        filter: { AND: [{ attribute: 'subject', comparator: '=', values: [{ label: 'x', value: 'x' }] }] },
      }),
      (err: { status?: number; details?: string }) => err.status === 400 && /filter\.AND\[0\]\.attribute/.test(err.details ?? ''),
    );
    const wrongKey = new Mailgun(FormData).client({ username: 'api', key: 'key-wrong', url: server.url });
    await assert.rejects(wrongKey.logs.list({ start: new Date() }), (err: { status?: number }) => err.status === 401);
  });
});
