/**
 * The Temporal Web UI with encrypted payloads, as a person sees it: headless Chromium opens an
 * encrypted failover campaign; the UI (whose codec endpoint is mailover's codec server, with the
 * token in the endpoint path) sends the ciphertext to the codec server across origins (CORS)
 * and shows the batch summaries and the result in plain words.
 */
import { strict as assert } from 'assert';
import { randomBytes } from 'crypto';
import { existsSync } from 'fs';
import type { Payload, PayloadCodec } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { chromium, type Browser } from 'playwright-core';
import { AesGcmPayloadCodec, isEncryptedPayload } from '../../src/codec/aes-gcm-codec';
import { startCodecServer, type CodecServer } from '../../src/codec/codec-server';
import { encryptingDataConverter } from '../../src/codec/data-converter';
import { audience, Harness, uniqueId } from '../support/harness';
import { freePort } from '../support/ports';
import { startDevServer } from '../support/temporal';

const CHROMIUM = process.env.MAILOVER_CHROMIUM ?? '/usr/bin/chromium';

/** The codec, counting the encrypted payloads the codec server decodes. */
class CountingCodec implements PayloadCodec {
  decoded = 0;
  constructor(private readonly inner: AesGcmPayloadCodec) {}
  encode(p: Payload[]) {
    return this.inner.encode(p);
  }
  decode(p: Payload[]) {
    this.decoded += p.filter(isEncryptedPayload).length;
    return this.inner.decode(p);
  }
}

describe('Temporal Web UI with encrypted payloads (headless Chromium, codec server)', function () {
  this.timeout(240_000);
  let env: TestWorkflowEnvironment;
  let h: Harness;
  let browser: Browser;
  let server: CodecServer;
  let ui: string;
  const codec = new AesGcmPayloadCodec([{ id: 'k1', key: randomBytes(32) }]);
  const counting = new CountingCodec(codec);

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: install Debian's chromium (apt-get install chromium; .ci/run does) or set MAILOVER_CHROMIUM`);
    const uiPort = await freePort();
    ui = `http://127.0.0.1:${uiPort}`;
    const token = randomBytes(24).toString('hex');
    server = await startCodecServer({ codec: counting, token, uiOrigins: [ui, `http://localhost:${uiPort}`] });
    env = await startDevServer({ uiPort, extraArgs: ['--ui-codec-endpoint', `${server.url}/${token}`] });
    h = await Harness.create({ env, dataConverter: encryptingDataConverter(codec) });
    await h.startWorker();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });
  after(async () => {
    await browser?.close();
    await h?.close();
    await env?.teardown();
    await server?.close();
  });

  it('web ui + codec server: an encrypted failover campaign shows its batch summaries on both providers and its result, decoded by the codec server', async () => {
    const id = uniqueId('webui-codec');
    h.primary.failAfter(50, 'refuse');
    const handle = await h.launch(id, audience(100), { batchSize: 25 });
    const result = await handle.result();
    assert.equal(result.activeProvider, 'smtp-secondary');
    const raw = await env.client.workflow.getHandle(id).fetchHistory();
    const scheduled = raw.events!.find((e) => e.activityTaskScheduledEventAttributes && e.userMetadata?.summary);
    assert.ok(scheduled && isEncryptedPayload(scheduled.userMetadata!.summary!), 'the batch summaries are stored encrypted');

    const page = await browser.newPage({ viewport: { width: 1440, height: 1100 } });
    try {
      await page.goto(`${ui}/namespaces/default/workflows/${id}`);
      await page.getByText('Completed', { exact: true }).first().waitFor({ timeout: 30_000 });
      await page.getByText('sendBatch • batch 3: recipients #51–75 via smtp-primary').waitFor({ timeout: 30_000 });
      await page.getByText('sendBatch • batch 3: recipients #51–75 via smtp-secondary').waitFor();
      const body = await page.locator('body').innerText();
      assert.match(body, /"activeProvider": "smtp-secondary"/, 'the decoded result');
      assert.ok(counting.decoded > 0, 'the UI decoded through the codec server');
    } finally {
      await page.close();
    }
  });
});
