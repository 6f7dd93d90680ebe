/**
 * The loopback Mailgun API (src/dev/mailgun-server.ts) over real HTTP: sends and events through
 * Mailgun's official client (mailgun.js) and raw fetch, auth, validation, paging, and every
 * programmable fault.
 */
import { strict as assert } from 'assert';
import Mailgun from 'mailgun.js';
import { MailgunServer, type MailgunMessage } from '../../src/providers/mailgun/emulator';

const API_KEY = 'key-test-0123456789';
const DOMAIN = 'mg.example.com';
const ID_SHAPE = /^<\d{14}\.[0-9A-F]+@mg\.example\.com>$/;

const servers: MailgunServer[] = [];

async function startServer(): Promise<MailgunServer> {
  const server = await MailgunServer.start({ apiKey: API_KEY, name: 'mailgun-test' });
  servers.push(server);
  return server;
}

type MailgunClient = ReturnType<Mailgun['client']>;

function client(server: MailgunServer, key = API_KEY): MailgunClient {
  const mg = new Mailgun(FormData).client({ username: 'api', key, url: server.url });
  // events.get warns on the console that it is deprecated; keep test output clean.
  (mg.events as unknown as { logger: { warn(): void } }).logger = { warn: () => undefined };
  return mg;
}

function basicAuth(key = API_KEY): string {
  return `Basic ${Buffer.from(`api:${key}`).toString('base64')}`;
}

/** A raw POST /messages with a multipart body built from `fields` (arrays repeat the field). */
function post(
  server: MailgunServer,
  fields: Record<string, string | string[]>,
  init: { key?: string; signal?: AbortSignal; domain?: string } = {},
): Promise<Response> {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) {
    for (const v of Array.isArray(value) ? value : [value]) form.append(name, v);
  }
  const reqInit: RequestInit = { method: 'POST', body: form, headers: { authorization: basicAuth(init.key) } };
  if (init.signal) reqInit.signal = init.signal;
  return fetch(`${server.url}/v3/${init.domain ?? DOMAIN}/messages`, reqInit);
}

function simple(to: string | string[], extra: Record<string, string | string[]> = {}): Record<string, string | string[]> {
  return { from: 'Shop <news@shop.example>', to, subject: 'Hello', text: 'Hi there', ...extra };
}

