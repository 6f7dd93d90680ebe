/**
 * Adding an ESP is one folder: a throwaway "file-drop" ESP, written by this test into a temporary
 * folder as plain JavaScript (config check, secret field, sending adapter, signed webhooks and an
 * emulator), registered through the registry's public API alone, configured in a provider file
 * and sent a real campaign through on a Temporal dev server: every recipient once. Its webhooks
 * reach the compliance server, and its config errors name their field paths, with no change
 * anywhere else in mailover.
 */
import { strict as assert } from 'assert';
import { createHmac } from 'crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { startComplianceServices } from '../../src/compliance/services';
import { ConfigError, loadConfig, parseConfig } from '../../src/config';
import { providerKinds, providerModule, registerProviderModule } from '../../src/providers/modules';
import type { ProviderModule } from '../../src/providers/provider-module';
import { ProviderRegistry } from '../../src/providers/registry';
import { createCampaignWorker } from '../../src/worker';
import { assertExactlyOnce, audience, Harness, uniqueId } from '../support/harness';
import { writeProviderFile } from '../support/provider-file';
import { startDevServer, workflowBundle } from '../support/temporal';

const SRC = join(__dirname, '..', '..', 'src');

/** The whole ESP: what a contributor would put in src/providers/file-drop/ (here as plain JavaScript). */
const FILE_DROP_MODULE = `
'use strict';
const { createHmac, randomUUID, timingSafeEqual } = require('crypto');
const { EventEmitter } = require('events');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { ProviderUnavailableError, TransientProviderError } = require(${JSON.stringify(join(SRC, 'errors'))});
const { WebhookBodyError } = require(${JSON.stringify(join(SRC, 'providers', 'provider-module'))});

/** Each accepted message is one JSON file in the drop folder. */
function readDrop(dir) {
  return fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort().map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')));
}

class FileDropProvider {
  constructor(config) {
    this.kind = 'file-drop';
    this.name = config.name;
    this.config = config;
    this.inDoubtWindowMs = 1000;
  }
  async sendBatch(messages, report, dispatching, signal) {
    const ready = dispatching ? await dispatching(messages) : messages;
    for (const m of ready) {
      if (signal && signal.aborted) throw new TransientProviderError(this.name + ': cancelled');
      const id = m.campaignId + '.' + m.seq + '.' + randomUUID();
      const drop = { id, to: m.to, from: m.envelopeFrom || m.from, subject: m.subject, headers: m.headers || {}, token: this.config.token };
      fs.writeFileSync(path.join(this.config.dir, id + '.json'), JSON.stringify(drop));
      await report(m, { status: 'accepted', providerMessageId: id });
    }
  }
  classify(err) {
    return new TransientProviderError(this.name + ': ' + (err && err.message));
  }
  async verify() {
    if (!fs.existsSync(this.config.dir)) throw new ProviderUnavailableError(this.name + ': no drop folder ' + this.config.dir);
  }
  async close() {}
}

class FileDropInbox extends EventEmitter {
  constructor(name, dir) {
    super();
    this.name = name;
    this.endpoint = dir;
  }
  get acceptedCount() { return readDrop(this.endpoint).length; }
  received() {
    const lower = (h) => Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));
    return readDrop(this.endpoint).map((d) => ({ to: d.to, from: d.from, headers: lower(d.headers) }));
  }
  countByRecipient() {
    const counts = new Map();
    for (const d of readDrop(this.endpoint)) counts.set(d.to.toLowerCase(), (counts.get(d.to.toLowerCase()) || 0) + 1);
    return counts;
  }
  async stop() { fs.rmSync(this.endpoint, { recursive: true, force: true }); }
}

exports.fileDropModule = {
  kind: 'file-drop',
  title: 'File drop',
  parseConfig(raw, at, problems) {
    if (typeof raw.dir !== 'string' || !path.isAbsolute(raw.dir)) problems.push(at + '.dir: expected an absolute folder path, got ' + JSON.stringify(raw.dir));
    if (typeof raw.token !== 'string' || raw.token.length < 8) problems.push(at + '.token: expected the drop token (8 characters or more), as an environment reference');
    return raw;
  },
  secrets: [{ path: 'token', envSuffix: 'DROP_TOKEN' }],
  create: (config) => new FileDropProvider(config),
  webhooks: {
    signingKey: (config) => config.token,
    parse(body, key) {
      let b;
      try { b = JSON.parse(body.toString('utf8')); } catch (e) { throw new WebhookBodyError('expected a JSON body'); }
      if (!b || typeof b.nonce !== 'string' || typeof b.at !== 'number' || typeof b.sig !== 'string') throw new WebhookBodyError('expected nonce, at and sig');
      const want = createHmac('sha256', key).update(b.at + '.' + b.nonce).digest();
      const got = Buffer.from(b.sig, 'hex');
      return {
        signatureValid: got.length === want.length && timingSafeEqual(got, want),
        signedAtSeconds: b.at,
        token: b.nonce,
        eventName: b.type,
        event: (provider) => (b.type === 'complaint' ? { provider, providerEventId: b.nonce, type: 'complained', occurredAt: new Date(b.at * 1000), email: b.email, reason: 'marked as spam' } : null),
      };
    },
  },
  emulator: {
    description: 'a drop folder',
    async start(opts) {
      return new FileDropInbox(opts.name, fs.mkdtempSync(path.join(os.tmpdir(), 'mailover-file-drop-')));
    },
    config: (inbox) => ({ kind: 'file-drop', name: inbox.name, dir: inbox.endpoint, token: 'drop-token-0123456789' }),
  },
};
`;

