/**
 * Payload encryption: the AES-256-GCM payload codec (round trip, key rotation, tampering, key
 * validation), the codec server over real HTTP (token, CORS, limits), and a real campaign on the
 * Temporal dev server with the codec on in a worker process and the clients: the raw history holds
 * only ciphertext, clients with the keys (and the Temporal CLI through the codec server) read it,
 * and histories recorded with the codec replay with it.
 */
import { strict as assert } from 'assert';
import { execFile, spawn } from 'child_process';
import { createHash, randomBytes } from 'crypto';
import { existsSync, readdirSync, readFileSync } from 'fs';
import { join } from 'path';
import { promisify } from 'util';
import { Client } from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import type { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { campaignProgress } from '../../src/client';
import { AesGcmPayloadCodec, CIPHER, ENCRYPTED_ENCODING, KEY_ID_METADATA, PayloadDecryptionError, payloadKeyId } from '../../src/codec/aes-gcm-codec';
import { startCodecServer, type CodecServer } from '../../src/codec/codec-server';
import { dataConverterForKeys } from '../../src/codec/data-converter';
import { parsePayloadKeys, PayloadKeyError, type PayloadKey } from '../../src/codec/payload-keys';
import { ensureTemporalCli } from '../../src/temporal-cli';
import { workflowsPath } from '../../src/worker';
import { audience, Harness, uniqueId } from '../support/harness';
import { HISTORIES_DIR, maybeRecordHistory } from '../support/histories';
import { startDevServer, workflowBundle, writeWorkflowBundle } from '../support/temporal';
import { WorkerProcess } from '../support/worker-process';

const CLI = join(__dirname, '..', '..', 'src', 'cli', 'main.js');
const ENCRYPTED_HISTORIES_DIR = join(HISTORIES_DIR, 'encrypted');
const execFileP = promisify(execFile);

const newKey = (id: string): PayloadKey => ({ id, key: randomBytes(32) });
const keysEnv = (keys: PayloadKey[]) => keys.map((k) => `${k.id}:${k.key.toString('base64')}`).join(',');
/** The current key of the encrypted test campaign, so its recorded history (test/histories/encrypted) can be replayed later. A test fixture, not a secret: derived from a public string. */
const FIXTURE_K2: PayloadKey = { id: 'k2', key: createHash('sha256').update('mailover test fixture key: not a secret').digest() };

const json = (v: unknown): Payload => defaultPayloadConverter.toPayload(v);
const fromPayload = (p: Payload): unknown => defaultPayloadConverter.fromPayload(p);
const meta = (p: Payload, k: string) => (p.metadata?.[k] ? Buffer.from(p.metadata[k]).toString('utf8') : undefined);

type History = temporal.api.history.v1.IHistory;

/** Every payload in a history outside search attributes (which Temporal must index, so they stay plain), with where it was found. */
function historyPayloads(node: unknown, path = '', out: Array<{ path: string; payload: Payload }> = []): Array<{ path: string; payload: Payload }> {
  if (!node || typeof node !== 'object' || node instanceof Uint8Array) return out;
  if (Array.isArray(node)) {
    node.forEach((n, i) => historyPayloads(n, `${path}[${i}]`, out));
    return out;
  }
  const o = node as Record<string, unknown>;
  if (o.metadata && typeof o.metadata === 'object' && 'data' in o) {
    out.push({ path, payload: o as Payload });
    return out;
  }
  for (const [k, v] of Object.entries(o)) if (k !== 'searchAttributes') historyPayloads(v, path ? `${path}.${k}` : k, out);
  return out;
}

/** Failure messages anywhere in a history (activity failures and their causes). */
function failureMessages(node: unknown, out: string[] = []): string[] {
  if (!node || typeof node !== 'object' || node instanceof Uint8Array) return out;
  if (Array.isArray(node)) node.forEach((n) => failureMessages(n, out));
  else {
    for (const [k, v] of Object.entries(node as Record<string, unknown>)) {
      if (k === 'message' && typeof v === 'string') out.push(v);
      else failureMessages(v, out);
    }
  }
  return out;
}

/** Payloads whose bytes contain any of `needles` in plain text. */
function plaintextHits(history: History, needles: string[]): string[] {
  const hits: string[] = [];
  for (const { path, payload } of historyPayloads(history)) {
    const text = Buffer.from(payload.data ?? new Uint8Array()).toString('utf8');
    for (const n of needles) if (text.includes(n)) hits.push(`${path}: ${n}`);
  }
  return hits;
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Namespace': 'default', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

const toWire = (ps: Payload[]) => ({
  payloads: ps.map((p) => ({
    metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
    data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
  })),
});
const fromWire = (text: string): Payload[] =>
  (JSON.parse(text) as { payloads: Array<{ metadata: Record<string, string>; data: string }> }).payloads.map((p) => ({
    metadata: Object.fromEntries(Object.entries(p.metadata).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
    data: Buffer.from(p.data, 'base64'),
  }));

describe('payload encryption (AES-256-GCM codec, codec server, encrypted campaigns)', function () {
  this.timeout(180_000);

  describe('the payload codec', () => {
    it('codec: a round trip restores every payload exactly; the stored form is binary/encrypted with the key id and shows no plaintext', async () => {
      const codec = new AesGcmPayloadCodec([newKey('k1')]);
      const originals = [
        json({ campaignId: 'autumn-newsletter', providers: ['smtp-primary', 'mailgun'] }),
        json('paused by operator'),
        json(42),
        defaultPayloadConverter.toPayload(undefined),
      ];
      const encoded = await codec.encode(originals);
      assert.equal(encoded.length, originals.length);
      for (const p of encoded) {
        assert.equal(meta(p, 'encoding'), ENCRYPTED_ENCODING);
        assert.equal(meta(p, KEY_ID_METADATA), 'k1');
        assert.equal(meta(p, 'encryption-cipher'), CIPHER);
        const raw = Buffer.from(p.data!).toString('latin1');
        for (const word of ['autumn-newsletter', 'smtp-primary', 'json/plain', 'paused']) assert.ok(!raw.includes(word), `ciphertext shows '${word}'`);
      }
      const decoded = await codec.decode(encoded);
      assert.deepEqual(decoded.map(fromPayload), [
        { campaignId: 'autumn-newsletter', providers: ['smtp-primary', 'mailgun'] },
        'paused by operator',
        42,
        undefined,
      ]);
      assert.deepEqual(
        decoded.map((p) => meta(p, 'encoding')),
        originals.map((p) => meta(p, 'encoding')),
      );
      // The same value encrypts differently each time (a fresh nonce per payload).
      const [a, b] = await codec.encode([json('same'), json('same')]);
      assert.notDeepEqual(Buffer.from(a.data!), Buffer.from(b.data!));
    });

    it('codec: payloads that are not encrypted (histories from before the codec was on) pass through decode unchanged', async () => {
      const codec = new AesGcmPayloadCodec([newKey('k1')]);
      const plain = json({ campaignId: 'old-run' });
      assert.deepEqual(await codec.decode([plain]), [plain]);
    });

    it('rotation: after a new key is added first, old payloads still decode by their key id and new payloads use the new key', async () => {
      const k1 = newKey('k1');
      const k2 = newKey('k2');
      const before = new AesGcmPayloadCodec([k1]);
      const [old] = await before.encode([json({ campaignId: 'before-rotation' })]);
      const after = new AesGcmPayloadCodec([k2, k1]);
      assert.equal(after.currentKeyId, 'k2');
      assert.deepEqual(fromPayload((await after.decode([old]))[0]), { campaignId: 'before-rotation' });
      const [fresh] = await after.encode([json({ campaignId: 'after-rotation' })]);
      assert.equal(payloadKeyId(fresh), 'k2');
      assert.deepEqual(fromPayload((await after.decode([fresh]))[0]), { campaignId: 'after-rotation' });
      // Dropping k1 too early is a clear error naming the missing key.
      const k2Only = new AesGcmPayloadCodec([k2]);
      await assert.rejects(
        k2Only.decode([old]),
        (err: Error) => err instanceof PayloadDecryptionError && /key 'k1', which is not in MAILOVER_PAYLOAD_KEYS \(configured: k2\)/.test(err.message),
      );
    });

    it('tampering: an altered ciphertext, a relabelled key id and the wrong key material are refused with an error naming the key id', async () => {
      const k1 = newKey('k1');
      const k2 = newKey('k2');
      const codec = new AesGcmPayloadCodec([k1, k2]);
      const [p] = await codec.encode([json({ campaignId: 'c1' })]);
      const flipped = Buffer.from(p.data!);
      flipped[20] ^= 0x01;
      await assert.rejects(codec.decode([{ ...p, data: flipped }]), /payload encrypted with key 'k1' failed authentication: the payload was altered/);
      const relabelled = { ...p, metadata: { ...p.metadata, [KEY_ID_METADATA]: Buffer.from('k2') } };
      await assert.rejects(codec.decode([relabelled]), /key 'k2' failed authentication/);
      const wrongMaterial = new AesGcmPayloadCodec([{ id: 'k1', key: randomBytes(32) }]);
      await assert.rejects(wrongMaterial.decode([p]), /key 'k1' failed authentication: .*different key material for 'k1'/);
      await assert.rejects(codec.decode([{ ...p, data: Buffer.alloc(5) }]), /key 'k1' is truncated/);
    });

    it('keys: MAILOVER_PAYLOAD_KEYS errors name the variable and the key id and never print the key material', () => {
      const good = randomBytes(32).toString('base64');
      assert.deepEqual(
        parsePayloadKeys(`k2:${good}, k1:${randomBytes(32).toString('base64')}`).map((k) => k.id),
        ['k2', 'k1'],
      );
      const short = randomBytes(16).toString('base64');
      const cases: Array<[string, RegExp, string?]> = [
        [`k1:${short}`, /^MAILOVER_PAYLOAD_KEYS: key 'k1' is 16 bytes, AES-256 needs exactly 32/, short],
        ['k1:not base64!!', /^MAILOVER_PAYLOAD_KEYS: key 'k1' is not valid base64/, 'not base64!!'],
        [good, /^MAILOVER_PAYLOAD_KEYS entry 1: expected id:base64-key \(no ':' found\)/, good],
        [`k1:${good},k1:${good}`, /key id 'k1' appears twice/, good],
        [`bad id:${good}`, /entry 1: key id "bad id" must be/, good],
        [`k1:${good},`, /entry 2: empty/],
      ];
      for (const [value, expected, secret] of cases) {
        assert.throws(
          () => parsePayloadKeys(value),
          (err: Error) => {
            assert.ok(err instanceof PayloadKeyError);
            assert.match(err.message, expected);
            if (secret) assert.ok(!err.message.includes(secret), `the error must not print key material: ${err.message}`);
            return true;
          },
        );
      }
    });
  });

  describe('the codec server over HTTP', () => {
    const token = randomBytes(24).toString('hex');
    const k1 = newKey('k1');
    const codec = new AesGcmPayloadCodec([k1]);
    let server: CodecServer;
    before(async () => {
      server = await startCodecServer({ codec, token, uiOrigins: ['http://localhost:8233'], maxBodyBytes: 64 * 1024 });
    });
    after(async () => {
      await server?.close();
    });

    it('codec server: /decode with the bearer token returns the plain payloads; /encode output decodes back', async () => {
      const encrypted = await codec.encode([json({ campaignId: 'autumn-newsletter' }), json('smtp-primary')]);
      const res = await post(`${server.url}/decode`, toWire(encrypted), { Authorization: `Bearer ${token}` });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(fromWire(res.text).map(fromPayload), [{ campaignId: 'autumn-newsletter' }, 'smtp-primary']);
      const enc = await post(`${server.url}/encode`, toWire([json('from the UI')]), { Authorization: `Bearer ${token}` });
      assert.equal(enc.status, 200, enc.text);
      const [wire] = fromWire(enc.text);
      assert.equal(payloadKeyId(wire), 'k1');
      assert.equal(fromPayload((await codec.decode([wire]))[0]), 'from the UI');
      // The Web UI form: the token as the endpoint's first path segment.
      const viaPath = await post(`${server.url}/${token}/decode`, toWire(encrypted));
      assert.equal(viaPath.status, 200);
      assert.deepEqual(fromWire(viaPath.text).map(fromPayload), [{ campaignId: 'autumn-newsletter' }, 'smtp-primary']);
    });

    it('codec server: without the token, or with a wrong one, it answers 401 and decodes nothing', async () => {
      const encrypted = toWire(await codec.encode([json({ campaignId: 'secret-campaign' })]));
      for (const headers of [
        {} as Record<string, string>,
        { Authorization: 'Bearer wrong-token-0123456789' },
        { Authorization: `Basic ${token}` },
        { Authorization: `Bearer ${token}x` },
      ]) {
        const res = await post(`${server.url}/decode`, encrypted, headers);
        assert.equal(res.status, 401, JSON.stringify(headers));
        assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="mailover codec"');
        assert.ok(!res.text.includes('secret-campaign') && !res.text.includes('payloads'), res.text);
      }
      assert.equal((await post(`${server.url}/wrong-token-0123456789/decode`, encrypted)).status, 401);
      assert.equal((await post(`${server.url}/encode`, toWire([json('x')]))).status, 401);
    });

    it('codec server: a CORS preflight from the Web UI origin is answered with its origin and the Authorization and X-Namespace headers; other origins are refused', async () => {
      const pre = await fetch(`${server.url}/decode`, {
        method: 'OPTIONS',
        headers: {
          Origin: 'http://localhost:8233',
          'Access-Control-Request-Method': 'POST',
          'Access-Control-Request-Headers': 'authorization,content-type,x-namespace',
        },
      });
      assert.equal(pre.status, 204);
      assert.equal(pre.headers.get('access-control-allow-origin'), 'http://localhost:8233');
      assert.match(pre.headers.get('access-control-allow-methods') ?? '', /POST/);
      const allowed = (pre.headers.get('access-control-allow-headers') ?? '').toLowerCase().split(/,\s*/);
      for (const h of ['authorization', 'x-namespace', 'content-type']) assert.ok(allowed.includes(h), `allows ${h}`);
      assert.equal(pre.headers.get('access-control-allow-credentials'), 'true');
      // The actual request from that origin carries the CORS header too.
      const res = await post(`${server.url}/decode`, toWire(await codec.encode([json(1)])), {
        Origin: 'http://localhost:8233',
        Authorization: `Bearer ${token}`,
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('access-control-allow-origin'), 'http://localhost:8233');
      // Another origin gets no CORS grant, and is not served even with the token.
      const evilPre = await fetch(`${server.url}/decode`, {
        method: 'OPTIONS',
        headers: { Origin: 'http://evil.example', 'Access-Control-Request-Method': 'POST' },
      });
      assert.equal(evilPre.status, 403);
      assert.equal(evilPre.headers.get('access-control-allow-origin'), null);
      const evil = await post(`${server.url}/decode`, toWire(await codec.encode([json(1)])), {
        Origin: 'http://evil.example',
        Authorization: `Bearer ${token}`,
      });
      assert.equal(evil.status, 403);
    });

    it('codec server: bad requests get clear errors: a body over the limit 413, malformed JSON 400, a payload of an unknown key 422, wrong method 405, unknown path 404', async () => {
      const auth = { Authorization: `Bearer ${token}` };
      const big = await post(`${server.url}/decode`, { payloads: [{ metadata: {}, data: Buffer.alloc(100 * 1024).toString('base64') }] }, auth);
      assert.equal(big.status, 413);
      assert.match(big.text, /over 65536 bytes/);
      const bad = await post(`${server.url}/decode`, '{"payloads": [', auth);
      assert.equal(bad.status, 400);
      assert.match(bad.text, /body is not JSON/);
      const shape = await post(`${server.url}/decode`, { payloads: [{ metadata: { encoding: 'not base64 !' } }] }, auth);
      assert.equal(shape.status, 400);
      assert.match(shape.text, /payloads\[0\]\.metadata\.encoding: expected a base64 string/);
      const other = await new AesGcmPayloadCodec([newKey('k9')]).encode([json('x')]);
      const unknown = await post(`${server.url}/decode`, toWire(other), auth);
      assert.equal(unknown.status, 422);
      assert.match(unknown.text, /key 'k9', which is not in MAILOVER_PAYLOAD_KEYS/);
      assert.equal((await fetch(`${server.url}/decode`, { headers: auth })).status, 405);
      assert.equal((await post(`${server.url}/other`, {}, auth)).status, 404);
    });

    it('codec server: `mailover codec-server` refuses to start without MAILOVER_CODEC_TOKEN or keys, and serves decode with them', async () => {
      const runCli = (env: NodeJS.ProcessEnv) =>
        execFileP(process.execPath, [CLI, 'codec-server', '--port', '0'], { env: { ...process.env, ...env } }).then(
          () => ({ code: 0, stderr: '' }),
          (err: { code: number; stderr: string }) => ({ code: err.code, stderr: err.stderr }),
        );
      const noToken = await runCli({ MAILOVER_PAYLOAD_KEYS: keysEnv([k1]), MAILOVER_CODEC_TOKEN: '' });
      assert.equal(noToken.code, 1);
      assert.match(noToken.stderr, /MAILOVER_CODEC_TOKEN is not set/);
      const noKeys = await runCli({ MAILOVER_PAYLOAD_KEYS: '', MAILOVER_CODEC_TOKEN: token });
      assert.equal(noKeys.code, 1);
      assert.match(noKeys.stderr, /MAILOVER_PAYLOAD_KEYS is not set/);

      const child = spawn(process.execPath, [CLI, 'codec-server', '--port', '0', '--ui-origin', 'http://127.0.0.1:8233'], {
        env: { ...process.env, MAILOVER_PAYLOAD_KEYS: keysEnv([k1]), MAILOVER_CODEC_TOKEN: token },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      try {
        let out = '';
        const url = await new Promise<string>((resolve, reject) => {
          child.stdout.on('data', (d) => {
            out += d;
            const m = /codec server on (http:\/\/\S+):/.exec(out);
            if (m) resolve(m[1]);
          });
          child.once('exit', (code) => reject(new Error(`codec-server exited ${code}: ${out}`)));
        });
        assert.ok(!out.includes(token) && !out.includes(k1.key.toString('base64')), 'neither the token nor a key is printed');
        const res = await post(`${url}/decode`, toWire(await codec.encode([json('via the CLI server')])), { Authorization: `Bearer ${token}` });
        assert.equal(res.status, 200);
        assert.equal(fromPayload(fromWire(res.text)[0]), 'via the CLI server');
      } finally {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
    });
  });

  describe('an encrypted campaign on the Temporal dev server', () => {
    let env: TestWorkflowEnvironment;
    let h: Harness;
    let worker: WorkerProcess | undefined;
    let server: CodecServer | undefined;
    const k1 = newKey('k1');
    const k2 = FIXTURE_K2;
    const keys = [k2, k1];
    const id = uniqueId('encrypted');
    let history: History;

    before(async () => {
      env = await startDevServer();
      h = await Harness.create({ env, dataConverter: dataConverterForKeys(keys) });
      // The worker runs as `mailover worker` would, with its keys from MAILOVER_PAYLOAD_KEYS.
      worker = await WorkerProcess.start({
        address: env.address,
        taskQueue: h.taskQueue,
        dir: h.dir,
        providers: h.providerDefs,
        sqlitePath: join(h.dir, 'mailover.db'),
        bundlePath: await writeWorkflowBundle(h.dir),
        env: { MAILOVER_PAYLOAD_KEYS: keysEnv(keys) },
      });
      h.primary.failAfter(60, 'refuse');
      const handle = await h.launch(id, audience(150), { batchSize: 30 });
      const result = await handle.result();
      assert.equal(result.status, 'completed');
      assert.deepEqual(result.acceptedByProvider, { 'smtp-primary': 60, 'smtp-secondary': 90 });
      // The raw history, fetched by a client WITHOUT the codec.
      history = await env.client.workflow.getHandle(id).fetchHistory();
      await maybeRecordHistory('encrypted/failover', handle, env.address);
    });
    after(async () => {
      await server?.close();
      await worker?.stop();
      await h?.close();
      await env?.teardown();
    });

    it('encrypted campaign: the worker says it encrypts, and names the current key only', () => {
      assert.match(worker!.output, /payloads encrypted with key k2 \(also decrypts k1\)/);
      assert.ok(!worker!.output.includes(k2.key.toString('base64')));
    });

    it('encrypted campaign: every payload in the raw history is binary/encrypted with key k2; no campaign id, provider name or error text is readable', () => {
      const payloads = historyPayloads(history);
      assert.ok(payloads.length > 20, `the history has payloads (${payloads.length})`);
      for (const { path, payload } of payloads) {
        // Patch markers (workflow.patched) are written by the SDK core, not through the codec; they hold only the patch id.
        if (/markerRecordedEventAttributes\.details\.patch-data/.test(path)) {
          assert.match(
            Buffer.from(payload.data ?? new Uint8Array()).toString('utf8'),
            /^\{"id":"(?:shared-provider-health|hold-kinds|batch-window|window-stale-failure)","deprecated":false\}$/,
          );
          continue;
        }
        assert.equal(meta(payload, 'encoding'), ENCRYPTED_ENCODING, `${path} is encrypted`);
        assert.equal(meta(payload, KEY_ID_METADATA), 'k2', `${path} uses the current key`);
      }
      assert.ok(
        payloads.some((p) => p.path.includes('userMetadata')),
        'activity summaries and the static summary are payloads too, and encrypted',
      );
      assert.deepEqual(plaintextHits(history, [id, 'smtp-primary', 'smtp-secondary', 'batch ', 'refused']), []);
      const failed = history.events!.filter((e) => e.activityTaskFailedEventAttributes);
      assert.ok(failed.length >= 1, 'the failover left a failed activity in the history');
      for (const m of failureMessages(failed)) assert.ok(!/smtp-|refused|127\.0\.0\.1/.test(m), `failure message readable: ${m}`);
      // The check can fail: the committed plain history shows provider names in its payloads.
      const plain = historyFromJSON(JSON.parse(readFileSync(join(HISTORIES_DIR, 'failover.json'), 'utf8')));
      assert.ok(plaintextHits(plain, ['smtp-primary']).length > 0);
    });

    it('encrypted campaign: a client with the keys reads progress normally; one without them cannot', async () => {
      const progress = await campaignProgress(h.client, id);
      assert.equal(progress.status, 'completed');
      assert.equal(progress.activeProvider, 'smtp-secondary');
      assert.equal(progress.switches[0]?.from, 'smtp-primary');
      assert.match(progress.switches[0]?.reason ?? '', /connection refused/i, 'the failure text is decrypted for the workflow');
      await assert.rejects(campaignProgress(env.client, id), /binary\/encrypted|encoding/i);
      // A client holding only k1 (before the rotation) cannot read what k2 wrote, and says which key is missing.
      const oldClient = new Client({ connection: env.connection, dataConverter: dataConverterForKeys([k1]) });
      await assert.rejects(campaignProgress(oldClient, id), /key 'k2', which is not in MAILOVER_PAYLOAD_KEYS/);
    });

    it('encrypted campaign: `mailover campaign status` reads it with MAILOVER_PAYLOAD_KEYS and fails clearly without', async () => {
      const status = (env2: NodeJS.ProcessEnv) =>
        execFileP(process.execPath, [CLI, 'campaign', 'status', id], { env: { ...process.env, TEMPORAL_ADDRESS: env.address, ...env2 } }).then(
          (r) => ({ code: 0, out: r.stdout }),
          (err: { code: number; stderr: string }) => ({ code: err.code, out: err.stderr }),
        );
      const withKeys = await status({ MAILOVER_PAYLOAD_KEYS: keysEnv(keys) });
      assert.equal(withKeys.code, 0, withKeys.out);
      assert.match(withKeys.out, /smtp-secondary/);
      const without = await status({ MAILOVER_PAYLOAD_KEYS: '' });
      assert.equal(without.code, 1);
      assert.match(without.out, /encoding/i);
    });

    it('encrypted campaign: the Temporal CLI shows the decrypted history through the codec server with the token, and nothing decrypted with a wrong one', async () => {
      const token = randomBytes(24).toString('hex');
      server = await startCodecServer({ codec: new AesGcmPayloadCodec(keys), token, uiOrigins: ['http://localhost:8233'] });
      const cli = ensureTemporalCli().path;
      assert.ok(cli, 'the Temporal CLI binary');
      const show = (extra: string[]) =>
        execFileP(cli, ['workflow', 'show', '--address', env.address, '--workflow-id', id, '--output', 'json', ...extra], { maxBuffer: 64 * 1024 * 1024 }).then(
          (r) => ({ ok: true, out: r.stdout }),
          (err: { stderr: string; stdout: string }) => ({ ok: false, out: `${err.stdout}${err.stderr}` }),
        );
      const decoded = await show(['--codec-endpoint', server.url, '--codec-auth', `Bearer ${token}`]);
      assert.ok(decoded.ok, decoded.out);
      const decodedPayloads = historyPayloads(historyFromJSON(JSON.parse(decoded.out)));
      assert.ok(decodedPayloads.length > 20);
      assert.ok(
        decodedPayloads.every((p) => meta(p.payload, 'encoding') !== ENCRYPTED_ENCODING),
        'the CLI decoded every payload through the codec server',
      );
      assert.ok(plaintextHits(historyFromJSON(JSON.parse(decoded.out)), ['smtp-secondary']).length > 0);
      const refused = await show(['--codec-endpoint', server.url, '--codec-auth', 'Bearer wrong-token-0123456789']);
      assert.equal(refused.ok, false, 'with a wrong token the CLI cannot show the history');
      assert.ok(!/smtp-secondary/.test(refused.out), 'a wrong token shows nothing decrypted');
    });

    it('replay with the codec: the encrypted history replays with the codec; without it (or with a wrong key) replay fails', async () => {
      const bundle = await workflowBundle();
      const ok = await Worker.runReplayHistory(
        { workflowBundle: bundle, dataConverter: dataConverterForKeys(keys), replayName: 'codec-replay' },
        history,
        id,
      ).then(
        () => undefined,
        (err: Error) => err,
      );
      assert.equal(ok, undefined, `replay failed: ${ok?.message}`);
      const failure = (options: Parameters<typeof Worker.runReplayHistory>[0]) =>
        Worker.runReplayHistory(options, history, id).then(
          () => 'replayed',
          (err: Error) => `${err.name}: ${err.message} ${(err.cause as Error | undefined)?.message ?? ''}`,
        );
      assert.match(await failure({ workflowBundle: bundle, replayName: 'codec-replay-plain' }), /binary\/encrypted/);
      assert.match(
        await failure({ workflowBundle: bundle, dataConverter: dataConverterForKeys([{ id: 'k2', key: randomBytes(32) }]), replayName: 'codec-replay-wrong' }),
        /key 'k2' failed authentication|Encoded failure/,
      );
    });
  });

  describe('committed encrypted histories (test/histories/encrypted)', () => {
    const files = existsSync(ENCRYPTED_HISTORIES_DIR) ? readdirSync(ENCRYPTED_HISTORIES_DIR).filter((f) => f.endsWith('.json')) : [];

    it('replay with the codec: every committed encrypted history is encrypted (key k2 of the fixture) and replays against the current workflow code', async function () {
      this.timeout(300_000);
      assert.ok(files.includes('failover.json'), 'test/histories/encrypted/failover.json is committed');
      const dataConverter = dataConverterForKeys([FIXTURE_K2]);
      for (const f of files) {
        const history = historyFromJSON(JSON.parse(readFileSync(join(ENCRYPTED_HISTORIES_DIR, f), 'utf8')));
        const payloads = historyPayloads(history);
        assert.ok(payloads.length > 10 && payloads.every((p) => meta(p.payload, 'encoding') === ENCRYPTED_ENCODING), `${f}: every payload is encrypted`);
        // workflowsPath (not the shared bundle): the production path, which bundles the failure converter into the workflow.
        await Worker.runReplayHistory({ workflowsPath: workflowsPath(), dataConverter, replayName: `encrypted-${f}` }, history, f.replace(/\.json$/, ''));
      }
    });
  });
});
