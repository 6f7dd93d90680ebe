/**
 * The emulator's Logs API query (answerLogsQuery) as a pure function over an event log: time range,
 * filters, sort, token paging, and 400s that name the field and value.
 */
import { strict as assert } from 'assert';
import { answerLogsQuery, LogsQueryError, type LoggedEvent } from '../../src/providers/mailgun/emulator-logs';

const NOW = Date.parse('2026-12-02T02:00:00Z');

function entry(seq: number, recipient: string, opts: { domain?: string; event?: 'accepted' | 'delivered'; at?: number; campaign?: string } = {}): LoggedEvent {
  const domain = opts.domain ?? 'mg.example.com';
  return {
    seq,
    domain,
    item: {
      id: `id-${seq}`,
      event: opts.event ?? 'accepted',
      timestamp: (opts.at ?? NOW - 60_000 + seq * 1_000) / 1000,
      'log-level': 'info',
      method: 'HTTP',
      recipient,
      'recipient-domain': recipient.split('@')[1] ?? '',
      tags: ['news'],
      envelope: { sender: `news@${domain}`, targets: recipient, transport: 'smtp' },
      message: { headers: { 'message-id': `m${seq}@${domain}`, to: recipient, from: `news@${domain}`, subject: 's' } },
      'user-variables': { 'mailover-campaign': opts.campaign ?? 'c1' },
    },
  };
}

const eq = (attribute: string, value: string) => ({ attribute, comparator: '=', values: [{ label: value, value }] });

interface Page {
  items: Array<Record<string, unknown>>;
  pagination: { next?: string; previous?: string; first: string; last: string; total?: number };
  start: string;
  end: string;
}

function ask(body: unknown, log: LoggedEvent[]): Page {
  return answerLogsQuery(body, log, NOW) as unknown as Page;
}

describe('mailgun emulator Logs API query (unit)', () => {
  const log = [
    entry(1, 'a@x.org'),
    entry(2, 'B@x.org'),
    entry(3, 'a@x.org', { domain: 'other.example.com' }),
    entry(4, 'a@x.org', { event: 'delivered' }),
    entry(5, 'a@x.org', { campaign: 'c2' }),
    entry(6, 'a@x.org', { at: NOW - 2 * 86_400_000 }),
  ];

  it('mailgun: filters by domain, recipient (any case) and event within start..end, newest first by default', () => {
    const page = ask(
      { start: 'Wed, 02 Dec 2026 01:00:00 -0000', events: ['accepted'], filter: { AND: [eq('domain', 'MG.example.com'), eq('recipient', 'A@x.org')] } },
      log,
    );
    assert.deepEqual(
      page.items.map((i) => i.id),
      ['id-5', 'id-1'],
    );
    assert.deepEqual(page.items[0].domain, { name: 'mg.example.com' });
    assert.equal(page.items[0]['user-variables'], '{"mailover-campaign":"c2"}');
    assert.equal(page.items[0]['@timestamp'], new Date(NOW - 55_000).toISOString());
    assert.equal(page.end, 'Wed, 02 Dec 2026 02:00:00 -0000', 'end defaults to now');
  });

  it('mailgun: start defaults to a day before end, duration counts back from end, != excludes', () => {
    assert.equal(ask({}, log).items.length, 5, 'the entry two days old is out');
    assert.equal(ask({ duration: '3d' }, log).items.length, 6);
    assert.deepEqual(
      ask({ filter: { AND: [{ attribute: 'domain', comparator: '!=', values: [{ label: 'o', value: 'other.example.com' }] }] } }, log).items.map((i) => i.id),
      ['id-5', 'id-4', 'id-2', 'id-1'],
    );
    assert.deepEqual(
      ask({ filter: { AND: [eq('message_id', '<m2@mg.example.com>')] } }, log).items.map((i) => i.id),
      ['id-2'],
    );
  });

  it('mailgun: pages follow the next token in either sort order; the last page has no next', () => {
    const all = Array.from({ length: 25 }, (_, i) => entry(i + 1, 'p@x.org'));
    for (const sort of ['timestamp:asc', 'timestamp:desc'] as const) {
      const seen: unknown[] = [];
      let token: string | undefined;
      let pages = 0;
      do {
        const page = ask({ pagination: { sort, limit: 10, ...(token ? { token } : {}) }, include_totals: true }, all);
        assert.equal(page.pagination.total, 25);
        seen.push(...page.items.map((i) => i.id));
        token = page.pagination.next;
        pages++;
      } while (token);
      assert.equal(pages, 3, sort);
      const ids = all.map((e) => e.item.id);
      assert.deepEqual(seen, sort === 'timestamp:asc' ? ids : ids.reverse(), sort);
    }
  });

  it('mailgun: a bad query is a LogsQueryError naming the field and the value', () => {
    const cases: Array<[unknown, RegExp]> = [
      [[], /the body must be a JSON object/],
      [{ start: 'yesterday' }, /'start' must be an RFC 2822 date, got "yesterday"/],
      [{ duration: '5 weeks' }, /'duration' must look like/],
      [{ events: 'accepted' }, /'events' must be a list/],
      [{ filter: { OR: [] } }, /'filter' must be \{ AND: \[\.\.\.\] \}/],
      [{ filter: { AND: [eq('subject', 'x')] } }, /'filter\.AND\[0\]\.attribute' must be one of domain, recipient, message_id, tag, event, got "subject"/],
      [
        { filter: { AND: [{ attribute: 'tag', comparator: 'contains', values: [{ label: 'x', value: 'x' }] }] } },
        /'filter\.AND\[0\]\.comparator'.*got "contains"/,
      ],
      [{ filter: { AND: [{ attribute: 'tag', comparator: '=', values: [] }] } }, /'filter\.AND\[0\]\.values' must be a non-empty list/],
      [{ pagination: { limit: 101 } }, /'pagination\.limit' must be an integer from 1 to 100, got 101/],
      [{ pagination: { sort: 'recipient:asc' } }, /'pagination\.sort'.*got "recipient:asc"/],
      [{ pagination: { token: 'not-ours' } }, /'pagination\.token' is not a token this server issued/],
    ];
    for (const [body, message] of cases)
      assert.throws(
        () => answerLogsQuery(body, log, NOW),
        (err: Error) => err instanceof LogsQueryError && message.test(err.message),
      );
  });
});
