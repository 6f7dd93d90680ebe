/**
 * The Temporal Web UI, as a person sees it: headless Chromium (Debian's chromium driven by
 * playwright-core, no browser download) finds a finished failover campaign by its search
 * attributes and shows its status, active provider and what happened in words.
 * MAILOVER_UPDATE_SCREENSHOT=1 refreshes docs/web-ui-campaign.png, which the README shows.
 */
import { strict as assert } from 'assert';
import { existsSync } from 'fs';
import { join } from 'path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { chromium, type Browser } from 'playwright-core';
import { audience, Harness, ONE_AT_A_TIME, uniqueId } from '../support/harness';
import { freePort } from '../support/ports';
import { startDevServer } from '../support/temporal';

const CHROMIUM = process.env.MAILOVER_CHROMIUM ?? '/usr/bin/chromium';

describe('Temporal Web UI (headless Chromium)', function () {
  this.timeout(180_000);
  let env: TestWorkflowEnvironment;
  let h: Harness;
  let browser: Browser;
  let ui: string;

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: install Debian's chromium (apt-get install chromium; .ci/run does) or set MAILOVER_CHROMIUM`);
    const uiPort = await freePort();
    env = await startDevServer({ uiPort });
    ui = `http://127.0.0.1:${uiPort}`;
    h = await Harness.create({ env, mailgun: true });
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
  });

  it('web ui: a finished failover campaign is found by CampaignId and shows its status, active provider and what happened', async () => {
    const id = uniqueId('webui');
    h.primary.failAfter(150, 'refuse');
    // One batch at a time: the relay's refusals start with batch 4 (#151), which the details name.
    const handle = await h.launch(id, audience(400), { providers: ['smtp-primary', 'mailgun'], batchSize: 50, options: ONE_AT_A_TIME });
    const result = await handle.result();
    assert.equal(result.activeProvider, 'mailgun');

    const page = await browser.newPage({ viewport: { width: 1440, height: 1100 } });
    try {
      // The list, filtered by the custom search attributes.
      const query = encodeURIComponent(`CampaignId = "${id}" AND ActiveProvider = "mailgun" AND CampaignStatus = "completed"`);
      await page.goto(`${ui}/namespaces/default/workflows?query=${query}`);
      await page.getByRole('link', { name: id, exact: true }).first().waitFor({ timeout: 30_000 });
      // The campaign itself.
      await page.goto(`${ui}/namespaces/default/workflows/${id}`);
      await page.getByText('Completed', { exact: true }).first().waitFor({ timeout: 30_000 });
      // The event history timeline names every batch by its activity summary, the failed one included.
      await page.getByText('sendBatch • batch 4: recipients #151–200 via smtp-primary').waitFor({ timeout: 30_000 });
      await page.getByText('sendBatch • batch 4: recipients #151–200 via mailgun').waitFor();
      const overview = await page.locator('body').innerText();
      assert.match(overview, /"activeProvider": "mailgun"/, 'the result shows the active provider');
      const shot =
        process.env.MAILOVER_UPDATE_SCREENSHOT === '1' ? join(__dirname, '..', '..', '..', 'docs', 'web-ui-campaign.png') : join(h.dir, 'web-ui-campaign.png');
      await page.screenshot({ path: shot });
      assert.ok(existsSync(shot));
      // Summary and current details, in words.
      await page.getByText('User Metadata', { exact: true }).click();
      // Current details render in a frame of their own: read every frame.
      const everyFrame = async () =>
        (
          await Promise.all(
            page.frames().map((f) =>
              f
                .locator('body')
                .innerText()
                .catch(() => ''),
            ),
          )
        ).join('\n');
      let metadata = '';
      for (let i = 0; i < 60 && !/switched smtp-primary/.test(metadata); i++) {
        metadata = await everyFrame();
        if (!/switched smtp-primary/.test(metadata)) await page.waitForTimeout(500);
      }
      assert.match(metadata, new RegExp(`Campaign ${id}: 400 recipients via smtp-primary → mailgun, batches of 50`), 'the static summary');
      assert.match(metadata, /completed · 400 of 400 done · active provider mailgun/, 'the current details name status and active provider');
      assert.match(metadata, /batch 4: recipients #151–200 via smtp-primary\s+Failed/, 'the failed batch, by its summary');
      await page.screenshot({ path: shot.replace('.png', '-details.png') });
      assert.match(metadata, /switched smtp-primary → mailgun at recipient #151: smtp-primary: connection refused/, 'the switch, in words');
    } finally {
      await page.close();
    }
  });
});
