/**
 * Compliance without Temporal: signed tokens, campaign validation, configuration, and the
 * compliance HTTP server (Mailgun webhook signature checks, body limit, unsubscribe endpoint)
 * over real HTTP with a real SQLite store.
 */
import { strict as assert } from 'assert';
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { parseCampaignDefinition } from '../../src/campaign-definition';
import { parseConfig } from '../../src/config';
import { ComplianceServer } from '../../src/compliance/server';
import { mailgunModule } from '../../src/providers/mailgun';
import { signMailgunWebhook } from '../../src/providers/mailgun/webhooks';
import { bounceAddress, bounceTokenMatches, parseBounceAddress, signUnsubscribeToken, verifyUnsubscribeToken } from '../../src/compliance/tokens';
import { listUnsubscribeHeaders } from '../../src/compliance/unsubscribe';
import { InvalidCampaignError } from '../../src/errors';
import { openStore } from '../../src/store/open-store';
import type { Store } from '../../src/store/types';
import { TEST_BOUNCE_KEY, TEST_UNSUBSCRIBE_KEY, TEST_WEBHOOK_KEY } from '../support/harness';

const KEY = TEST_UNSUBSCRIBE_KEY;

describe('compliance: signed tokens', () => {
  it('an unsubscribe token names its campaign and recipient, and verifies only with the key', () => {
    const token = signUnsubscribeToken(KEY, { campaignId: 'spring-sale', email: 'Ann@Example.com' });
    assert.deepEqual(verifyUnsubscribeToken(KEY, token), { campaignId: 'spring-sale', email: 'ann@example.com' });
    assert.equal(verifyUnsubscribeToken('another-key-0123456789', token), null, 'another key');
  });

  it('a forged or altered unsubscribe token is refused: other recipient, other campaign, any changed character', () => {
    const token = signUnsubscribeToken(KEY, { campaignId: 'spring-sale', email: 'ann@example.com' });
    const [payload, sig] = token.split('.');
    const swap = (email: string, campaign = 'spring-sale') => `${Buffer.from(`${campaign}\n${email}`).toString('base64url')}.${sig}`;
    assert.equal(verifyUnsubscribeToken(KEY, swap('bob@example.com')), null, 'payload of another recipient with the old signature');
    assert.equal(verifyUnsubscribeToken(KEY, swap('ann@example.com', 'other')), null, 'another campaign');
    for (let i = 0; i < token.length; i++) {
      if (token[i] === '.') continue;
      const altered = token.slice(0, i) + (token[i] === 'A' ? 'B' : 'A') + token.slice(i + 1);
      assert.equal(verifyUnsubscribeToken(KEY, altered), null, `character ${i} changed`);
    }
    assert.equal(verifyUnsubscribeToken(KEY, `${payload}`), null, 'no signature');
    assert.equal(verifyUnsubscribeToken(KEY, 'x'.repeat(5000)), null, 'oversized');
  });

  it('a VERP bounce address fits RFC 5321 (local part <= 64, lower case), names campaign and seq, and a changed one does not match', () => {
    const s = { domain: 'bounces.example.org', localPart: 'bounces', signingKey: TEST_BOUNCE_KEY };
    const campaignId = 'C'.repeat(128);
    const addr = bounceAddress(s, campaignId, 123_456);
    const local = addr.slice(0, addr.lastIndexOf('@'));
    assert.ok(local.length <= 64, `${local.length} characters`);
    assert.equal(addr, addr.toLowerCase());
    const token = parseBounceAddress(s, addr.toUpperCase());
    assert.ok(token, 'parsed even when a relay changed the case');
    assert.equal(token.seq, 123_456);
    assert.equal(bounceTokenMatches(s.signingKey, token, campaignId), true);
    assert.equal(bounceTokenMatches(s.signingKey, token, 'other-campaign'), false);
    assert.equal(bounceTokenMatches(s.signingKey, { ...token, seq: 123_457 }, campaignId), false, 'another row');
    assert.equal(bounceTokenMatches('another-bounce-key-0123', token, campaignId), false, 'another key');
    assert.equal(parseBounceAddress(s, addr.replace('bounces.example.org', 'evil.example')), null, 'another domain');
  });

  it('List-Unsubscribe carries the https and mailto forms with the same token; List-Unsubscribe-Post is RFC 8058 one-click', () => {
    const h = listUnsubscribeHeaders(
      { baseUrl: 'https://mail.example.org', mailto: 'unsub@bounces.example.org', signingKey: KEY, scope: 'all' },
      'spring',
      'ann@example.com',
    );
    const token = signUnsubscribeToken(KEY, { campaignId: 'spring', email: 'ann@example.com' });
    assert.equal(h['List-Unsubscribe'], `<https://mail.example.org/u/${token}>, <mailto:unsub@bounces.example.org?subject=unsubscribe%20${token}>`);
    assert.equal(h['List-Unsubscribe-Post'], 'List-Unsubscribe=One-Click');
  });
});

