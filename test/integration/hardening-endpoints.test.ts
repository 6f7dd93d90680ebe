/**
 * Hardening from outside (issue 16), the HTTP endpoints: unsubscribe tokens spelled another way,
 * Mailgun webhook tokens given back after a refusal, badly encoded unsubscribe paths, the
 * security headers of the compliance server's pages, and /healthz on the dev stack's metrics port.
 * Real HTTP servers on free ports, a real SQLite store.
 */
import { strict as assert } from 'assert';
import { spawn } from 'child_process';
import { createHash } from 'crypto';
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { ComplianceServer } from '../../src/compliance/server';
import { signUnsubscribeToken, verifyUnsubscribeToken } from '../../src/compliance/tokens';
import { mailgunModule } from '../../src/providers/mailgun';
import { signMailgunWebhook } from '../../src/providers/mailgun/webhooks';
import { openStore } from '../../src/store/open-store';
import type { Store } from '../../src/store/types';
import { TEST_UNSUBSCRIBE_KEY, TEST_WEBHOOK_KEY } from '../support/harness';
import { waitUntil } from '../support/wait';

const ROOT = join(__dirname, '..', '..', '..');
const CLI = join(ROOT, 'build', 'src', 'cli', 'main.js');

const KEY = TEST_UNSUBSCRIBE_KEY;
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * The other spellings of a token whose signature decodes to the same bytes: its 43rd character
 * carries 6 bits of which only the top 4 belong to the 32-byte signature.
 */
function otherSpellings(token: string): string[] {
  const last = BASE64URL.indexOf(token[token.length - 1]);
  return [0, 1, 2, 3]
    .map((low) => (last & ~3) | low)
    .filter((v) => v !== last)
    .map((v) => token.slice(0, -1) + BASE64URL[v]);
}

