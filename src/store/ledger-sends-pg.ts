/**
 * The ledger's send writes on PostgreSQL in one statement: acceptances and dispatch marks of
 * any number of rows, one round trip and one commit (no BEGIN/COMMIT around them).
 *
 * The SMTP path writes a message's acceptance together with the next message's dispatch mark,
 * per message and connection. As a Kysely transaction that was four round trips (BEGIN, two
 * UPDATEs, COMMIT) plus one statement per distinct provider message id; here the acceptances
 * are one `UPDATE ... FROM unnest(seqs, ids)`, and the dispatch mark the statement that carries
 * it as a data-modifying CTE. A single statement is atomic and, under synchronous_commit (left as
 * the server has it), durable when it returns: the same guarantee as the transaction.
 */
import { CompiledQuery } from 'kysely';

export interface SendWrites {
  accepted: Array<{ seq: number; providerMessageId: string }>;
  dispatch: number[];
}

const ACCEPT = (p: { provider: string; ts: string; campaign: string; seqs: string; ids: string }) =>
  `update recipients as r set state = 'accepted', provider = ${p.provider}, provider_message_id = u.id, last_error = null, updated_at = ${p.ts}` +
  ` from unnest(${p.seqs}::integer[], ${p.ids}::text[]) as u(seq, id)` +
  // \`r.seq = any(seqs)\` as well as the join: without it a fresh table (no statistics yet) is read through its state index.
  ` where r.campaign_id = ${p.campaign} and r.seq = any(${p.seqs}::integer[]) and r.seq = u.seq and r.state in ('pending', 'sending')`;

const DISPATCH = (p: { provider: string; ts: string; campaign: string; seqs: string; token: string }) =>
  `update recipients set dispatched_at = ${p.ts}, provider = ${p.provider}, updated_at = ${p.ts}` +
  ` where campaign_id = ${p.campaign} and seq = any(${p.seqs}::integer[]) and state = 'sending' and claim_token = ${p.token}` +
  ` returning seq`;

const ACCEPT_ONLY = ACCEPT({ provider: '$1', ts: '$2', campaign: '$3', seqs: '$4', ids: '$5' });
const DISPATCH_ONLY = DISPATCH({ provider: '$1', ts: '$2', campaign: '$3', seqs: '$4', token: '$5' });
const BOTH =
  `with accepted as (${ACCEPT({ provider: '$1', ts: '$2', campaign: '$3', seqs: '$4', ids: '$5' })}) ` +
  DISPATCH({ provider: '$1', ts: '$2', campaign: '$3', seqs: '$6', token: '$7' });

/**
 * The one statement for these writes, or undefined when a row is both accepted and dispatched
 * here (one statement must not update a row twice: the caller runs them in order in a transaction).
 * Acceptances of the same row twice keep the first.
 */
export function sendWritesStatement(campaignId: string, provider: string, claimToken: string, ts: string, writes: SendWrites): CompiledQuery | undefined {
  const acceptedIds = new Map<number, string>();
  for (const a of writes.accepted) if (!acceptedIds.has(a.seq)) acceptedIds.set(a.seq, a.providerMessageId);
  const dispatch = [...new Set(writes.dispatch)];
  if (dispatch.some((s) => acceptedIds.has(s))) return undefined;
  const seqs = [...acceptedIds.keys()];
  const ids = [...acceptedIds.values()];
  if (dispatch.length === 0) return CompiledQuery.raw(ACCEPT_ONLY, [provider, ts, campaignId, seqs, ids]);
  if (seqs.length === 0) return CompiledQuery.raw(DISPATCH_ONLY, [provider, ts, campaignId, dispatch, claimToken]);
  return CompiledQuery.raw(BOTH, [provider, ts, campaignId, seqs, ids, dispatch, claimToken]);
}