describe('compliance: a marketing campaign must carry an unsubscribe link and the postal address', () => {
  const base = { id: 'spring', from: 'news@example.org', providers: ['p'], postalAddress: '1 Main St, Springfield' };
  const problems = (raw: Record<string, unknown>) => {
    try {
      parseCampaignDefinition(raw, ['p']);
    } catch (err) {
      assert.ok(err instanceof InvalidCampaignError);
      return err.problems;
    }
    return [];
  };

  it('a template without {{unsubscribe_url}} fails validation naming each part; without postalAddress too', () => {
    assert.deepEqual(problems({ ...base, postalAddress: undefined, template: { subject: 'Hi', text: 'Hello', html: '<p>Hello</p>' } }), [
      "postalAddress: a marketing campaign must name the sender's postal address (or set transactional: true for non-marketing mail)",
      'template.text: a marketing campaign must carry an unsubscribe link: put {{unsubscribe_url}} in it (or set transactional: true for non-marketing mail)',
      "template.text: a marketing campaign must show the sender's postal address: put {{postal_address}} in it (or set transactional: true for non-marketing mail)",
      'template.html: a marketing campaign must carry an unsubscribe link: put {{unsubscribe_url}} in it (or set transactional: true for non-marketing mail)',
      "template.html: a marketing campaign must show the sender's postal address: put {{postal_address}} in it (or set transactional: true for non-marketing mail)",
    ]);
  });

  it('the link in text but not in html is still refused for the html part', () => {
    assert.deepEqual(problems({ ...base, template: { subject: 'Hi', text: '{{unsubscribe_url}} {{postal_address}}', html: '<p>{{postal_address}}</p>' } }), [
      'template.html: a marketing campaign must carry an unsubscribe link: put {{unsubscribe_url}} in it (or set transactional: true for non-marketing mail)',
    ]);
  });

  it('the postal address may be written out instead of {{postal_address}}; transactional: true lifts both rules', () => {
    assert.deepEqual(problems({ ...base, template: { subject: 'Hi', text: 'Bye: {{unsubscribe_url}}\n1 Main St, Springfield' } }), []);
    const def = parseCampaignDefinition(
      { id: 'receipt', from: 'shop@example.org', providers: ['p'], transactional: true, template: { subject: 'Receipt', text: 'Thanks' } },
      ['p'],
    );
    assert.equal(def.transactional, true);
  });

  it('transactional, postalAddress and list must be well-formed', () => {
    assert.deepEqual(problems({ ...base, transactional: 'yes', postalAddress: '', list: 'has space', template: { subject: 'Hi', text: 'x' } }).slice(0, 3), [
      'transactional: expected true or false, got "yes"',
      'postalAddress: expected the sender\'s postal address (1-500 characters), got ""',
      "list: expected a list name (letters, digits, '.', '_', '-'), got \"has space\"",
    ]);
  });
});