describe('hardening: compliance server endpoints (real HTTP, SQLite store)', function () {
  this.timeout(30_000);
  let dir: string;
  let store: Store;
  let server: ComplianceServer;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mailover-hardening-endpoints-'));
    store = await openStore({ databaseUrl: '', sqlitePath: join(dir, 'mailover.db') });
    server = await ComplianceServer.start({
      store,
      webhooks: { host: '127.0.0.1', port: 0, maxAgeSeconds: 300, maxBodyBytes: 4096 },
      unsubscribe: { baseUrl: 'http://unused.example', signingKey: KEY, scope: 'all' },
      providerWebhooks: new Map([['mailgun', { signingKey: TEST_WEBHOOK_KEY, webhooks: mailgunModule.webhooks! }]]),
    });
  });
  after(async () => {
    await server?.stop();
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const metric = async (name: string) =>
    Number(new RegExp(`^mailover_${name}_total (\\d+)$`, 'm').exec(await (await fetch(`${server.url}/metrics`)).text())?.[1] ?? NaN);
  const oneClick = (token: string) =>
    fetch(`${server.url}/u/${token}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'List-Unsubscribe=One-Click' });

  it('hardening: an unsubscribe token is accepted in its one spelling only; the three other spellings of its signature are refused (403), nothing suppressed', async () => {
    const token = signUnsubscribeToken(KEY, { campaignId: 'spring', email: 'spelled@example.com' });
    const others = otherSpellings(token);
    assert.equal(others.length, 3);
    for (const other of others) {
      assert.equal(verifyUnsubscribeToken(KEY, other), null, `token ending '${other.slice(-1)}' instead of '${token.slice(-1)}'`);
      assert.equal((await fetch(`${server.url}/u/${other}`)).status, 403, 'the confirmation page refuses it');
      assert.equal((await oneClick(other)).status, 403, 'one-click refuses it');
    }
    assert.equal(await store.isSuppressed('spelled@example.com'), false, 'nothing suppressed by another spelling');
    assert.deepEqual(verifyUnsubscribeToken(KEY, token), { campaignId: 'spring', email: 'spelled@example.com' });
    assert.equal((await oneClick(token)).status, 200, 'the token as signed still works');
    assert.equal(await store.isSuppressed('spelled@example.com'), true);
  });

  it('hardening: a signed Mailgun webhook refused with 400 for its event data has spent its token: the same signature with another body is a replay (409), nobody suppressed', async () => {
    const timestamp = String(Math.floor(Date.now() / 1000));
    const token = `token-${process.pid}-${Date.now()}-spent`;
    const signature = { timestamp, token, signature: signMailgunWebhook(TEST_WEBHOOK_KEY, timestamp, token) };
    const post = (eventData: Record<string, unknown>) =>
      fetch(`${server.url}/webhooks/mailgun`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ signature, 'event-data': eventData }),
      });
    const replayedBefore = await metric('webhook_refused_replayed');

    const refused = await post({ id: 'ev-no-recipient', event: 'complained', timestamp: Date.now() / 1000 });
    assert.equal(refused.status, 400);
    assert.match(await refused.text(), /event-data\.recipient: expected an address/);

    const reused = await post({ id: 'ev-victim', event: 'complained', timestamp: Date.now() / 1000, recipient: 'victim@example.com' });
    assert.equal(reused.status, 409, await reused.text());
    assert.equal(await store.isSuppressed('victim@example.com'), false, 'the reused signature suppressed nobody');
    assert.deepEqual(await store.listEvents({ email: 'victim@example.com' }), []);
    assert.equal(await metric('webhook_refused_replayed'), replayedBefore + 1);
  });

  it('hardening: a badly percent-encoded unsubscribe path (/u/%E0%A4%A) answers 400, not 500, and is counted as refused', async () => {
    const refusedBefore = await metric('unsubscribe_refused');
    for (const path of ['/u/%E0%A4%A', '/u/%', '/u/abc%zz.def']) {
      const page = await fetch(`${server.url}${path}`);
      assert.equal(page.status, 400, `GET ${path}`);
      assert.match(await page.text(), /This unsubscribe link is not valid/);
      assert.equal((await oneClick(path.slice('/u/'.length))).status, 400, `POST ${path}`);
    }
    assert.equal(await metric('unsubscribe_refused'), refusedBefore + 6);
    assert.equal(await metric('request_failed'), 0, 'no request failed inside the server');
  });

  it('hardening: every HTML page of the compliance server carries a Content-Security-Policy and X-Frame-Options; every response says nosniff', async () => {
    const token = signUnsubscribeToken(KEY, { campaignId: 'spring', email: 'headers@example.com' });
    const confirm = await fetch(`${server.url}/u/${token}`);
    const invalid = await fetch(`${server.url}/u/not-a-token`);
    const done = await fetch(`${server.url}/u/${token}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'confirm=yes',
    });
    const badlyEncoded = await fetch(`${server.url}/u/%E0%A4%A`);
    for (const [name, res, status] of [
      ['confirm', confirm, 200],
      ['invalid', invalid, 403],
      ['unsubscribed', done, 200],
      ['badly encoded', badlyEncoded, 400],
    ] as const) {
      assert.equal(res.status, status, name);
      assert.match(res.headers.get('content-type') ?? '', /^text\/html/, name);
      const csp = res.headers.get('content-security-policy') ?? '';
      const directives = new Map(
        csp
          .split(';')
          .map((d) => d.trim().split(/\s+/))
          .map(([k, ...v]) => [k, v.join(' ')]),
      );
      assert.equal(directives.get('default-src'), "'none'", `${name}: ${csp}`);
      assert.equal(directives.get('frame-ancestors'), "'none'", `${name}: ${csp}`);
      assert.equal(directives.get('form-action'), "'self'", `${name}: ${csp}`);
      assert.equal(res.headers.get('x-frame-options'), 'DENY', name);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff', name);
      // The page's own style is allowed by the policy (by its hash); no inline style attribute would be.
      const body = await res.text();
      const style = /<style>([^<]*)<\/style>/.exec(body)?.[1];
      assert.ok(style, `${name}: the page has its style sheet`);
      assert.equal(directives.get('style-src'), `'sha256-${createHash('sha256').update(style).digest('base64')}'`, name);
      assert.doesNotMatch(body, /\sstyle=|<script/i, name);
    }
    for (const [method, path] of [
      ['GET', '/healthz'],
      ['GET', '/metrics'],
      ['GET', '/nowhere'],
      ['PUT', '/u/x'],
      ['GET', '/webhooks/mailgun'],
    ]) {
      const res = await fetch(`${server.url}${path}`, { method });
      await res.arrayBuffer();
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff', `${method} ${path} (${res.status})`);
    }
  });
});

describe("hardening: the dev stack's metrics port (mailover dev as a process, real Temporal dev server)", function () {
  this.timeout(180_000);
  let dir: string;
  let child: ReturnType<typeof spawn> | undefined;
  let out = '';
  let exited: Promise<number | null>;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mailover-hardening-dev-'));
    // The Temporal frontend and Web UI on free ports; the other servers take a free one when their default is taken.
    child = spawn(process.execPath, [CLI, 'dev', '--data', dir, '--port', '0', '--ui-port', '0'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    exited = new Promise((res) => child!.on('close', res));
    await Promise.race([
      waitUntil(() => out.includes('Ctrl-C to stop.'), 'mailover dev to be up', 150_000).catch((err: Error) => {
        throw new Error(`${err.message}; it printed:\n${out}`);
      }),
      exited.then((code) => {
        throw new Error(`mailover dev exited (${code}) before it was up; it printed:\n${out}`);
      }),
    ]);
  });
  after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("hardening: GET /healthz on the dev stack's metrics port answers 200 while its worker runs, as the docs say (the worker's metrics server does the same)", async () => {
    const metricsUrl = /^ {2}metrics +(http:\/\/\S+\/metrics) /m.exec(out)?.[1];
    assert.ok(metricsUrl, `the metrics URL is printed:\n${out}`);
    const health = await fetch(metricsUrl.replace(/\/metrics$/, '/healthz'));
    assert.equal(health.status, 200);
    assert.equal(await health.text(), 'worker RUNNING\n');
    const metrics = await fetch(metricsUrl);
    assert.equal(metrics.status, 200);
    assert.match(await metrics.text(), /^# HELP mailover_/m);
  });
});
