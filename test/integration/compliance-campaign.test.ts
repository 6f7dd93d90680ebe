/**
 * Compliance end to end: real Temporal dev server, SMTP sinks, the Mailgun-compatible API posting
 * signed webhooks, the compliance HTTP server, the inbound bounce listener, and the CLI.
 */
import { strict as assert } from 'assert';
import { spawn, spawnSync } from 'child_process';
import { mkdtempSync, readFileSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import nodemailer from 'nodemailer';
import { campaignProgress, pauseCampaign, resumeCampaign } from '../../src/client';
import { BounceListener } from '../../src/compliance/bounce-listener';
import type { BounceSettings } from '../../src/compliance/settings';
import { startComplianceServices, type ComplianceServices } from '../../src/compliance/services';
import { pullMailgunSuppressions, pushMailgunSuppressions } from '../../src/providers/mailgun/suppressions';
import { bounceTokenMatches, parseBounceAddress, verifyUnsubscribeToken } from '../../src/compliance/tokens';
import { applyUnsubscribe } from '../../src/compliance/unsubscribe';
import type { ProviderDefinition } from '../../src/config';
import type { AudienceRow } from '../../src/store/types';
import { Harness, MAILGUN_DOMAIN, POSTAL_ADDRESS, TEST_BOUNCE_KEY, TEST_UNSUBSCRIBE_KEY, TEST_WEBHOOK_KEY, testCompliance, uniqueId } from '../support/harness';
import { writeProviderFile } from '../support/provider-file';
import { startDevServer } from '../support/temporal';
import { waitUntil } from '../support/wait';

const BOUNCE_DOMAIN = 'bounces.mailover.test';
const rows = (emails: string[]): AudienceRow[] => emails.map((email, i) => ({ email, fields: { first_name: `N${i + 1}` } }));
const LIST_UNSUBSCRIBE =
  /^<(http:\/\/127\.0\.0\.1:\d+\/u\/([A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}))>, <mailto:unsubscribe@bounces\.mailover\.test\?subject=unsubscribe%20([A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43})>$/;

function dsn(verp: string, finalRecipient: string, action: string, status: string, diagnostic: string): string {
  return [
    'From: Mail Delivery System <MAILER-DAEMON@relay.example>',
    `To: ${verp}`,
    'Subject: Undelivered Mail Returned to Sender',
    `Message-ID: <dsn.${Math.random().toString(36).slice(2)}@relay.example>`,
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=delivery-status; boundary="BOUNDARY"',
    '',
    '--BOUNDARY',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    'This is the mail system at host relay.example. Your message could not be delivered.',
    '',
    '--BOUNDARY',
    'Content-Type: message/delivery-status',
    '',
    'Reporting-MTA: dns; relay.example',
    'Arrival-Date: Sat, 28 Nov 2026 00:00:00 +0000',
    '',
    `Final-Recipient: rfc822; ${finalRecipient}`,
    `Action: ${action}`,
    `Status: ${status}`,
    `Diagnostic-Code: smtp; ${diagnostic}`,
    '',
    '--BOUNDARY',
    'Content-Type: text/rfc822-headers',
    '',
    'Subject: Hello',
    '',
    '--BOUNDARY--',
    '',
  ].join('\r\n');
}

describe('compliance end to end (Temporal, SMTP sinks, Mailgun API with webhooks, compliance server, bounce listener)', function () {
  this.timeout(180_000);
  let env: TestWorkflowEnvironment;
  let h: Harness;
  let services: ComplianceServices;
  let providers: ProviderDefinition[];
  let bounces: BounceSettings;

  before(async () => {
    env = await startDevServer();
    h = await Harness.create({ env, mailgun: true });
    providers = h.providerDefs.map((d) => (d.kind === 'mailgun' ? { ...d, webhookSigningKey: TEST_WEBHOOK_KEY } : d));
    bounces = { domain: BOUNCE_DOMAIN, localPart: 'bounces', signingKey: TEST_BOUNCE_KEY, host: '127.0.0.1', port: 0, maxMessageBytes: 64 * 1024 };
    const unsubscribe = testCompliance().unsubscribe;
    services = await startComplianceServices(
      {
        providers,
        compliance: {
          webhooks: { host: '127.0.0.1', port: 0, maxAgeSeconds: 300, maxBodyBytes: 64 * 1024 },
          unsubscribe: { ...unsubscribe, mailto: `unsubscribe@${BOUNCE_DOMAIN}` },
          bounces,
        },
      },
      h.store,
    );
    // The worker signs links for this server and VERP addresses for this listener.
    h.compliance = testCompliance({ unsubscribe: { baseUrl: services.http.url, mailto: `unsubscribe@${BOUNCE_DOMAIN}` }, bounces });
    h.mailgun!.setWebhook(`${services.http.url}/webhooks/mailgun`, TEST_WEBHOOK_KEY);
    await h.startWorker();
  });
  // Tests that break a provider on purpose leave its shared circuit open; the next test's
  // campaign would hold until the cool-down's probe (30 s). Heal it as an operator would.
  afterEach(async () => {
    await h.providersRecovered();
  });
  after(async () => {
    await services?.stop();
    await h?.close();
    await env?.teardown();
  });

  it('headers: every message the SMTP sink and the Mailgun API receive carries a well-formed List-Unsubscribe (https + mailto, one signed token naming campaign and recipient), List-Unsubscribe-Post one-click, the link and postal address in the body, and on SMTP a signed VERP Return-Path', async () => {
    const id = uniqueId('headers');
    const emails = Array.from({ length: 60 }, (_, i) => `h${i + 1}@headers.example`);
    h.primary.failAfter(25, 'refuse');
    const result = await (await h.launch(id, rows(emails), { batchSize: 10, providers: ['smtp-primary', 'mailgun'] })).result();
    await h.primary.heal();
    assert.equal(result.accepted, 60);
    assert.ok(result.acceptedByProvider['smtp-primary'] > 0 && result.acceptedByProvider['mailgun'] > 0, JSON.stringify(result.acceptedByProvider));
    const ledger = new Map((await h.store.listRecipients(id)).map((r) => [r.email, r.seq]));
    const check = (to: string, headers: Record<string, string>, text: string | undefined, html: string | undefined) => {
      const lu = headers['list-unsubscribe'] ?? headers['List-Unsubscribe'];
      const m = LIST_UNSUBSCRIBE.exec(lu ?? '');
      assert.ok(m, `${to}: List-Unsubscribe ${JSON.stringify(lu)}`);
      assert.equal(m[2], m[3], 'one token in both forms');
      assert.deepEqual(verifyUnsubscribeToken(TEST_UNSUBSCRIBE_KEY, m[2]), { campaignId: id, email: to });
      assert.equal(headers['list-unsubscribe-post'] ?? headers['List-Unsubscribe-Post'], 'List-Unsubscribe=One-Click');
      assert.ok(text?.includes(`Unsubscribe: ${m[1]}\n${POSTAL_ADDRESS}`), `${to}: text carries the link and the postal address`);
      assert.ok(html?.includes(`<a href="${m[1]}">Unsubscribe</a> | ${POSTAL_ADDRESS}`), `${to}: html carries the link and the postal address`);
    };
    const smtp = h.primary.messages.filter((m) => m.headers['x-mailover-campaign'] === id);
    for (const m of smtp) {
      const to = m.to[0];
      check(to, m.headers, m.text, m.html);
      const token = parseBounceAddress(bounces, m.from);
      assert.ok(token, `${to}: Return-Path ${m.from} is a bounce address`);
      assert.equal(token.seq, ledger.get(to));
      assert.ok(bounceTokenMatches(TEST_BOUNCE_KEY, token, id));
    }
    const viaMailgun = h.mailgun!.messages.filter((m) => m.variables['mailover-campaign'] === id);
    for (const m of viaMailgun) check(m.to, m.headers, m.text, m.html);
    assert.equal(smtp.length + viaMailgun.length, 60, 'every message was checked');
    assert.equal(smtp.length, result.acceptedByProvider['smtp-primary']);
  });

  it('webhooks: a Mailgun complaint and a hard bounce suppress their addresses; a running campaign then skips both on both providers', async () => {
    const [victimA, victimB] = ['complainer@victims.example', 'bounced@victims.example'];
    // An earlier campaign through Mailgun reached both.
    const earlier = uniqueId('earlier');
    assert.equal((await (await h.launch(earlier, rows([victimA, victimB]), { providers: ['mailgun'] })).result()).accepted, 2);

    // The next campaign is running, held before its first batch.
    const id = uniqueId('running');
    const audience = rows(Array.from({ length: 40 }, (_, i) => `r${i + 1}@running.example`));
    audience[7].email = victimA; // seq 8: sent by smtp-primary
    audience[32].email = victimB; // seq 33: after the switch to mailgun
    await h.stopWorker();
    const handle = await h.launch(id, audience, { batchSize: 10, providers: ['smtp-primary', 'mailgun'] });
    await pauseCampaign(h.client, id, 'waiting for provider events');
    await h.startWorker();
    await waitUntil(async () => {
      const p = await campaignProgress(h.client, id);
      return p.paused && !p.batchInFlight;
    }, 'the campaign to hold paused');
    assert.ok(
      (await h.store.listRecipients(id)).every((r) => r.state === 'pending'),
      'nothing sent yet',
    );

    const complaint = await h.mailgun!.simulateEvent(victimA, 'complained');
    assert.equal(complaint.webhookStatus, 200, complaint.webhookBody);
    const bounce = await h.mailgun!.simulateEvent(victimB, 'failed', { severity: 'permanent', code: 550, message: '5.1.1 mailbox does not exist' });
    assert.equal(bounce.webhookStatus, 200, bounce.webhookBody);
    assert.equal(await h.store.isSuppressed(victimA), true);
    assert.equal(await h.store.isSuppressed(victimB), true);
    const events = await h.store.listEvents({ campaignId: earlier });
    assert.deepEqual(
      events.map((e) => [e.email, e.type, e.provider, e.seq]).sort(),
      [
        [victimB, 'failed-permanent', 'mailgun', 2],
        [victimA, 'complained', 'mailgun', 1],
      ].sort(),
      'stored and linked to the earlier campaign rows by the message identity',
    );
    assert.match(events.find((e) => e.email === victimB)!.reason, /code 550; 5\.1\.1 mailbox does not exist/);

    h.primary.failAfter(20, 'refuse');
    await resumeCampaign(h.client, id);
    const result = await handle.result();
    await h.primary.heal();
    assert.equal(result.suppressed, 2);
    assert.equal(result.accepted, 38);
    assert.equal(result.switches.length, 1);
    const at = result.switches[0].atSeq;
    assert.ok(at > 8 && at <= 33, `switch at #${at}: one victim falls on each provider`);
    assert.ok(result.acceptedByProvider['smtp-primary'] > 0 && result.acceptedByProvider['mailgun'] > 0);
    const ledger = await h.store.listRecipients(id);
    assert.deepEqual(
      ledger
        .filter((r) => r.state === 'suppressed')
        .map((r) => r.email)
        .sort(),
      [victimB, victimA].sort(),
    );
    const sentThisCampaign = [
      ...h.primary.messages.filter((m) => m.headers['x-mailover-campaign'] === id).map((m) => m.to[0]),
      ...h.secondary.messages.filter((m) => m.headers['x-mailover-campaign'] === id).map((m) => m.to[0]),
      ...h.mailgun!.messages.filter((m) => m.variables['mailover-campaign'] === id).map((m) => m.to),
    ];
    assert.equal(sentThisCampaign.length, 38);
    assert.ok(!sentThisCampaign.includes(victimA) && !sentThisCampaign.includes(victimB), 'neither victim was sent this campaign, on any provider');
  });

  it('bounces: a DSN through the inbound SMTP listener is matched to its ledger row by the VERP Return-Path and suppresses; a delay does not; a forged bounce address is refused at RCPT', async () => {
    const id = uniqueId('dsn');
    const emails = ['a@dsn.example', 'gone@dsn.example', 'slow@dsn.example'];
    assert.equal((await (await h.launch(id, rows(emails), { providers: ['smtp-primary'] })).result()).accepted, 3);
    const verpOf = (to: string) => h.primary.messages.find((m) => m.to[0] === to && m.headers['x-mailover-campaign'] === id)!.from;
    const relay = nodemailer.createTransport({ host: services.bounces!.host, port: services.bounces!.port, secure: false, ignoreTLS: true });
    try {
      await relay.sendMail({
        envelope: { from: '', to: [verpOf('gone@dsn.example')] },
        raw: dsn(verpOf('gone@dsn.example'), 'gone@dsn.example', 'failed', '5.1.1', '550 5.1.1 <gone@dsn.example>: Recipient address rejected: User unknown'),
      });
      await relay.sendMail({
        envelope: { from: '', to: [verpOf('slow@dsn.example')] },
        raw: dsn(verpOf('slow@dsn.example'), 'slow@dsn.example', 'delayed', '4.4.1', '421 4.4.1 connection timed out'),
      });

      assert.equal(await h.store.isSuppressed('gone@dsn.example'), true);
      assert.equal(await h.store.isSuppressed('slow@dsn.example'), false, 'a delay is recorded, not suppressed');
      const events = await h.store.listEvents({ campaignId: id });
      const gone = events.find((e) => e.email === 'gone@dsn.example');
      assert.deepEqual([gone?.provider, gone?.type, gone?.seq], ['smtp-primary', 'failed-permanent', 2]);
      assert.match(gone!.reason, /action failed; status 5\.1\.1; smtp; 550 5\.1\.1 <gone@dsn\.example>: Recipient address rejected: User unknown/);
      assert.equal(events.find((e) => e.email === 'slow@dsn.example')?.type, 'failed-temporary');

      // Forged: the right shape, a wrong signature (or an address that names no row).
      const real = verpOf('a@dsn.example');
      const forged = real.replace(/-([0-9a-f]{16})@/, (_m, sig: string) => `-${sig.startsWith('0') ? '1' : '0'}${sig.slice(1)}@`);
      await assert.rejects(
        relay.sendMail({ envelope: { from: '', to: [forged] }, raw: dsn(forged, 'a@dsn.example', 'failed', '5.1.1', '550 no') }),
        (err: { responseCode?: number }) => err.responseCode === 550,
      );
      await assert.rejects(
        relay.sendMail({ envelope: { from: '', to: [`postmaster@${BOUNCE_DOMAIN}`] }, raw: 'Subject: hi\r\n\r\nhello' }),
        (err: { responseCode?: number }) => err.responseCode === 550,
      );
      assert.equal(await h.store.isSuppressed('a@dsn.example'), false);
    } finally {
      relay.close();
    }
    // The listener's counters are on the compliance server's /metrics, beside the webhook counters.
    const metrics = await (await fetch(`${services.http.url}/metrics`)).text();
    const counter = (name: string) => Number(new RegExp(`^mailover_bounce_${name}_total (\\d+)$`, 'm').exec(metrics)?.[1]);
    assert.equal(counter('dsn'), services.bounces!.counts.dsn);
    assert.ok(counter('dsn') >= 2, metrics);
    assert.ok(counter('suppressed') >= 1);
    assert.ok(counter('refused_recipients') >= 2, 'the forged bounce address and postmaster@ were refused at RCPT');

    // The next campaign skips the bounced address.
    const next = uniqueId('after-dsn');
    const result = await (await h.launch(next, rows(emails), { providers: ['smtp-primary'] })).result();
    assert.equal(result.suppressed, 1);
    assert.equal(h.primary.messages.filter((m) => m.headers['x-mailover-campaign'] === next && m.to[0] === 'gone@dsn.example').length, 0);
  });

  it('bounces over TLS: with bounces.tls the listener offers STARTTLS; a relay that requires TLS delivers its DSN encrypted, and it is matched and suppresses', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mailover-bounce-tls-'));
    const [certFile, keyFile] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
    const made = spawnSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${BOUNCE_DOMAIN}`, '-keyout', keyFile, '-out', certFile],
      { encoding: 'utf8' },
    );
    assert.equal(made.status, 0, made.stderr);
    const listener = await BounceListener.start({ store: h.store, bounces: { ...bounces, tls: { certFile, keyFile } }, port: 0 });
    const id = uniqueId('dsn-tls');
    try {
      assert.equal((await (await h.launch(id, rows(['a@tls.example', 'gone@tls.example']), { providers: ['smtp-primary'] })).result()).accepted, 2);
      const verp = h.primary.messages.find((m) => m.to[0] === 'gone@tls.example' && m.headers['x-mailover-campaign'] === id)!.from;
      // The relay trusts exactly this certificate and refuses to go on without TLS.
      const relay = nodemailer.createTransport({
        host: listener.host,
        port: listener.port,
        secure: false,
        requireTLS: true,
        tls: { ca: readFileSync(certFile), servername: BOUNCE_DOMAIN },
      });
      try {
        await relay.sendMail({ envelope: { from: '', to: [verp] }, raw: dsn(verp, 'gone@tls.example', 'failed', '5.1.1', '550 5.1.1 user unknown') });
      } finally {
        relay.close();
      }
      assert.equal(listener.counts.tlsMessages, 1, 'the DSN came over TLS');
      // Without bounces.tls the listener does not offer STARTTLS: the same relay cannot deliver there.
      const plain = nodemailer.createTransport({ host: services.bounces!.host, port: services.bounces!.port, secure: false, requireTLS: true });
      try {
        await assert.rejects(
          plain.sendMail({ envelope: { from: '', to: [verp] }, raw: dsn(verp, 'gone@tls.example', 'failed', '5.1.1', '550 5.1.1 user unknown') }),
          (err: Error & { code?: string }) => {
            assert.match(`${err.code} ${err.message}`, /STARTTLS|ETLS/, err.message);
            return true;
          },
        );
      } finally {
        plain.close();
      }
      assert.equal(await h.store.isSuppressed('gone@tls.example'), true);
      assert.equal((await h.store.listEvents({ campaignId: id })).find((e) => e.email === 'gone@tls.example')?.type, 'failed-permanent');
    } finally {
      await listener.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('unsubscribe: one-click POST with a real HTTP client suppresses at once (idempotent); the address is never sent again on any provider; an altered token is refused', async () => {
    const id = uniqueId('oneclick');
    const emails = ['leaver@oneclick.example', 'stayer@oneclick.example', 'mailto@oneclick.example'];
    assert.equal((await (await h.launch(id, rows(emails), { providers: ['smtp-primary'] })).result()).accepted, 3);
    const headerOf = (to: string) => h.primary.messages.find((m) => m.to[0] === to && m.headers['x-mailover-campaign'] === id)!.headers['list-unsubscribe'];
    const [, url, token] = LIST_UNSUBSCRIBE.exec(headerOf('leaver@oneclick.example'))!;

    // What a mailbox provider does (RFC 8058): POST the URL with List-Unsubscribe=One-Click.
    const oneClick = () => fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'List-Unsubscribe=One-Click' });
    const first = await oneClick();
    assert.equal(first.status, 200);
    assert.equal(await first.text(), 'unsubscribed');
    assert.equal(await h.store.isSuppressed('leaver@oneclick.example'), true);
    assert.equal((await oneClick()).status, 200, 'idempotent');
    const events = (await h.store.listEvents({ email: 'leaver@oneclick.example' })).filter((e) => e.type === 'unsubscribed');
    assert.deepEqual(
      events.map((e) => [e.campaignId, e.seq]),
      [[id, 1]],
      'one event, linked to the row',
    );

    // Altered: another recipient's address in the payload with the leaver's signature; one character changed.
    const [, sig] = token.split('.');
    const swapped = `${Buffer.from(`${id}\nstayer@oneclick.example`).toString('base64url')}.${sig}`;
    const altered = `${token.slice(0, 5)}${token[5] === 'x' ? 'y' : 'x'}${token.slice(6)}`;
    for (const bad of [swapped, altered]) {
      const res = await fetch(url.replace(token, bad), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'List-Unsubscribe=One-Click',
      });
      assert.equal(res.status, 403);
    }
    assert.equal(await h.store.isSuppressed('stayer@oneclick.example'), false);

    // The mailto form: a message to the unsubscribe address with the token in its subject.
    const mailtoToken = LIST_UNSUBSCRIBE.exec(headerOf('mailto@oneclick.example'))![3];
    const client = nodemailer.createTransport({ host: services.bounces!.host, port: services.bounces!.port, secure: false, ignoreTLS: true });
    try {
      await client.sendMail({
        from: 'mailto@oneclick.example',
        to: `unsubscribe@${BOUNCE_DOMAIN}`,
        subject: `unsubscribe ${mailtoToken}`,
        text: 'unsubscribe',
      });
    } finally {
      client.close();
    }
    assert.equal(await h.store.isSuppressed('mailto@oneclick.example'), true);

    // Never sent again: the next campaign goes out through Mailgun (the relay is down) and skips both.
    const next = uniqueId('after-unsubscribe');
    await h.primary.setMode('refuse');
    const result = await (await h.launch(next, rows(emails), { providers: ['smtp-primary', 'mailgun'], batchSize: 1 })).result();
    await h.primary.heal();
    assert.equal(result.suppressed, 2);
    assert.deepEqual(result.acceptedByProvider, { mailgun: 1 });
    const got = [
      ...h.primary.messages.filter((m) => m.headers['x-mailover-campaign'] === next).map((m) => m.to[0]),
      ...h.mailgun!.messages.filter((m) => m.variables['mailover-campaign'] === next).map((m) => m.to),
    ];
    assert.deepEqual(got, ['stayer@oneclick.example']);
  });

  it('unsubscribe scope list: the address is suppressed for campaigns of the same list only', async () => {
    const list = uniqueId('weekly');
    const id = uniqueId('listed');
    await (await h.launch(id, rows(['reader@list.example']), { providers: ['smtp-primary'], list })).result();
    const token = LIST_UNSUBSCRIBE.exec(h.primary.messages.find((m) => m.headers['x-mailover-campaign'] === id)!.headers['list-unsubscribe'])![2];
    const outcome = await applyUnsubscribe(h.store, { ...h.compliance.unsubscribe, scope: 'list' }, token, 'one-click');
    assert.deepEqual(outcome && [outcome.scope, outcome.newlySuppressed], [list, true]);
    assert.equal(await h.store.isSuppressed('reader@list.example'), false, 'not for all mail');
    const sameList = await (await h.launch(uniqueId('same-list'), rows(['reader@list.example']), { providers: ['smtp-primary'], list })).result();
    assert.equal(sameList.suppressed, 1);
    const otherList = await (await h.launch(uniqueId('other-list'), rows(['reader@list.example']), { providers: ['smtp-primary'] })).result();
    assert.equal(otherList.accepted, 1);
  });

  it('a worker with no unsubscribe: configuration refuses a marketing campaign before its first batch, naming the section; a transactional one goes out without List-Unsubscribe', async () => {
    const saved = h.compliance;
    await h.stopWorker();
    h.compliance = {} as typeof saved;
    await h.startWorker();
    try {
      const id = uniqueId('no-unsubscribe');
      await assert.rejects(
        (await h.launch(id, rows(['x@nounsub.example']), { providers: ['smtp-primary'] })).result(),
        (err: Error & { cause?: { cause?: Error } }) => {
          assert.match(
            String(err.cause?.cause?.message),
            /unsubscribe: this worker has no unsubscribe: section in its config, so it cannot add the unsubscribe link a marketing campaign needs/,
          );
          return true;
        },
      );
      assert.equal(h.primary.messages.filter((m) => m.headers['x-mailover-campaign'] === id).length, 0, 'nothing sent');

      const receipt = uniqueId('receipt');
      await h.store.createCampaign({
        id: receipt,
        from: 'shop@mailover.test',
        template: { subject: 'Your receipt', text: 'Thanks {{first_name}}' },
        providers: ['smtp-primary'],
        batchSize: 10,
        transactional: true,
      });
      await h.store.importAudience(receipt, rows(['buyer@nounsub.example']));
      const { startCampaign } = await import('../../src/client');
      const result = await (
        await startCampaign(h.client, { campaignId: receipt, providers: ['smtp-primary'], batchSize: 10, taskQueue: h.taskQueue })
      ).result();
      assert.equal(result.accepted, 1);
      const sent = h.primary.messages.find((m) => m.headers['x-mailover-campaign'] === receipt)!;
      assert.equal(sent.headers['list-unsubscribe'], undefined);
      assert.equal(sent.text.trim(), 'Thanks N1');
    } finally {
      await h.stopWorker();
      h.compliance = saved;
      await h.startWorker();
    }
  });

  it('suppress sync: pulls Mailgun bounces, unsubscribes and complaints through every page (mailgun.js against the compatible API), then the CLI pulls and pushes', async () => {
    const mg = h.mailgun!;
    for (let i = 1; i <= 250; i++)
      mg.addSuppression('bounces', MAILGUN_DOMAIN, { address: `b${String(i).padStart(3, '0')}@sync.example`, code: 550, error: 'No such user' });
    for (let i = 1; i <= 3; i++) mg.addSuppression('unsubscribes', MAILGUN_DOMAIN, { address: `u${i}@sync.example` });
    for (let i = 1; i <= 2; i++) mg.addSuppression('complaints', MAILGUN_DOMAIN, { address: `c${i}@sync.example` });
    await h.store.addSuppression('b001@sync.example', 'added by operator', 'cli');
    const mailgunDef = providers.find((p) => p.kind === 'mailgun');
    assert.ok(mailgunDef?.kind === 'mailgun');

    // Mailgun's lists also hold what earlier tests' webhooks reported (already suppressed in mailover).
    const onMailgun = {
      bounces: mg.suppressions('bounces', MAILGUN_DOMAIN).length,
      unsubscribes: mg.suppressions('unsubscribes', MAILGUN_DOMAIN).length,
      complaints: mg.suppressions('complaints', MAILGUN_DOMAIN).length,
    };
    assert.ok(onMailgun.bounces >= 250 && onMailgun.bounces < 300);
    const report = await pullMailgunSuppressions(h.store, mailgunDef, { pageSize: 100 });
    assert.deepEqual(report.read, onMailgun);
    assert.equal(report.added, 254, 'addresses already suppressed are left as they were');
    assert.equal(report.pages, 3 + 1 + 1, 'bounces: 100, 100, 50 (a short page ends it); one page for each other list');
    const list = await h.store.listSuppressions();
    const b250 = list.find((r) => r.email === 'b250@sync.example');
    assert.deepEqual([b250?.reason, b250?.source], ['hard bounce (mailgun): 550 No such user', 'mailgun bounces']);
    assert.equal(list.find((r) => r.email === 'b001@sync.example')?.reason, 'added by operator');
    assert.equal(list.find((r) => r.email === 'c2@sync.example')?.source, 'mailgun complaints');

    // The CLI, as an operator runs it: secrets from the environment, the store shared.
    const configPath = join(h.dir, 'sync-providers.yaml');
    const secrets = writeProviderFile(configPath, providers);
    const cli = (args: string[]) =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const child = spawn(process.execPath, [join(__dirname, '..', '..', 'src', 'cli', 'main.js'), ...args], {
          env: { ...process.env, ...secrets, MAILOVER_CONFIG: configPath, DATABASE_URL: '', MAILOVER_DB: join(h.dir, 'mailover.db') },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        child.stdout.on('data', (d) => (out += d));
        child.stderr.on('data', (d) => (out += d));
        child.on('close', (code) => resolve({ code, out }));
      });
    mg.addSuppression('complaints', MAILGUN_DOMAIN, { address: 'late@sync.example' });
    const pulled = await cli(['suppress', 'sync', 'mailgun']);
    assert.equal(pulled.code, 0, pulled.out);
    assert.match(
      pulled.out,
      new RegExp(
        `^read ${onMailgun.bounces} bounces, ${onMailgun.unsubscribes} unsubscribes, ${onMailgun.complaints + 1} complaints from mailgun \\(3 pages\\); 1 addresses newly suppressed$`,
        'm',
      ),
    );
    assert.equal(await h.store.isSuppressed('late@sync.example'), true);

    await h.store.addSuppression('local-only@sync.example', 'unsubscribed', 'cli');
    await h.store.addSuppression('bounced-here@sync.example', 'hard bounce (smtp-primary): 550 5.1.1 user unknown', 'smtp-primary');
    await h.store.addListSuppression('sync-weekly', 'weekly-only@sync.example', 'unsubscribed', 'one-click');
    const pushed = await cli(['suppress', 'push', 'mailgun']);
    assert.equal(pushed.code, 0, pushed.out);
    // A list suppression goes to Mailgun for its list's tag only.
    assert.match(
      pushed.out,
      /^pushed \d+ bounces, \d+ unsubscribes, \d+ complaints, [1-9]\d* unsubscribes for their lists' tags only to mailgun \(\d+ calls\)$/m,
    );
    assert.ok(mg.suppressions('unsubscribes', MAILGUN_DOMAIN).some((e) => e.address === 'local-only@sync.example'));
    assert.deepEqual(mg.suppressions('unsubscribes', MAILGUN_DOMAIN).find((e) => e.address === 'weekly-only@sync.example')?.tags, ['sync-weekly']);
    const pushedBounce = mg.suppressions('bounces', MAILGUN_DOMAIN).find((e) => e.address === 'bounced-here@sync.example');
    assert.deepEqual([pushedBounce?.code, pushedBounce?.error], ['550', 'hard bounce (smtp-primary): 550 5.1.1 user unknown']);

    const wrong = await cli(['suppress', 'sync', 'smtp-primary']);
    assert.equal(wrong.code, 1);
    assert.match(wrong.out, /provider 'smtp-primary' is smtp: it keeps no suppression lists of its own/);
  });

  it('suppress sync, tag-scoped: a list campaign tags its Mailgun messages with the list; a Mailgun unsubscribe for that tag comes back as a suppression for that list only, and push sends list suppressions back as tag-scoped unsubscribes', async () => {
    const mg = h.mailgun!;
    const mailgunDef = providers.find((p) => p.kind === 'mailgun');
    assert.ok(mailgunDef?.kind === 'mailgun');
    const list = uniqueId('digest');
    const id = uniqueId('tagged');
    await (await h.launch(id, rows(['fan@tags.example', 'other@tags.example']), { providers: ['mailgun'], list })).result();
    const sent = mg.messages.filter((m) => m.variables['mailover-campaign'] === id);
    assert.deepEqual(
      sent.map((m) => m.options.tag),
      [list, list],
      'every message carries its list as the tag',
    );
    const untagged = uniqueId('untagged');
    await (await h.launch(untagged, rows(['plain@tags.example']), { providers: ['mailgun'] })).result();
    assert.equal(mg.messages.find((m) => m.variables['mailover-campaign'] === untagged)?.options.tag, undefined, 'no list, no tag');

    // The recipient unsubscribed from that tag at Mailgun (its own footer link, say).
    mg.addSuppression('unsubscribes', MAILGUN_DOMAIN, { address: 'fan@tags.example', tags: [list] });
    const report = await pullMailgunSuppressions(h.store, mailgunDef);
    assert.equal(report.addedToLists, 1);
    assert.equal(await h.store.isSuppressed('fan@tags.example'), false, 'not for all mail');
    const scoped = (await h.store.listListSuppressions()).find((r) => r.email === 'fan@tags.example');
    assert.deepEqual(scoped && [scoped.list, scoped.source], [list, 'mailgun unsubscribes']);
    assert.equal((await pullMailgunSuppressions(h.store, mailgunDef)).addedToLists, 0, 'a second pull adds nothing');

    // The next campaign of that list skips the address (on any provider); another list's does not.
    const again = await (
      await h.launch(uniqueId('same-list'), rows(['fan@tags.example', 'other@tags.example']), { providers: ['smtp-primary'], list })
    ).result();
    assert.deepEqual([again.suppressed, again.accepted], [1, 1]);
    const elsewhere = await (await h.launch(uniqueId('other-list'), rows(['fan@tags.example']), { providers: ['smtp-primary'] })).result();
    assert.equal(elsewhere.accepted, 1);

    // Push: a list suppression made in mailover goes to Mailgun for that tag only.
    await h.store.addListSuppression(list, 'quiet@tags.example', 'unsubscribed', 'one-click');
    const pushed = await pushMailgunSuppressions(h.store, mailgunDef);
    assert.ok(pushed.pushedForLists >= 2);
    const entry = mg.suppressions('unsubscribes', MAILGUN_DOMAIN).find((e) => e.address === 'quiet@tags.example');
    assert.deepEqual(entry?.tags, [list]);
  });
});
