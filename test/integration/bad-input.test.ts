/**
 * Bad input: a clear error naming the field, line or value; nothing stored, nothing sent,
 * no workflow started.
 */
import { strict as assert } from 'assert';
import { writeFileSync } from 'fs';
import { join } from 'path';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { parseCampaignDefinition } from '../../src/campaign-definition';
import { ConfigError, parseConfig } from '../../src/config';
import { InvalidCampaignError } from '../../src/errors';
import { launchCampaign } from '../../src/launch';
import { FAST, Harness, POSTAL_ADDRESS, TEMPLATE, uniqueId } from '../support/harness';
import { startDevServer } from '../support/temporal';

const VALID = {
  id: 'spring-sale',
  from: 'News <news@example.org>',
  template: TEMPLATE,
  postalAddress: POSTAL_ADDRESS,
  providers: ['smtp-primary', 'smtp-secondary'],
  batchSize: 100,
};

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof InvalidCampaignError || err instanceof ConfigError, `unexpected ${(err as Error).name}`);
    return err instanceof InvalidCampaignError ? err.problems : [err.message];
  }
  assert.fail('expected an error');
}

describe('bad input', function () {
  this.timeout(120_000);

  describe('campaign definition', () => {
    it('bad input: each invalid field is named with what was expected and what was given', () => {
      const problems = problemsOf(() =>
        parseCampaignDefinition(
          {
            id: 'has space',
            from: 'not-an-address',
            template: { subject: '', text: 'Hi {{ first name }}' },
            providers: ['smtp-primary', 'ses'],
            batchSize: 0,
            colour: 'red',
          },
          ['smtp-primary', 'smtp-secondary'],
        ),
      );
      const text = problems.join('\n');
      assert.match(text, /^id: expected .* got "has space"$/m);
      assert.match(text, /^from: invalid sender address "not-an-address" \(missing @\)$/m);
      assert.match(text, /^template.subject: expected non-empty text, got ""$/m);
      assert.match(text, /^template.text: malformed merge field at position 4: "\{\{ first name \}\}"/m);
      assert.match(text, /^providers\[1\]: unknown provider 'ses' \(configured: smtp-primary, smtp-secondary\)$/m);
      assert.match(text, /^batchSize: expected a whole number from 1 to 1000, got 0$/m);
      assert.match(text, /^colour: unknown field/m);
    });

    it('bad input: a valid definition parses with defaults', () => {
      const def = parseCampaignDefinition({ ...VALID, batchSize: undefined }, ['smtp-primary', 'smtp-secondary']);
      assert.equal(def.batchSize, 100);
      assert.equal(def.from, 'News <news@example.org>');
    });
  });

  describe('provider configuration', () => {
    it('bad input: a secret referenced from a missing environment variable is named, never printed', () => {
      const problems = problemsOf(() =>
        parseConfig({ providers: [{ name: 'relay', kind: 'smtp', host: 'smtp.example.org', port: 587, auth: { user: 'u', pass: '${RELAY_PASSWORD}' } }] }, {}),
      );
      assert.match(problems[0], /providers\[0\]\.auth\.pass: environment variable RELAY_PASSWORD is not set/);
    });

    it('bad input: unknown provider kind and bad port are named by path', () => {
      const problems = problemsOf(() =>
        parseConfig(
          {
            providers: [
              { name: 'a', kind: 'pigeon' },
              { name: 'b', kind: 'smtp', host: 'h', port: 99999 },
            ],
          },
          {},
        ),
      );
      assert.match(problems[0], /providers\[0\]\.kind: expected one of smtp, mailgun(, [a-z-]+)*, got "pigeon"/);
      assert.match(problems[0], /providers\[1\]\.port: expected a port 1-65535, got 99999/);
    });

    it('bad input: a secret written into the provider file is refused, naming the field and the reference to use', () => {
      const problems = problemsOf(() =>
        parseConfig({ providers: [{ name: 'mailgun-eu', kind: 'mailgun', domain: 'mg.example.org', apiKey: 'key-live-123' }] }, {}),
      );
      assert.match(problems[0], /providers\[0\]\.apiKey: write secrets as environment references \(apiKey: "\$\{MAILGUN_EU_API_KEY\}"\), not in the file/);
      assert.ok(!problems[0].includes('key-live-123'), 'the secret is not echoed');
    });

    it('config: secrets are resolved from the environment', () => {
      const cfg = parseConfig(
        { providers: [{ name: 'relay', kind: 'smtp', host: 'h', port: 25, auth: { user: 'u', pass: '${RELAY_PASSWORD}' } }] },
        { RELAY_PASSWORD: 'pw' },
      );
      const relay = cfg.providers[0];
      assert.ok(relay.kind === 'smtp');
      assert.equal(relay.auth?.pass, 'pw');
      assert.equal(cfg.inFlight, 'resend');
    });
  });

  describe('launching with a bad audience (real Temporal dev server)', () => {
    let env: TestWorkflowEnvironment;
    let h: Harness;
    before(async () => {
      env = await startDevServer();
      h = await Harness.create({ env });
      await h.startWorker();
    });
    after(async () => {
      await h?.close();
      await env?.teardown();
    });

    async function assertNothingHappened(id: string): Promise<void> {
      assert.equal(await h.store.getCampaign(id), undefined, 'nothing stored');
      await assert.rejects(h.client.workflow.getHandle(id).describe(), WorkflowNotFoundError, 'no workflow started');
      assert.equal(h.primary.acceptedCount + h.secondary.acceptedCount, 0, 'nothing sent');
    }

    function file(name: string, content: string): string {
      const path = join(h.dir, name);
      writeFileSync(path, content);
      return path;
    }

    it('bad input: a malformed CSV (unterminated quote) is an error naming the file and line; nothing stored or sent', async () => {
      const id = uniqueId('bad-csv');
      const audienceFile = file('broken.csv', 'email,first_name\na@example.com,Ann\n"b@example.com,Bob\nc@example.com,Cy\n');
      await assert.rejects(
        launchCampaign({ client: h.client, store: h.store, definition: { ...VALID, id }, audienceFile, taskQueue: h.taskQueue }),
        (err: Error) => {
          assert.ok(err instanceof InvalidCampaignError);
          assert.match(err.message, /broken\.csv line 3/);
          return true;
        },
      );
      await assertNothingHappened(id);
    });

    it('bad input: a missing merge field names the line, the address and the field; nothing stored or sent', async () => {
      const id = uniqueId('missing-field');
      const audienceFile = file('missing.csv', 'email,first_name\na@example.com,Ann\nb@example.com,\nc@example.com,Cy\n');
      await assert.rejects(
        launchCampaign({ client: h.client, store: h.store, definition: { ...VALID, id }, audienceFile, taskQueue: h.taskQueue }),
        /missing\.csv line 3: b@example\.com has no value for merge field 'first_name'/,
      );
      await assertNothingHappened(id);
    });

    it('bad input: a file with no valid address at all is refused; nothing stored or sent', async () => {
      const id = uniqueId('no-valid');
      const audienceFile = file('none.jsonl', '{"email":"nobody"}\n{"email":"x@y"}\n');
      await assert.rejects(
        launchCampaign({ client: h.client, store: h.store, definition: { ...VALID, id }, audienceFile, taskQueue: h.taskQueue }),
        /none\.jsonl: no valid recipients \(2 rejected, first: line 1: missing @\)/,
      );
      await assertNothingHappened(id);
    });

    it('launch: invalid addresses and duplicates are reported by line and left out; the rest is sent exactly once', async () => {
      const id = uniqueId('mixed');
      const audienceFile = file('mixed.csv', 'email,first_name\nann@example.com,Ann\nnot-an-address,Bob\nANN@example.com,Ann again\ncy@example.com,Cy\n');
      const report = await launchCampaign({
        client: h.client,
        store: h.store,
        definition: { ...VALID, id },
        audienceFile,
        taskQueue: h.taskQueue,
        options: FAST,
      });
      assert.equal(report.inserted, 2);
      assert.equal(report.duplicates, 1);
      assert.deepEqual(
        report.rejected.map((r) => [r.line, r.value]),
        [[3, 'not-an-address']],
      );
      const result = await h.client.workflow.getHandle(id).result();
      assert.equal(result.accepted, 2);
      assert.deepEqual([...h.deliveries()].sort(), [
        ['ann@example.com', 1],
        ['cy@example.com', 1],
      ]);
    });
  });
});