describe('provider modules: a new ESP is one folder', function () {
  this.timeout(180_000);
  const dir = mkdtempSync(join(tmpdir(), 'mailover-esp-module-'));
  let unregister: () => void = () => undefined;

  before(async () => {
    const folder = join(dir, 'file-drop');
    mkdirSync(folder);
    writeFileSync(join(folder, 'index.js'), FILE_DROP_MODULE);
    const { fileDropModule } = (await import(join(folder, 'index.js'))) as { fileDropModule: ProviderModule };
    unregister = registerProviderModule(fileDropModule);
  });
  after(() => {
    unregister();
    rmSync(dir, { recursive: true, force: true });
  });

  it('module: registered through the registry alone, its kind is known to the config, whose errors name its field paths', () => {
    assert.ok(providerKinds().includes('file-drop'));
    assert.throws(() => registerProviderModule({ ...providerModule('file-drop') }), /a provider module of kind 'file-drop' is already registered/);
    assert.throws(
      () => parseConfig({ providers: [{ name: 'a', kind: 'pigeon' }] }, {}),
      (err: Error) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /providers\[0\]\.kind: expected one of smtp, mailgun(, [a-z-]+)*, file-drop, got "pigeon"/);
        return true;
      },
    );
    assert.throws(
      () => parseConfig({ providers: [{ name: 'drop', kind: 'file-drop', dir: 'relative/path', token: 'literal-token-123' }] }, {}),
      (err: Error) => {
        assert.match(err.message, /providers\[0\]\.token: write secrets as environment references \(token: "\$\{DROP_DROP_TOKEN\}"\), not in the file/);
        assert.match(err.message, /providers\[0\]\.dir: expected an absolute folder path, got "relative\/path"/);
        assert.ok(!err.message.includes('literal-token-123'), 'the secret is not echoed');
        return true;
      },
    );
    assert.throws(
      () => parseConfig({ providers: [{ name: 'drop', kind: 'file-drop', dir: '/tmp', token: '${DROP_TOKEN}' }] }, {}),
      /providers\[0\]\.token: environment variable DROP_TOKEN is not set/,
    );
  });

  describe('a campaign through it (real Temporal dev server)', () => {
    let env: TestWorkflowEnvironment;
    let h: Harness;
    let worker: Worker | undefined;
    let running: Promise<void> | undefined;

    before(async () => {
      env = await startDevServer();
      h = await Harness.create({ env, esps: [{ kind: 'file-drop', name: 'drop' }] });
    });
    after(async () => {
      if (worker?.getState() === 'RUNNING') worker.shutdown();
      await running;
      await h?.close();
      await env?.teardown();
    });

    it('module: configured in a provider file (secret as an environment reference), a campaign is delivered through it exactly once; its signed webhooks reach the compliance server', async () => {
      // The provider file a user would write, read back as `mailover worker` reads it.
      const configPath = join(h.dir, 'providers.yaml');
      const secrets = writeProviderFile(configPath, h.providerDefs);
      const config = loadConfig(configPath, { ...process.env, ...secrets });
      const drop = config.providers.find((p) => p.name === 'drop')! as unknown as { kind: string; dir: string; token: string };
      assert.equal(drop.kind, 'file-drop');
      assert.equal(drop.dir, h.esp('drop').endpoint);
      assert.equal(drop.token, 'drop-token-0123456789', 'the secret is resolved from the environment');
      const registry = new ProviderRegistry(config.providers);
      worker = await createCampaignWorker({
        connection: env.nativeConnection,
        taskQueue: h.taskQueue,
        store: h.store,
        providers: registry,
        compliance: h.compliance,
        workflowBundle: await workflowBundle(),
      });
      running = worker.run();

      const n = 40;
      const id = uniqueId('file-drop');
      const handle = await h.launch(id, audience(n), { providers: ['drop'], batchSize: 15 });
      const result = await handle.result();
      assert.equal(result.accepted, n);
      assert.deepEqual(result.acceptedByProvider, { drop: n });
      assertExactlyOnce(h, n);
      const first = h.esp('drop').received()[0];
      assert.match(first.headers['list-unsubscribe'] ?? '', /unsubscribe\.mailover\.test/, 'the engine rendered the message as for any ESP');

      // Its webhooks, through the compliance server that only knows the modules.
      const services = await startComplianceServices(
        { providers: config.providers, compliance: { webhooks: { host: '127.0.0.1', port: 0, maxAgeSeconds: 60, maxBodyBytes: 4096 } } },
        h.store,
        { http: 0 },
      );
      try {
        const post = (key: string, nonce: string) => {
          const at = Math.floor(Date.now() / 1000);
          const sig = createHmac('sha256', key).update(`${at}.${nonce}`).digest('hex');
          return fetch(`${services.http.url}/webhooks/drop`, {
            method: 'POST',
            body: JSON.stringify({ nonce, at, sig, type: 'complaint', email: 'user7@example.com' }),
          });
        };
        const forged = await post('not-the-token', uniqueId('nonce'));
        assert.equal(forged.status, 401);
        const nonce = uniqueId('nonce');
        const ok = await post(drop.token, nonce);
        assert.equal(ok.status, 200, await ok.text());
        assert.equal((await post(drop.token, nonce)).status, 409, 'a replay is refused');
        assert.equal(await h.store.isSuppressed('user7@example.com'), true);
      } finally {
        await services.stop();
      }
      await worker.shutdown();
      await running;
    });
  });
});