describe('compliance: configuration', () => {
  const providers = [{ name: 'mg', kind: 'mailgun', domain: 'mg.example.org', apiKey: '${MG_KEY}', webhookSigningKey: '${MG_HOOK_KEY}' }];
  const env = { MG_KEY: 'key-1', MG_HOOK_KEY: 'hook-key-0123456789', UNSUB: TEST_UNSUBSCRIBE_KEY, BOUNCE: TEST_BOUNCE_KEY };

  it('unsubscribe:, webhooks: and bounces: are read with their defaults; signing keys come from the environment', () => {
    const c = parseConfig(
      {
        providers,
        unsubscribe: { baseUrl: 'https://mail.example.org/', mailto: 'unsub@bounces.example.org', signingKey: '${UNSUB}', scope: 'list' },
        webhooks: { port: 9000, maxAgeSeconds: 120 },
        bounces: { domain: 'Bounces.Example.org', signingKey: '${BOUNCE}' },
      },
      env,
    );
    assert.deepEqual(c.compliance.unsubscribe, {
      baseUrl: 'https://mail.example.org',
      mailto: 'unsub@bounces.example.org',
      signingKey: TEST_UNSUBSCRIBE_KEY,
      scope: 'list',
    });
    assert.deepEqual(c.compliance.webhooks, { host: '127.0.0.1', port: 9000, maxAgeSeconds: 120, maxBodyBytes: 65536 });
    assert.deepEqual(c.compliance.bounces, {
      domain: 'bounces.example.org',
      localPart: 'bounces',
      signingKey: TEST_BOUNCE_KEY,
      host: '127.0.0.1',
      port: 2525,
      maxMessageBytes: 1048576,
    });
    assert.equal(c.providers[0].kind === 'mailgun' && c.providers[0].webhookSigningKey, 'hook-key-0123456789');
  });

  it('a signing key written into the file is refused, naming the field; bad values name theirs', () => {
    assert.throws(
      () =>
        parseConfig(
          {
            providers: [{ ...providers[0], webhookSigningKey: 'literal-key-123456' }],
            unsubscribe: { baseUrl: 'https://x.example', signingKey: 'literal-unsubscribe-key' },
            bounces: { domain: 'b.example.org', signingKey: 'literal-bounce-key-123' },
          },
          env,
        ),
      (err: Error) => {
        assert.match(
          err.message,
          /providers\[0\]\.webhookSigningKey: write secrets as environment references \(webhookSigningKey: "\$\{MG_WEBHOOK_SIGNING_KEY\}"\)/,
        );
        assert.match(err.message, /unsubscribe\.signingKey: write secrets as environment references/);
        assert.match(err.message, /bounces\.signingKey: write secrets as environment references/);
        return true;
      },
    );
    assert.throws(
      () => parseConfig({ providers, unsubscribe: { baseUrl: 'ftp://x', signingKey: '${UNSUB}', scope: 'some' }, webhooks: { maxAgeSeconds: 0 } }, env),
      (err: Error) => {
        assert.match(err.message, /unsubscribe\.baseUrl: expected the public http\(s\) URL of the webhooks server, got "ftp:\/\/x"/);
        assert.match(err.message, /unsubscribe\.scope: expected all or list, got "some"/);
        assert.match(err.message, /webhooks\.maxAgeSeconds: expected a whole number from 1 to 86400, got 0/);
        return true;
      },
    );
  });

  it('bounces.tls names a certificate and key the listener can read; a missing file or a bad shape is refused naming the field', () => {
    const here = __filename;
    const c = parseConfig({ providers, bounces: { domain: 'b.example.org', signingKey: '${BOUNCE}', tls: { certFile: here, keyFile: here } } }, env);
    assert.deepEqual(c.compliance.bounces?.tls, { certFile: here, keyFile: here });
    assert.throws(
      () =>
        parseConfig(
          { providers, bounces: { domain: 'b.example.org', signingKey: '${BOUNCE}', tls: { certFile: '/nowhere/cert.pem', keyFile: 7, ca: 'x' } } },
          env,
        ),
      (err: Error) => {
        assert.match(err.message, /bounces\.tls\.certFile: cannot read \/nowhere\/cert\.pem: ENOENT/);
        assert.match(err.message, /bounces\.tls\.keyFile: expected the path of a PEM file, got 7/);
        assert.match(err.message, /bounces\.tls\.ca: unknown field \(expected certFile, keyFile\)/);
        return true;
      },
    );
    assert.throws(
      () => parseConfig({ providers, bounces: { domain: 'b.example.org', signingKey: '${BOUNCE}', tls: true } }, env),
      /bounces\.tls: expected a mapping with certFile and keyFile \(PEM files\), got true/,
    );
  });
});

