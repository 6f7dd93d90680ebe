/**
 * `mailover campaign retry`: a follow-up campaign holding only the rows of a finished campaign
 * that are worth another try (deferred, soft-rejected, held), linked to it. Never a recipient that
 * was accepted, is suppressed since, hard-bounced, that its ESP reported delivered, or that an
 * earlier retry of the same campaign took (a retry of that retry takes it again, if need be).
 *
 * The follow-up goes through the normal launch path (checks, store, import, start): its audience
 * is written from the ledger to a private temporary JSONL file, imported, and deleted. Addresses
 * never go into Temporal: the workflow gets the new campaign's id, as any campaign does.
 */
import { once } from 'events';
import { createWriteStream } from 'fs';
import { mkdtemp, rm } from 'fs/promises';
import { tmpdir } from 'os';
import { join } from 'path';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { launchCampaign, type LaunchResult } from './launch';
import { RETRY_KINDS, type RetryKind, type Store } from './store/types';

export const RETRY_PAGE = 1000;

export interface RetryOptions {
  client: Client;
  store: Store;
  /** The finished campaign whose rows are retried. */
  campaignId: string;
  /** Which rows (all three when empty). */
  kinds: RetryKind[];
  /** The follow-up's id (default: `<id>-retry-<n>`). */
  newId?: string;
  taskQueue?: string;
}

export interface RetryResult extends LaunchResult {
  campaignId: string;
  retryOf: string;
  /** Rows taken, by kind. */
  taken: Record<RetryKind, number>;
  /** Rows of those kinds left out (suppressed since, hard-bounced, reported delivered by their ESP, or taken by an earlier retry). */
  leftOut: number;
}

export class RetryRefusedError extends Error {
  override readonly name = 'RetryRefusedError';
}

/** Throws RetryRefusedError while the campaign's workflow is still running (or paused, or holding). */
export async function assertCampaignEnded(client: Client, campaignId: string): Promise<void> {
  let status: string;
  try {
    status = (await client.workflow.getHandle(campaignId).describe()).status.name;
  } catch (err) {
    // Its workflow is gone from Temporal (retention): it ended long ago; the ledger has the rows.
    if (err instanceof WorkflowNotFoundError) return;
    throw err;
  }
  if (status === 'RUNNING') {
    throw new RetryRefusedError(
      `campaign '${campaignId}' is still running: a retry takes its rows once it has ended (wait for it with \`mailover campaign watch ${campaignId}\`, or cancel it)`,
    );
  }
}

export async function retryCampaign(opts: RetryOptions): Promise<RetryResult> {
  const { store, campaignId } = opts;
  const kinds = opts.kinds.length ? [...new Set(opts.kinds)] : [...RETRY_KINDS];
  const first = await store.getCampaign(campaignId);
  if (!first) throw new RetryRefusedError(`campaign '${campaignId}' not found in the store`);
  await assertCampaignEnded(opts.client, campaignId);
  const newId = opts.newId ?? (await nextRetryId(store, campaignId));
  if (await store.getCampaign(newId))
    throw new RetryRefusedError(`campaign '${newId}' already exists in the store; a campaign runs once (pick another id with --as)`);

  const dir = await mkdtemp(join(tmpdir(), 'mailover-retry-'));
  try {
    const file = join(dir, `${newId.replace(/[^\w.-]/g, '_')}.jsonl`);
    const taken = await writeRetryAudience(store, campaignId, kinds, file);
    const total = Object.values(taken).reduce((a, b) => a + b, 0);
    const present = await store.countRetryKinds(campaignId, kinds);
    const leftOut = Object.values(present).reduce((a, b) => a + b, 0) - total;
    if (total === 0) {
      throw new RetryRefusedError(
        `campaign '${campaignId}': nothing to retry (${kinds.join(', ')}: ${leftOut} row(s), all suppressed since, hard-bounced, reported delivered or taken by an earlier retry); no campaign created`,
      );
    }
    const launched = await launchCampaign({
      client: opts.client,
      store,
      definition: { ...first, id: newId, name: `${first.name ?? first.id} (retry)`, retryOf: campaignId },
      audienceFile: file,
      taskQueue: opts.taskQueue,
    });
    return { ...launched, campaignId: newId, retryOf: campaignId, taken, leftOut };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** `<id>-retry-<n>`, the first n not taken. */
async function nextRetryId(store: Store, campaignId: string): Promise<string> {
  for (let n = (await store.retriesOf(campaignId)).length + 1; ; n++) {
    const id = `${campaignId}-retry-${n}`;
    if (!(await store.getCampaign(id))) return id;
  }
}

/** The retry rows as JSONL (email and merge fields), page by page, to a file only this user can read. */
async function writeRetryAudience(store: Store, campaignId: string, kinds: RetryKind[], file: string): Promise<Record<RetryKind, number>> {
  const taken = Object.fromEntries(RETRY_KINDS.map((k) => [k, 0])) as Record<RetryKind, number>;
  const out = createWriteStream(file, { mode: 0o600 });
  const closed = once(out, 'close');
  try {
    let afterSeq = 0;
    for (;;) {
      const page = await store.pageRetryRows(campaignId, kinds, afterSeq, RETRY_PAGE);
      let chunk = '';
      for (const r of page) {
        const fields = Object.fromEntries(Object.entries(r.fields).filter(([k]) => k.toLowerCase() !== 'email'));
        chunk += `${JSON.stringify({ email: r.email, ...fields })}\n`;
        taken[r.kind]++;
      }
      if (chunk && !out.write(chunk)) await once(out, 'drain');
      if (page.length < RETRY_PAGE) break;
      afterSeq = page[page.length - 1].seq;
    }
  } finally {
    out.end();
    await closed;
  }
  return taken;
}