function addresses(n: number, prefix = 'user'): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}${i + 1}@example.com`);
}

async function errorMessage(res: Response): Promise<string> {
  const body = (await res.json()) as { message?: unknown };
  assert.equal(typeof body.message, 'string');
  return body.message as string;
}

interface EventsPage {
  items: Array<{
    id: string;
    event: string;
    timestamp: number;
    recipient: string;
    message: { headers: Record<string, string> };
    'user-variables': Record<string, string>;
  }>;
  paging: { first: string; last: string; next: string; previous: string };
}

async function getJson(url: string): Promise<EventsPage> {
  const res = await fetch(url, { headers: { authorization: basicAuth() } });
  assert.equal(res.status, 200, `GET ${url} answered ${res.status}`);
  return (await res.json()) as EventsPage;
}

describe('mailgun server', function () {
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.stop()));
  });

  it('mailgun server: a batch call via mailgun.js renders subject, text, html, h: and v: per recipient and returns a Mailgun-shaped id', async () => {
    const server = await startServer();
    const emitted: MailgunMessage[] = [];
    server.on('message', (m: MailgunMessage) => emitted.push(m));

    const res = await client(server).messages.create(DOMAIN, {
      from: 'Shop <news@shop.example>',
      to: ['ann@example.com', '"Doe, Bob" <Bob@Example.com>, cy@example.com'],
      subject: 'Hello %recipient.first%, your %recipient.pct%% offer',
      text: 'Hi %recipient.first%, code %recipient.code% %recipient.unknown%',
      html: '<p>Hi <b>%recipient.first%</b></p>',
      'recipient-variables': JSON.stringify({
        'ann@example.com': { first: 'Ann', code: 'A-1', pct: 10 },
        'Bob@Example.com': { first: 'Bob', code: 'B-2', pct: 20 },
        'cy@example.com': { first: 'Cy', code: 'C-3', pct: 30 },
      }),
      'h:X-Mailover-Campaign': 'camp-1',
      'h:X-Greeting': 'for %recipient.first%',
      'v:seq': '%recipient.code%',
      'v:campaign': 'camp-1',
      'o:tag': 'spring',
      'o:testmode': 'yes',
    });

    assert.equal(res.status, 200);
    assert.equal(res.message, 'Queued. Thank you.');
    assert.match(res.id ?? '', ID_SHAPE);

    assert.equal(server.acceptedCount, 3);
    assert.equal(server.callCount, 1);
    assert.deepEqual(
      server.calls.map((c) => ({ id: c.id, recipients: c.recipients, status: c.status })),
      [{ id: res.id, recipients: 3, status: 200 }],
    );
    assert.deepEqual(emitted, server.messages);

    const [ann, bob, cy] = server.messages;
    assert.ok(ann && bob && cy);
    for (const m of server.messages) {
      assert.equal(m.id, res.id);
      assert.equal(m.domain, DOMAIN);
      assert.equal(m.from, 'Shop <news@shop.example>');
      assert.ok(m.acceptedAt instanceof Date);
      assert.deepEqual(m.options, { tag: 'spring', testmode: 'yes' });
    }
    assert.deepEqual(
      server.messages.map((m) => m.to),
      ['ann@example.com', 'Bob@Example.com', 'cy@example.com'],
    );
    assert.equal(ann.subject, 'Hello Ann, your 10% offer');
    assert.equal(bob.subject, 'Hello Bob, your 20% offer');
    assert.equal(ann.text, 'Hi Ann, code A-1 %recipient.unknown%', 'an unknown key is left as is');
    assert.equal(cy.text, 'Hi Cy, code C-3 %recipient.unknown%');
    assert.equal(bob.html, '<p>Hi <b>Bob</b></p>');
    assert.deepEqual(bob.headers, { 'X-Mailover-Campaign': 'camp-1', 'X-Greeting': 'for Bob' });
    assert.deepEqual(cy.variables, { seq: 'C-3', campaign: 'camp-1' });
    assert.deepEqual(
      [...server.countByRecipient()],
      [
        ['ann@example.com', 1],
        ['bob@example.com', 1],
        ['cy@example.com', 1],
      ],
    );

    // The accepted events carry the rendered headers and user variables.
    assert.equal(server.events.length, 3);
    const bobEvent = server.events[1];
    assert.ok(bobEvent);
    assert.equal(bobEvent.event, 'accepted');
    assert.equal(bobEvent.recipient, 'Bob@Example.com');
    assert.equal(bobEvent.message.headers['message-id'], (res.id ?? '').slice(1, -1));
    assert.equal(bobEvent.message.headers.to, '"Doe, Bob" <Bob@Example.com>');
    assert.equal(bobEvent.message.headers.subject, 'Hello Bob, your 20% offer');
    assert.deepEqual(bobEvent['user-variables'], { seq: 'B-2', campaign: 'camp-1' });
  });

  it('mailgun server: also accepts application/x-www-form-urlencoded', async () => {
    const server = await startServer();
    const body = new URLSearchParams([
      ['from', 'a@shop.example'],
      ['to', 'x@example.com, y@example.com'],
      ['subject', 'S'],
      ['html', '<p>h</p>'],
    ]);
    const res = await fetch(`${server.url}/v3/${DOMAIN}/messages`, { method: 'POST', body, headers: { authorization: basicAuth() } });
    assert.equal(res.status, 200);
    assert.match(((await res.json()) as { id: string }).id, ID_SHAPE);
    assert.deepEqual(
      server.messages.map((m) => [m.to, m.html, m.text]),
      [
        ['x@example.com', '<p>h</p>', undefined],
        ['y@example.com', '<p>h</p>', undefined],
      ],
    );
  });

  it('mailgun server: a wrong key gets 401 Forbidden (text/plain) and records nothing', async () => {
    const server = await startServer();
    await assert.rejects(
      client(server, 'key-wrong').messages.create(DOMAIN, { from: 'a@shop.example', to: 'x@example.com', subject: 's', text: 't' }),
      (err: { status?: number; details?: string }) => {
        assert.equal(err.status, 401);
        assert.equal(err.details, 'Forbidden');
        return true;
      },
    );
    const raw = await post(server, simple('x@example.com'), { key: 'key-wrong' });
    assert.equal(raw.status, 401);
    assert.match(raw.headers.get('content-type') ?? '', /^text\/plain/);
    assert.equal(await raw.text(), 'Forbidden');
    const noAuth = await fetch(`${server.url}/v3/${DOMAIN}/events`);
    assert.equal(noAuth.status, 401);
    await noAuth.arrayBuffer();

    assert.equal(server.acceptedCount, 0);
    assert.deepEqual(
      server.calls.map((c) => c.status),
      [401, 401],
    );
    assert.equal(server.events.length, 0);
  });

  it('mailgun server: setAuthFailure answers 401 to every request, the events endpoint included, until heal()', async () => {
    const server = await startServer();
    const mg = client(server);
    server.setAuthFailure(true);
    const res = await post(server, simple('x@example.com'));
    assert.equal(res.status, 401);
    assert.equal(await res.text(), 'Forbidden');
    await assert.rejects(mg.events.get(DOMAIN), (err: { status?: number }) => err.status === 401);
    server.heal();
    const ok = await mg.messages.create(DOMAIN, { from: 'a@shop.example', to: 'x@example.com', subject: 's', text: 't' });
    assert.equal(ok.status, 200);
    assert.equal((await mg.events.get(DOMAIN)).items.length, 1);
  });

  it('mailgun server: validation errors answer 400 naming the parameter and record nothing', async () => {
    const server = await startServer();
    const cases: Array<[Record<string, string | string[]>, RegExp]> = [
      [{ to: 'x@example.com', subject: 's', text: 't' }, /^'from' parameter is missing$/],
      [{ from: 'a@shop.example', subject: 's', text: 't' }, /^'to' parameter is missing$/],
      [{ from: 'a@shop.example', to: 'x@example.com', text: 't' }, /^'subject' parameter is missing$/],
      [{ from: 'a@shop.example', to: 'x@example.com', subject: 's' }, /'text'.*'html'/],
      [simple('not-an-address'), /^'to' parameter is not a valid address: "not-an-address"$/],
      [simple('x@example.com', { from: 'nobody' }), /^'from' parameter is not a valid address/],
      [simple('x@example.com', { 'recipient-variables': '{"x@example.com": {' }), /^'recipient-variables' parameter is not a valid JSON/],
      [simple('x@example.com', { 'recipient-variables': '[1, 2]' }), /^'recipient-variables' parameter must be a JSON object/],
      [simple(addresses(1001)), /^Too many recipients \(max 1000\)$/],
      [simple([addresses(600).join(','), addresses(401, 'more').join(', ')]), /^Too many recipients \(max 1000\)$/],
    ];
    for (const [fields, expected] of cases) {
      const res = await post(server, fields);
      assert.equal(res.status, 400, `expected 400 for ${JSON.stringify(fields).slice(0, 120)}`);
      assert.match(await errorMessage(res), expected);
    }
    // A body that is not a form at all.
    const json = await fetch(`${server.url}/v3/${DOMAIN}/messages`, {
      method: 'POST',
      body: '{}',
      headers: { authorization: basicAuth(), 'content-type': 'application/json' },
    });
    assert.equal(json.status, 400);
    assert.match(await errorMessage(json), /Content-Type/);

    // Through mailgun.js the message is the error's details.
    await assert.rejects(
      client(server).messages.create(DOMAIN, { from: 'a@shop.example', to: 'x@example.com', text: 't' }),
      (err: { status?: number; details?: string }) => {
        assert.equal(err.status, 400);
        assert.equal(err.details, "'subject' parameter is missing");
        return true;
      },
    );

    assert.equal(server.acceptedCount, 0);
    assert.equal(server.events.length, 0);
    assert.equal(server.callCount, cases.length + 2);
    assert.ok(server.calls.every((c) => c.status === 400 && c.id === undefined));
    assert.equal(server.calls[8]?.recipients, 1001);

    // Exactly 1000 is fine.
    const ok = await post(server, simple(addresses(1000)));
    assert.equal(ok.status, 200);
    await ok.arrayBuffer();
    assert.equal(server.acceptedCount, 1000);
  });

  it('mailgun server: failNext answers the status with Retry-After for n calls, then accepts; failAll until cleared', async () => {
    const server = await startServer();
    server.failNext(2, 429, { retryAfterSeconds: 7 });
    for (let i = 0; i < 2; i++) {
      const res = await post(server, simple('x@example.com'));
      assert.equal(res.status, 429);
      assert.equal(res.headers.get('retry-after'), '7');
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      assert.equal(await errorMessage(res), 'Too many requests');
    }
    const ok = await post(server, simple('x@example.com'));
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('retry-after'), null);
    await ok.arrayBuffer();

    server.failAll(503, { message: 'upstream is down' });
    for (let i = 0; i < 3; i++) {
      const res = await post(server, simple('y@example.com'));
      assert.equal(res.status, 503);
      assert.equal(await errorMessage(res), 'upstream is down');
    }
    await assert.rejects(
      client(server).messages.create(DOMAIN, { from: 'a@shop.example', to: 'y@example.com', subject: 's', text: 't' }),
      (err: { status?: number }) => err.status === 503,
    );
    server.failAll(null);
    const again = await post(server, simple('y@example.com'));
    assert.equal(again.status, 200);
    await again.arrayBuffer();

    assert.deepEqual(
      server.calls.map((c) => c.status),
      [429, 429, 200, 503, 503, 503, 503, 200],
    );
    assert.deepEqual(
      server.calls.map((c) => c.id !== undefined),
      [false, false, true, false, false, false, false, true],
    );
    assert.deepEqual(
      server.messages.map((m) => m.to),
      ['x@example.com', 'y@example.com'],
    );
  });

  it('mailgun server: maxRecipientsPerCall answers 413 above the limit and records nothing', async () => {
    const server = await startServer();
    server.maxRecipientsPerCall(10);
    const tooMany = await post(server, simple(addresses(11)));
    assert.equal(tooMany.status, 413);
    assert.equal(await errorMessage(tooMany), 'Request entity too large');
    await assert.rejects(
      client(server).messages.create(DOMAIN, { from: 'a@shop.example', to: addresses(11), subject: 's', text: 't' }),
      (err: { status?: number }) => err.status === 413,
    );
    assert.equal(server.acceptedCount, 0);
    const ok = await post(server, simple(addresses(10)));
    assert.equal(ok.status, 200);
    await ok.arrayBuffer();
    assert.equal(server.acceptedCount, 10);
    assert.deepEqual(
      server.calls.map((c) => [c.status, c.recipients]),
      [
        [413, 11],
        [413, 11],
        [200, 10],
      ],
    );
  });

  it('mailgun server: setLatency delays every answer', async () => {
    const server = await startServer();
    server.setLatency(300);
    const started = Date.now();
    const res = await post(server, simple('x@example.com'));
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    assert.ok(Date.now() - started >= 290, `answered after ${Date.now() - started} ms`);
    server.heal();
    const quick = Date.now();
    await (await post(server, simple('x@example.com'))).body?.cancel();
    assert.ok(Date.now() - quick < 290);
  });

  it('mailgun server: hangNext never answers; a client with AbortSignal.timeout sees a timeout and nothing is recorded', async () => {
    const server = await startServer();
    server.hangNext(1);
    await assert.rejects(post(server, simple('x@example.com'), { signal: AbortSignal.timeout(300) }), (err: Error) => {
      assert.equal(err.name, 'TimeoutError');
      return true;
    });
    assert.equal(server.acceptedCount, 0);
    assert.equal(server.events.length, 0);
    assert.deepEqual(
      server.calls.map((c) => ({ status: c.status, id: c.id, recipients: c.recipients })),
      [{ status: 0, id: undefined, recipients: 1 }],
    );

    // Only the next n: the following call is answered.
    const res = await post(server, simple('x@example.com'), { signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    assert.equal(server.acceptedCount, 1);
  });

  it('mailgun server: acceptThenDropNext records the message but resets the socket; the accepted event is queryable', async () => {
    const server = await startServer();
    const mg = client(server);
    server.acceptThenDropNext(1);
    await assert.rejects(post(server, simple(['x@example.com', 'y@example.com'])), (err: Error) => {
      assert.equal(err.name, 'TypeError', `expected a network error, got ${err.name}: ${err.message}`);
      return true;
    });
    assert.equal(server.acceptedCount, 2);
    const call = server.calls[0];
    assert.ok(call);
    assert.equal(call.status, 0, 'no HTTP response was sent');
    assert.match(call.id ?? '', ID_SHAPE);
    assert.equal(server.messages[0]?.id, call.id);

    // The client does not know the id; it finds the message by recipient and then by id.
    const byRecipient = await mg.events.get(DOMAIN, { event: 'accepted', recipient: 'x@example.com', limit: 300 });
    assert.equal(byRecipient.items.length, 1);
    const messageId = byRecipient.items[0]?.message.headers['message-id'];
    assert.equal(messageId, (call.id ?? '').slice(1, -1));
    const byId = await mg.events.get(DOMAIN, { 'message-id': messageId });
    assert.deepEqual(byId.items.map((e) => e.recipient).sort(), ['x@example.com', 'y@example.com']);

    // mailgun.js sees the reset as a network error too.
    server.acceptThenDropNext(1);
    await assert.rejects(mg.messages.create(DOMAIN, { from: 'a@shop.example', to: 'z@example.com', subject: 's', text: 't' }));
    assert.equal(server.acceptedCount, 3);
    const ok = await mg.messages.create(DOMAIN, { from: 'a@shop.example', to: 'z@example.com', subject: 's', text: 't' });
    assert.equal(ok.status, 200);
    assert.equal(server.countByRecipient().get('z@example.com'), 2);
  });

  it('mailgun server: acceptSlowlyNext accepts only after the delay, even for a client that timed out; a patient client gets 200 then', async () => {
    const server = await startServer();
    const mg = client(server);
    const DELAY = 800;
    server.acceptSlowlyNext(2, DELAY);

    // The client gives up long before Mailgun accepts.
    const pending = server.waitFor((s) => s.pendingAcceptCount === 1);
    await assert.rejects(post(server, simple(['x@example.com', 'y@example.com']), { signal: AbortSignal.timeout(200) }), (err: Error) => {
      assert.equal(err.name, 'TimeoutError');
      return true;
    });
    await pending; // Mailgun has the call and sits on it
    // Before the delay: nothing recorded, nothing on the events API, the call undecided.
    assert.equal((await mg.events.get(DOMAIN, { event: 'accepted' })).items.length, 0);
    assert.equal(server.acceptedCount, 0);
    assert.equal(server.pendingAcceptCount, 1);
    assert.deepEqual(
      server.calls.map((c) => ({ status: c.status, id: c.id, recipients: c.recipients })),
      [{ status: 0, id: undefined, recipients: 2 }],
    );

    // After it: accepted although the client is gone; the call stays unanswered (status 0).
    await server.waitFor((s) => s.acceptedCount === 2 && s.calls[0]?.id !== undefined, 5000);
    assert.equal(server.pendingAcceptCount, 0);
    const first = server.calls[0];
    assert.ok(first);
    assert.equal(first.status, 0, 'no HTTP response: the client had left');
    assert.match(first.id ?? '', ID_SHAPE);
    assert.deepEqual(
      server.messages.map((m) => [m.to, m.id]),
      [
        ['x@example.com', first.id],
        ['y@example.com', first.id],
      ],
    );
    const acceptedAfter = (server.messages[0]?.acceptedAt.getTime() ?? 0) - first.at.getTime();
    assert.ok(acceptedAfter >= DELAY - 10, `accepted ${acceptedAfter} ms after arrival`);
    const listed = await mg.events.get(DOMAIN, { event: 'accepted', 'message-id': first.id });
    assert.deepEqual(listed.items.map((e) => e.recipient).sort(), ['x@example.com', 'y@example.com']);

    // The second of the two: a patient client waits the delay and gets the usual 200.
    const started = Date.now();
    const res = await post(server, simple('z@example.com'), { signal: AbortSignal.timeout(5000) });
    const waited = Date.now() - started;
    assert.equal(res.status, 200);
    const body = (await res.json()) as { id: string; message: string };
    assert.equal(body.message, 'Queued. Thank you.');
    assert.match(body.id, ID_SHAPE);
    assert.ok(waited >= DELAY - 10, `answered after ${waited} ms`);
    assert.deepEqual(
      server.calls.map((c) => c.status),
      [0, 200],
    );
    assert.equal(server.calls[1]?.id, body.id);

    // Only the next n: the third call is accepted at once.
    const quick = Date.now();
    const ok = await mg.messages.create(DOMAIN, { from: 'a@shop.example', to: 'w@example.com', subject: 's', text: 't' });
    assert.equal(ok.status, 200);
    assert.ok(Date.now() - quick < DELAY - 10, `third call took ${Date.now() - quick} ms`);
    assert.deepEqual(
      server.messages.map((m) => m.to),
      ['x@example.com', 'y@example.com', 'z@example.com', 'w@example.com'],
    );
  });

  it('mailgun server: stop() while an acceptance is slow resolves promptly and nothing is recorded later', async () => {
    const server = await startServer();
    server.acceptSlowlyNext(1, 300);
    const settled = post(server, simple('x@example.com')).then(
      () => 'answered',
      (err: Error) => err.name,
    );
    await server.waitFor((s) => s.pendingAcceptCount === 1);
    const started = Date.now();
    await server.stop();
    assert.equal(server.pendingAcceptCount, 0);
    assert.ok(Date.now() - started < 250, `stop took ${Date.now() - started} ms`);
    assert.equal(await settled, 'TypeError', 'the client sees its connection closed');
    // Past the slow acceptance's time: still nothing (its timer went with stop()).
    await assert.rejects(
      server.waitFor((s) => s.acceptedCount > 0, 500),
      /condition not met/,
    );
    assert.equal(server.acceptedCount, 0);
    assert.equal(server.events.length, 0);
  });

  it('mailgun server: acceptThenFailNext(1, 502) records the recipients and lists their accepted events, yet answers 502 with a JSON message', async () => {
    const server = await startServer();
    const mg = client(server);
    const emitted: MailgunMessage[] = [];
    server.on('message', (m: MailgunMessage) => emitted.push(m));
    server.acceptThenFailNext(1, 502);

    const res = await post(server, simple(['x@example.com', 'y@example.com']));
    assert.equal(res.status, 502);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(await errorMessage(res), 'Bad gateway');

    assert.deepEqual(
      server.messages.map((m) => m.to),
      ['x@example.com', 'y@example.com'],
    );
    assert.deepEqual(emitted, server.messages);
    const call = server.calls[0];
    assert.ok(call);
    assert.equal(call.status, 502);
    assert.match(call.id ?? '', ID_SHAPE, 'the call was accepted: it has an id');
    const listed = await mg.events.get(DOMAIN, { event: 'accepted', recipient: 'x@example.com OR y@example.com' });
    assert.deepEqual(listed.items.map((e) => e.recipient).sort(), ['x@example.com', 'y@example.com']);
    for (const e of listed.items) assert.equal(e.message.headers['message-id'], (call.id ?? '').slice(1, -1));

    // Through mailgun.js: the error carries status and message; Retry-After is sent when given.
    server.acceptThenFailNext(1, 503, { message: 'upstream timed out', retryAfterSeconds: 3 });
    await assert.rejects(
      mg.messages.create(DOMAIN, { from: 'a@shop.example', to: 'z@example.com', subject: 's', text: 't' }),
      (err: { status?: number; details?: string }) => {
        assert.equal(err.status, 503);
        assert.equal(err.details, 'upstream timed out');
        return true;
      },
    );
    assert.equal(server.countByRecipient().get('z@example.com'), 1);

    // Combined with acceptSlowlyNext: accepted after the delay, then answered with the fault.
    server.acceptSlowlyNext(1, 200);
    server.acceptThenFailNext(1, 504, { retryAfterSeconds: 1 });
    const started = Date.now();
    const slow = await post(server, simple('v@example.com'), { signal: AbortSignal.timeout(5000) });
    assert.equal(slow.status, 504);
    assert.equal(slow.headers.get('retry-after'), '1');
    assert.equal(await errorMessage(slow), 'Gateway timeout');
    assert.ok(Date.now() - started >= 190, `answered after ${Date.now() - started} ms`);

    // Faults spent: the next call is answered 200.
    const ok = await post(server, simple('z@example.com'));
    assert.equal(ok.status, 200);
    await ok.arrayBuffer();
    assert.deepEqual(
      server.calls.map((c) => c.status),
      [502, 503, 504, 200],
    );
    assert.ok(
      server.calls.every((c) => c.id !== undefined),
      'every call was accepted',
    );
    assert.deepEqual(
      server.messages.map((m) => m.to),
      ['x@example.com', 'y@example.com', 'z@example.com', 'v@example.com', 'z@example.com'],
    );
  });

  it('mailgun server: failEvents(503) fails GET events (paging URLs too, auth still first) until heal(); failEventsNext fails only the next n', async () => {
    const server = await startServer();
    const mg = client(server);
    assert.equal((await post(server, simple(['x@example.com', 'y@example.com']))).status, 200);
    const page = await getJson(`${server.url}/v3/${DOMAIN}/events?ascending=yes&limit=1`);

    server.failEvents(503);
    const failed = await fetch(`${server.url}/v3/${DOMAIN}/events`, { headers: { authorization: basicAuth() } });
    assert.equal(failed.status, 503);
    assert.match(failed.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(await errorMessage(failed), 'Service unavailable');
    const nextPage = await fetch(page.paging.next, { headers: { authorization: basicAuth() } });
    assert.equal(nextPage.status, 503, 'a paging URL fails too');
    await nextPage.arrayBuffer();
    await assert.rejects(mg.events.get(DOMAIN), (err: { status?: number }) => err.status === 503);
    const wrongKey = await fetch(`${server.url}/v3/${DOMAIN}/events`, { headers: { authorization: basicAuth('key-wrong') } });
    assert.equal(wrongKey.status, 401, 'auth is checked before failEvents');
    await wrongKey.arrayBuffer();
    // Sending is not affected.
    assert.equal((await post(server, simple('z@example.com'))).status, 200);

    server.heal();
    const healed = await mg.events.get(DOMAIN, { event: 'accepted' });
    assert.equal(healed.status, 200);
    assert.equal(healed.items.length, 3);

    // failEvents(null) clears it too.
    server.failEvents(500, { message: 'events store down' });
    assert.equal(await errorMessage(await fetch(`${server.url}/v3/${DOMAIN}/events`, { headers: { authorization: basicAuth() } })), 'events store down');
    server.failEvents(null);
    assert.equal((await getJson(`${server.url}/v3/${DOMAIN}/events`)).items.length, 3);

    // failEventsNext: the next n requests only, with Retry-After when given.
    server.failEventsNext(2, 500, { retryAfterSeconds: 2 });
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${server.url}/v3/${DOMAIN}/events`, { headers: { authorization: basicAuth() } });
      assert.equal(res.status, 500);
      assert.equal(res.headers.get('retry-after'), '2');
      assert.equal(await errorMessage(res), 'Internal server error');
    }
    assert.equal((await getJson(`${server.url}/v3/${DOMAIN}/events`)).items.length, 3);
  });

  it('mailgun server: heal() clears acceptSlowlyNext, acceptThenFailNext, failEvents and failEventsNext', async () => {
    const server = await startServer();
    server.acceptSlowlyNext(5, 2000);
    server.acceptThenFailNext(5, 502);
    server.failEvents(503);
    server.failEventsNext(5, 500);
    server.heal();
    const started = Date.now();
    const res = await post(server, simple('x@example.com'), { signal: AbortSignal.timeout(1500) });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    assert.ok(Date.now() - started < 1000, `answered after ${Date.now() - started} ms`);
    assert.equal((await getJson(`${server.url}/v3/${DOMAIN}/events`)).items.length, 1);
    assert.deepEqual(
      server.calls.map((c) => c.status),
      [200],
    );
  });

  it('mailgun server: events filter by recipient, event, message-id (with or without <>) and domain', async () => {
    const server = await startServer();
    const mg = client(server);
    const first = await mg.messages.create(DOMAIN, {
      from: 'a@shop.example',
      to: ['ann@example.com', 'bob@example.com'],
      subject: 's1',
      text: 't',
      'v:campaign': 'c1',
    });
    const second = await mg.messages.create(DOMAIN, {
      from: 'a@shop.example',
      to: ['Ann@Example.com', 'cy@example.com'],
      subject: 's2',
      text: 't',
      'v:campaign': 'c2',
    });
    await mg.messages.create('other.example.com', { from: 'a@shop.example', to: 'ann@example.com', subject: 's3', text: 't' });

    const ann = await mg.events.get(DOMAIN, { event: 'accepted', recipient: 'ann@example.com', limit: 300 });
    assert.equal(ann.status, 200);
    // Newest first by default.
    assert.deepEqual(
      ann.items.map((e) => [e.recipient, e.message.headers.subject, e['user-variables']['campaign']]),
      [
        ['Ann@Example.com', 's2', 'c2'],
        ['ann@example.com', 's1', 'c1'],
      ],
    );
    for (const e of ann.items) {
      assert.equal(typeof e.id, 'string');
      assert.equal(e.event, 'accepted');
      assert.equal(typeof e.timestamp, 'number');
      assert.ok(Math.abs(e.timestamp - Date.now() / 1000) < 60);
    }
    const ascending = await mg.events.get(DOMAIN, { recipient: 'ann@example.com', ascending: 'yes' });
    assert.deepEqual(
      ascending.items.map((e) => e.message.headers.subject),
      ['s1', 's2'],
    );

    const withBrackets = await mg.events.get(DOMAIN, { 'message-id': first.id });
    assert.deepEqual(withBrackets.items.map((e) => e.recipient).sort(), ['ann@example.com', 'bob@example.com']);
    const withoutBrackets = await mg.events.get(DOMAIN, { 'message-id': (second.id ?? '').slice(1, -1) });
    assert.deepEqual(withoutBrackets.items.map((e) => e.recipient).sort(), ['Ann@Example.com', 'cy@example.com']);
    for (const e of withoutBrackets.items) assert.equal(e.message.headers['message-id'], (second.id ?? '').slice(1, -1));

    assert.equal((await mg.events.get(DOMAIN, { event: 'delivered' })).items.length, 0);
    assert.equal((await mg.events.get(DOMAIN, { event: 'delivered OR accepted' })).items.length, 4);
    assert.equal((await mg.events.get('other.example.com')).items.length, 1);
    const future = Math.ceil(Date.now() / 1000) + 3600;
    assert.equal((await mg.events.get(DOMAIN, { begin: String(future), ascending: 'yes' })).items.length, 0);
    assert.equal((await mg.events.get(DOMAIN, { begin: String(future), end: '0' })).items.length, 4);

    const badLimit = await fetch(`${server.url}/v3/${DOMAIN}/events?limit=301`, { headers: { authorization: basicAuth() } });
    assert.equal(badLimit.status, 400);
    assert.match(await errorMessage(badLimit), /'limit'/);
    const badPage = await fetch(`${server.url}/v3/${DOMAIN}/events/not-a-token`, { headers: { authorization: basicAuth() } });
    assert.equal(badPage.status, 400);
    assert.match(await errorMessage(badPage), /'page'/);
  });

  it('mailgun server: pages across more than 300 events with mailgun.js events.get (pages.next.page) until empty', async () => {
    const server = await startServer();
    const mg = client(server);
    const sent = [...addresses(700)];
    await mg.messages.create(DOMAIN, { from: 'a@shop.example', to: sent.slice(0, 500), subject: 's', text: 't' });
    await mg.messages.create(DOMAIN, { from: 'a@shop.example', to: sent.slice(500), subject: 's', text: 't' });
    assert.equal(server.events.length, 700);

    const seen: string[] = [];
    const ids = new Set<string>();
    let page = await mg.events.get(DOMAIN, { event: 'accepted', limit: 300, ascending: 'yes' });
    const sizes: number[] = [];
    for (let guard = 0; page.items.length > 0; guard++) {
      assert.ok(guard < 10, 'paging does not end');
      sizes.push(page.items.length);
      for (const e of page.items) {
        seen.push(e.recipient);
        ids.add(e.id);
      }
      assert.ok(page.pages.next.page, 'a next page token');
      page = await mg.events.get(DOMAIN, { page: page.pages.next.page });
    }
    assert.deepEqual(sizes, [300, 300, 100]);
    assert.deepEqual(seen, sent, 'every event once, in order');
    assert.equal(ids.size, 700);

    // The exhausted page's next stays put: an event accepted later shows up there.
    const lastNext = page.pages.next.page;
    await mg.messages.create(DOMAIN, { from: 'a@shop.example', to: 'late@example.com', subject: 's', text: 't' });
    const later = await mg.events.get(DOMAIN, { page: lastNext });
    assert.deepEqual(
      later.items.map((e) => e.recipient),
      ['late@example.com'],
    );

    // Descending (the default), filtered by recipient on a page token, with previous.
    const newest = await mg.events.get(DOMAIN, { limit: 300 });
    assert.equal(newest.items[0]?.recipient, 'late@example.com');
    const older = await mg.events.get(DOMAIN, { page: newest.pages.next.page });
    assert.equal(older.items[0]?.recipient, 'user401@example.com');
    const back = await mg.events.get(DOMAIN, { page: older.pages.previous.page });
    assert.deepEqual(
      back.items.map((e) => e.id),
      newest.items.map((e) => e.id),
    );
  });

  it('mailgun server: raw fetch follows paging.next across more than 300 events until items are empty', async () => {
    const server = await startServer();
    const sent = addresses(650);
    const res = await post(server, simple(sent, { 'v:batch': 'b1' }));
    assert.equal(res.status, 200);
    const { id } = (await res.json()) as { id: string };
    await post(server, simple('other@example.com')).then((r) => r.arrayBuffer());

    const seen: string[] = [];
    let url = `${server.url}/v3/${DOMAIN}/events?message-id=${encodeURIComponent(id)}&ascending=yes&limit=300`;
    for (let guard = 0; ; guard++) {
      assert.ok(guard < 10, 'paging does not end');
      const body = await getJson(url);
      for (const key of ['first', 'last', 'next', 'previous'] as const) assert.ok(body.paging[key].startsWith(`${server.url}/v3/${DOMAIN}/events`), key);
      if (body.items.length === 0) break;
      for (const e of body.items) {
        assert.equal(e.message.headers['message-id'], id.slice(1, -1));
        assert.deepEqual(e['user-variables'], { batch: 'b1' });
        seen.push(e.recipient);
      }
      url = body.paging.next;
    }
    assert.deepEqual(seen, sent);

    const last = await getJson((await getJson(`${server.url}/v3/${DOMAIN}/events?ascending=yes&limit=300`)).paging.last);
    assert.equal(last.items.length, 300);
    assert.equal(last.items[299]?.recipient, 'other@example.com');
    // The `page` query parameter works too.
    const token = last.paging.first.split('/').pop() ?? '';
    assert.equal((await getJson(`${server.url}/v3/${DOMAIN}/events?page=${token}`)).items[0]?.recipient, 'user1@example.com');
  });

  it('mailgun server: suppression lists page like Mailgun (mailgun.js list with pages.next.page, previous and last), per domain, behind auth; POST adds a JSON array or one form entry', async () => {
    const server = await startServer();
    const mg = client(server);
    const created = await mg.suppressions.create(
      DOMAIN,
      'bounces',
      addresses(25, 'b').map((address) => ({ address, code: 550, error: 'No such user' })),
    );
    assert.equal(created.message, '25 addresses have been added to the bounces table');
    await mg.suppressions.create(DOMAIN, 'unsubscribes', { address: 'one@example.com', tag: 'news' });
    server.addSuppression('complaints', 'other.example.com', { address: 'elsewhere@example.com' });
    const seen: string[] = [];
    let page: string | undefined;
    for (let i = 0; i < 10; i++) {
      const res = await mg.suppressions.list(DOMAIN, 'bounces', { limit: 10, ...(page ? { page } : {}) });
      if (!res.items.length) break;
      seen.push(...res.items.map((it) => (it as unknown as { address: string }).address));
      page = (res.pages as Record<string, { page: string }>).next.page;
    }
    assert.deepEqual(seen, [...addresses(25, 'b')].sort(), 'every address once, in address order, over 3 pages and an empty one');
    const first = (await (await fetch(`${server.url}/v3/${DOMAIN}/bounces?limit=10`, { headers: { authorization: basicAuth() } })).json()) as {
      items: Array<{ address: string; code: string; error: string; created_at: string }>;
      paging: Record<string, string>;
    };
    assert.deepEqual(Object.keys(first.items[0]).sort(), ['address', 'code', 'created_at', 'error']);
    assert.equal(first.items[0].code, '550');
    assert.match(first.items[0].created_at, /^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} UTC$/);
    assert.match(
      first.paging.next,
      new RegExp(`^${server.url}/v3/${DOMAIN}/bounces\\?page=next&address=${encodeURIComponent(first.items[9].address).replace(/[.]/g, '\\.')}&limit=10$`),
    );
    const last = (await (await fetch(first.paging.last, { headers: { authorization: basicAuth() } })).json()) as {
      items: Array<{ address: string }>;
      paging: Record<string, string>;
    };
    assert.equal(last.items.length, 10);
    const previous = (await (await fetch(last.paging.previous, { headers: { authorization: basicAuth() } })).json()) as { items: Array<{ address: string }> };
    assert.deepEqual(
      previous.items.map((i) => i.address),
      seen.slice(5, 15),
    );
    assert.deepEqual(
      server.suppressions('unsubscribes', DOMAIN).map((e) => [e.address, e.tags]),
      [['one@example.com', ['news']]],
    );
    assert.deepEqual(server.suppressions('complaints', DOMAIN), [], 'lists are per domain');
    assert.equal((await fetch(`${server.url}/v3/${DOMAIN}/bounces`, { headers: { authorization: basicAuth('key-wrong') } })).status, 401);
  });

  it('mailgun server: simulateEvent writes the event with the message identity, lists the address as Mailgun would, and posts a webhook signed with HMAC-SHA256(timestamp + token)', async () => {
    const server = await startServer();
    const received: Array<{ signature: { timestamp: string; token: string; signature: string }; 'event-data': Record<string, unknown> }> = [];
    const http = await import('node:http');
    const receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        received.push(JSON.parse(body));
        res.end('ok');
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
    try {
      server.setWebhook(`http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook`, 'signing-key-123');
      assert.equal((await post(server, simple('ann@example.com', { 'v:mailover-campaign': 'spring', 'v:mailover-seq': '4' }))).status, 200);
      await assert.rejects(server.simulateEvent('nobody@example.com', 'complained'), /no message to nobody@example\.com was accepted/);
      const { event, webhookStatus } = await server.simulateEvent('ann@example.com', 'failed', { severity: 'permanent' });
      assert.equal(webhookStatus, 200);
      assert.equal(event.severity, 'permanent');
      assert.deepEqual(event['user-variables'], { 'mailover-campaign': 'spring', 'mailover-seq': '4' });
      const [hook] = received;
      const { createHmac } = await import('node:crypto');
      assert.equal(
        hook.signature.signature,
        createHmac('sha256', 'signing-key-123')
          .update(hook.signature.timestamp + hook.signature.token)
          .digest('hex'),
      );
      assert.equal(hook['event-data'].id, event.id);
      assert.deepEqual(
        server.suppressions('bounces', DOMAIN).map((e) => e.address),
        ['ann@example.com'],
      );
      const failed = await client(server).events.get(DOMAIN, { event: 'failed' });
      assert.deepEqual(
        failed.items.map((i) => i.recipient),
        ['ann@example.com'],
        'the events API has it too',
      );
    } finally {
      await new Promise((r) => receiver.close(r));
    }
  });

  it('mailgun server: stop() with a hung request open resolves promptly and is idempotent', async () => {
    const server = await startServer();
    server.hangNext(1);
    const hung = post(server, simple('x@example.com'));
    const settled = hung.then(
      () => 'answered',
      (err: Error) => err.name,
    );
    await server.waitFor((s) => s.callCount === 1 && s.calls[0]?.recipients === 1);
    const started = Date.now();
    await server.stop();
    assert.ok(Date.now() - started < 1000, `stop took ${Date.now() - started} ms`);
    assert.equal(await settled, 'TypeError', 'the client sees its connection closed');
    await server.stop();
    assert.equal(server.acceptedCount, 0);
    await assert.rejects(fetch(`${server.url}/v3/${DOMAIN}/events`, { headers: { authorization: basicAuth() } }));
  });

  it('mailgun server: waitFor and waitForCount are event-driven and reject with a clear message on timeout', async () => {
    const server = await startServer();
    const waiting = server.waitForCount(3);
    const res = await post(server, simple(addresses(3)));
    await res.arrayBuffer();
    await waiting;
    await assert.rejects(server.waitForCount(4, 50), /mailgun-test: expected at least 4 accepted messages within 50 ms, got 3/);
    await assert.rejects(
      server.waitFor((s) => s.callCount > 5, 50),
      /mailgun-test: condition not met within 50 ms \(3 messages accepted, 1 calls\)/,
    );
    server.clear();
    assert.equal(server.acceptedCount, 0);
    assert.equal(server.callCount, 0);
    assert.equal(server.events.length, 0);
  });
});