describe('compliance HTTP server (real HTTP, SQLite store)', function () {
  this.timeout(30_000);
  let dir: string;
  let store: Store;
  let server: ComplianceServer;
  const WINDOW = 300;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mailover-compliance-'));
    store = await openStore({ databaseUrl: '', sqlitePath: join(dir, 'mailover.db') });
    server = await ComplianceServer.start({
      store,
      webhooks: { host: '127.0.0.1', port: 0, maxAgeSeconds: WINDOW, maxBodyBytes: 4096 },
      unsubscribe: { baseUrl: 'http://unused.example', signingKey: KEY, scope: 'all' },
      providerWebhooks: new Map([['mailgun', { signingKey: TEST_WEBHOOK_KEY, webhooks: mailgunModule.webhooks! }]]),
    });
  });
  after(async () => {
    await server?.stop();
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  let n = 0;
  function signed(eventData: Record<string, unknown>, opts: { key?: string; at?: number; token?: string } = {}) {
    const timestamp = String(opts.at ?? Math.floor(Date.now() / 1000));
    const token = opts.token ?? `token-${process.pid}-${++n}-${Math.random().toString(36).slice(2)}`;
    return { signature: { timestamp, token, signature: signMailgunWebhook(opts.key ?? TEST_WEBHOOK_KEY, timestamp, token) }, 'event-data': eventData };
  }
  const complaint = (email: string) => ({ id: `ev-${++n}`, event: 'complained', timestamp: Date.now() / 1000, recipient: email, 'user-variables': {} });
  const post = (body: unknown, path = '/webhooks/mailgun') =>
    fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const metric = async (name: string) =>
    Number(new RegExp(`^mailover_${name}_total (\\d+)$`, 'm').exec(await (await fetch(`${server.url}/metrics`)).text())?.[1]);

  it('webhook signatures: a valid request is accepted and suppresses; forged, stale and replayed ones get 4xx, change nothing, and are counted', async () => {
    const valid = signed(complaint('valid@example.com'));
    const ok = await post(valid);
    assert.equal(ok.status, 200, await ok.text());
    assert.equal(await store.isSuppressed('valid@example.com'), true);

    const forged = await post(signed(complaint('forged@example.com'), { key: 'not-the-signing-key' }));
    assert.equal(forged.status, 401);
    const tampered = signed(complaint('tampered@example.com'));
    tampered.signature.timestamp = String(Number(tampered.signature.timestamp) - 1);
    assert.equal((await post(tampered)).status, 401, 'timestamp changed after signing');
    const stale = await post(signed(complaint('stale@example.com'), { at: Math.floor(Date.now() / 1000) - WINDOW - 60 }));
    assert.equal(stale.status, 400);
    assert.match(await stale.text(), /stale request/);
    const replay = await post(valid);
    assert.equal(replay.status, 409);
    const replayOther = await post({ ...valid, 'event-data': complaint('replayed@example.com') });
    assert.equal(
      replayOther.status,
      409,
      "Mailgun's signature covers timestamp and token, not the body: a captured signature on a new body is caught as a replay",
    );
    const sameToken = await post(signed(complaint('replayed@example.com'), { token: valid.signature.token }));
    assert.equal(sameToken.status, 409, 'a correctly signed request reusing a seen token is a replay');

    for (const e of ['forged', 'tampered', 'stale', 'replayed']) assert.equal(await store.isSuppressed(`${e}@example.com`), false, e);
    assert.equal(await metric('webhook_accepted'), 1);
    assert.equal(await metric('webhook_refused_forged'), 2);
    assert.equal(await metric('webhook_refused_stale'), 1);
    assert.equal(await metric('webhook_refused_replayed'), 3);
    assert.equal((await store.listEvents({ email: 'valid@example.com' }))[0]?.type, 'complained');
  });

  it('webhooks: an oversized body is refused with 413; malformed JSON with 400; an unknown provider with 404; events mailover does not track are acknowledged', async () => {
    const big = await post(signed({ ...complaint('big@example.com'), padding: 'x'.repeat(10_000) }));
    assert.equal(big.status, 413);
    const bad = await fetch(`${server.url}/webhooks/mailgun`, { method: 'POST', body: '{not json' });
    assert.equal(bad.status, 400);
    assert.equal((await post(signed(complaint('x@example.com')), '/webhooks/ses')).status, 404);
    const opened = await post(signed({ id: 'ev-open', event: 'opened', timestamp: Date.now() / 1000, recipient: 'o@example.com' }));
    assert.equal(opened.status, 200);
    assert.match(await opened.text(), /ignored event "opened"/);
    assert.equal(await store.isSuppressed('big@example.com'), false);
    assert.equal(await metric('webhook_refused_too_large'), 1);
  });

  it('webhooks: a temporary failure is stored and does not suppress; a permanent one suppresses; delivered is stored', async () => {
    const fail = (email: string, severity: string) => ({
      id: `ev-${++n}`,
      event: 'failed',
      severity,
      timestamp: Date.now() / 1000,
      recipient: email,
      reason: 'generic',
      'delivery-status': { code: severity === 'permanent' ? 550 : 421, message: 'mailbox says no', description: '' },
    });
    assert.equal((await post(signed(fail('soft@example.com', 'temporary')))).status, 200);
    assert.equal((await post(signed(fail('hard@example.com', 'permanent')))).status, 200);
    assert.equal((await post(signed({ id: `ev-${++n}`, event: 'delivered', timestamp: Date.now() / 1000, recipient: 'fine@example.com' }))).status, 200);
    assert.equal(await store.isSuppressed('soft@example.com'), false);
    assert.equal(await store.isSuppressed('hard@example.com'), true);
    assert.equal(await store.isSuppressed('fine@example.com'), false);
    const [soft] = await store.listEvents({ email: 'soft@example.com' });
    assert.equal(soft.type, 'failed-temporary');
    assert.equal(soft.reason, 'reason generic; code 421; mailbox says no');
    assert.equal((await store.listEvents({ email: 'fine@example.com' }))[0].type, 'delivered');
    const hard = (await store.listSuppressions()).find((r) => r.email === 'hard@example.com');
    assert.equal(hard?.source, 'mailgun');
    assert.match(hard?.reason ?? '', /^hard bounce \(mailgun\): reason generic; code 550; mailbox says no$/);
  });

  it('unsubscribe: a GET shows a confirmation page and changes nothing; a forged token is refused with 403', async () => {
    const token = signUnsubscribeToken(KEY, { campaignId: 'c1', email: 'page@example.com' });
    const page = await fetch(`${server.url}/u/${token}`);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /<form method="post">/);
    assert.match(html, /p\*\*\*@example\.com/, 'the address is shown masked');
    assert.equal(await store.isSuppressed('page@example.com'), false, 'a link scanner GET does not unsubscribe');
    const forged = signUnsubscribeToken('attacker-key-0123456789', { campaignId: 'c1', email: 'victim@example.com' });
    assert.equal((await fetch(`${server.url}/u/${forged}`)).status, 403);
    const post1 = await fetch(`${server.url}/u/${forged}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'List-Unsubscribe=One-Click',
    });
    assert.equal(post1.status, 403);
    assert.equal(await store.isSuppressed('victim@example.com'), false);
    // The page's button: a form POST without the one-click body.
    const confirmed = await fetch(`${server.url}/u/${token}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'confirm=yes',
    });
    assert.equal(confirmed.status, 200);
    assert.match(await confirmed.text(), /will get no more email/);
    assert.equal(await store.isSuppressed('page@example.com'), true);
  });
});
