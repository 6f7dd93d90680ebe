/**
 * Replay: histories of real runs, committed under test/histories/, must replay against
 * the current workflow code. A change that breaks them must use patching (workflow.patched).
 * Regenerate with: MAILOVER_RECORD_HISTORIES=1 npm test (see docs/testing.md, Replay histories).
 */
import { strict as assert } from 'assert';
import { readdirSync, readFileSync } from 'fs';
import { join, sep } from 'path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { workflowsPath } from '../../src/worker';
import { HISTORIES_DIR } from '../support/histories';
import { addressInHistoryJson, ANY_ADDRESS, decodedPayloads } from '../support/pii';

const histories = readdirSync(HISTORIES_DIR)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => ({ workflowId: f.replace(/\.json$/, ''), history: historyFromJSON(JSON.parse(readFileSync(join(HISTORIES_DIR, f), 'utf8'))) }));

function allHistoryFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? allHistoryFiles(join(dir, e.name)) : e.name.endsWith('.json') ? [join(dir, e.name)] : [],
  );
}

async function replayAll(path: string) {
  const results: Array<{ workflowId: string; error?: Error }> = [];
  for await (const r of Worker.runReplayHistories({ workflowsPath: path, replayName: 'mailover-replay' }, histories)) {
    results.push({ workflowId: r.workflowId, error: r.error });
  }
  return results;
}

describe('replay of committed workflow histories', function () {
  this.timeout(120_000);

  it('replay: the committed histories include an SMTP failover, a Mailgun failover, a pause and resume, a continue-as-new run, failover drills that pass and fail, a provider health workflow, a campaign failing back after shared health, campaigns with several batches in flight (the window), one failing over, and quotas that overflow and wait for their reset (one batch and several in flight)', () => {
    const names = histories.map((h) => h.workflowId);
    for (const expected of [
      'continue-as-new',
      'failover',
      'mailgun-failover',
      'pause-resume',
      'drill-pass',
      'drill-fail',
      'drill-hold',
      'provider-health',
      'shared-health-failback',
      'window',
      'window-failover',
      'quota-overflow',
      'quota-wait',
      'quota-window-overflow',
      'quota-window-wait',
    ])
      assert.ok(names.includes(expected), `test/histories/${expected}.json is committed`);
  });

  it('replay: the histories hold ids, counts and provider names only: no e-mail address (any domain), merge value or body anywhere, payloads decoded or not, encrypted ones included', () => {
    const files = allHistoryFiles(HISTORIES_DIR);
    assert.ok(
      files.some((f) => f.includes(`${sep}encrypted${sep}`)),
      'the encrypted histories are checked too',
    );
    for (const f of files) {
      const json = readFileSync(f, 'utf8');
      const payloads = decodedPayloads(JSON.parse(json));
      assert.ok(payloads.length > 10, `${f} has payloads`);
      // Failure messages, details and markers are plain text in the history; payloads are base64.
      assert.equal(addressInHistoryJson(json), undefined, `${f}: holds an address`);
      for (const p of payloads) assert.ok(!/User\d+|Hi |Hello /.test(p), `${f}: a payload holds merge data or body text: ${p.slice(0, 200)}`);
    }
  });

  it('replay: the address check finds an address of any domain, in a payload or in a failure message', () => {
    for (const text of ['rcpt bob@example.org refused', '550 5.7.1 <Jane.Doe+news@mail.co.uk>: Relay access denied', 'x:émile@exämple.fr'])
      assert.ok(ANY_ADDRESS.test(text), text);
    for (const text of ['@temporalio/worker@1.24.0+2edc', '26933@vm', 'mo.campaign-1.17@mailover']) assert.ok(!ANY_ADDRESS.test(text), text);
  });

  it('replay: every committed history replays against the current workflow code without nondeterminism', async () => {
    const results = await replayAll(workflowsPath());
    assert.equal(results.length, histories.length);
    for (const r of results) assert.equal(r.error, undefined, `${r.workflowId}: ${r.error?.message}`);
  });

  it('replay: the check can fail: an incompatible variant of the workflow fails replay with a nondeterminism error', async () => {
    const results = await replayAll(require.resolve('../fixtures/incompatible-workflows'));
    const failover = results.find((r) => r.workflowId === 'failover');
    assert.ok(failover?.error, 'the incompatible workflow must fail replay');
    assert.ok(
      failover.error instanceof DeterminismViolationError,
      `expected DeterminismViolationError, got ${failover.error?.name}: ${failover.error?.message}`,
    );
  });
});
