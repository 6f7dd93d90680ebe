/**
 * Replay: histories of real runs, committed under test/histories/, must replay against
 * the current workflow code. A change that breaks them must use patching (workflow.patched).
 * Regenerate with: MAILOVER_RECORD_HISTORIES=1 npm test (see README).
 */
import { strict as assert } from 'assert';
import { readdirSync, readFileSync } from 'fs';
import { join } from 'path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { workflowsPath } from '../src/worker';
import { HISTORIES_DIR } from './support/histories';

const histories = readdirSync(HISTORIES_DIR)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => ({ workflowId: f.replace(/\.json$/, ''), history: historyFromJSON(JSON.parse(readFileSync(join(HISTORIES_DIR, f), 'utf8'))) }));

/** Every payload's data in a history JSON, decoded from base64. */
function decodedPayloads(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) node.forEach((n) => decodedPayloads(n, out));
  else if (node && typeof node === 'object') {
    const o = node as Record<string, unknown>;
    if (typeof o.data === 'string' && o.metadata && typeof o.metadata === 'object') out.push(Buffer.from(o.data, 'base64').toString('utf8'));
    for (const v of Object.values(o)) decodedPayloads(v, out);
  }
  return out;
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

  it('replay: the committed histories include an SMTP failover, a Mailgun failover, a pause and resume, a continue-as-new run, failover drills that pass and fail, a provider health workflow and a campaign failing back after shared health', () => {
    const names = histories.map((h) => h.workflowId);
    for (const expected of ['continue-as-new', 'failover', 'mailgun-failover', 'pause-resume', 'drill-pass', 'drill-fail', 'drill-hold', 'provider-health', 'shared-health-failback']) assert.ok(names.includes(expected), `test/histories/${expected}.json is committed`);
  });

  it('replay: the histories hold ids, counts and provider names only: no recipient address, merge value or body in any payload', () => {
    for (const f of readdirSync(HISTORIES_DIR).filter((n) => n.endsWith('.json'))) {
      const payloads = decodedPayloads(JSON.parse(readFileSync(join(HISTORIES_DIR, f), 'utf8')));
      assert.ok(payloads.length > 10, `${f} has payloads`);
      for (const p of payloads) {
        assert.ok(!/@example\.com/i.test(p), `${f}: a payload holds an address: ${p.slice(0, 200)}`);
        assert.ok(!/User\d+|Hi |Hello /.test(p), `${f}: a payload holds merge data or body text: ${p.slice(0, 200)}`);
      }
    }
  });

  it('replay: every committed history replays against the current workflow code without nondeterminism', async () => {
    const results = await replayAll(workflowsPath());
    assert.equal(results.length, histories.length);
    for (const r of results) assert.equal(r.error, undefined, `${r.workflowId}: ${r.error?.message}`);
  });

  it('replay: the check can fail: an incompatible variant of the workflow fails replay with a nondeterminism error', async () => {
    const results = await replayAll(require.resolve('./fixtures/incompatible-workflows'));
    const failover = results.find((r) => r.workflowId === 'failover');
    assert.ok(failover?.error, 'the incompatible workflow must fail replay');
    assert.ok(failover.error instanceof DeterminismViolationError, `expected DeterminismViolationError, got ${failover.error?.name}: ${failover.error?.message}`);
  });
});
