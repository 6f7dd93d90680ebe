/**
 * The send ledger: one row per campaign recipient, claimed before a provider call and settled
 * after it (claims and sweeps, dispatch marks, settles, deferrals, holds and their release,
 * tallies). The multi-statement operations are transaction bodies run by the shared
 * connection (see connection.ts); the single-row accept and dispatch are compiled once.
 */
import { sql, type CompiledQuery } from 'kysely';
import { bySeq, now, toRecipient } from './columns';
import { exec, IN_CHUNK, rows, type Compilable, type StoreConnection } from './connection';
import { claimBody, type RecipientScope } from './ledger-claim';
import { sendWritesStatement } from './ledger-sends-pg';
import { QueryTemplate } from './query-template';
import type {
  ClaimResult,
  DeferOutcome,
  DeferralPolicy,
  HeldRow,
  LedgerStore,
  RangeTally,
  RecipientRow,
  ReleaseHeldInput,
  ReleaseHeldResult,
  SweepClaim,
  SweepOptions,
} from './types';

export class Ledger implements LedgerStore {
  #acceptQuery: QueryTemplate<'ts' | 'provider' | 'providerMessageId' | 'campaignId' | 'seq'> | undefined;
  #dispatchOneQuery: QueryTemplate<'ts' | 'provider' | 'campaignId' | 'seq' | 'claimToken'> | undefined;

  constructor(private readonly conn: StoreConnection) {}

  claimRange(campaignId: string, fromSeq: number, toSeq: number, provider: string, claimToken: string): Promise<ClaimResult> {
    const db = this.conn.db;
    const postgres = this.conn.dialect === 'postgres';
    return this.conn.tx(function* () {
      if (postgres) {
        // Lock the range's unsettled rows first. Under READ COMMITTED each statement below sees a new
        // snapshot; without the lock an older attempt could mark a row dispatched (or release it)
        // between them, and the row would end claimed by nobody, or pending behind the cursor.
        // With it, such writes wait for this claim and then find the claim token changed.
        yield* rows(
          db
            .selectFrom('recipients')
            .select('seq')
            .where('campaign_id', '=', campaignId)
            .where('seq', '>=', fromSeq)
            .where('seq', '<=', toSeq)
            .where('state', 'in', ['pending', 'sending'])
            .orderBy('seq')
            .forUpdate(),
        );
      }
      return yield* claimBody(db, campaignId, provider, claimToken, (eb) => eb.and([eb('seq', '>=', fromSeq), eb('seq', '<=', toSeq)]));
    });
  }

  claimSweep(campaignId: string, provider: string, claimToken: string, opts: SweepOptions): Promise<SweepClaim> {
    const db = this.conn.db;
    const postgres = this.conn.dialect === 'postgres';
    const due = opts.now.toISOString();
    return this.conn.tx(function* () {
      let pick = db
        .selectFrom('recipients')
        .select(['seq', 'state'])
        .where('campaign_id', '=', campaignId)
        .where('seq', '<=', opts.upToSeq)
        .where((eb) => eb.or([eb('state', 'in', ['pending', 'sending']), eb.and([eb('state', '=', 'deferred'), eb('defer_until', '<=', due)])]))
        .orderBy('seq')
        .limit(Math.max(1, Math.min(opts.limit, IN_CHUNK)));
      if (postgres) pick = pick.forUpdate();
      const picked = yield* rows(pick);
      if (picked.length === 0) return { claimed: [], inFlight: [], suppressed: 0, fromDeferred: 0, fromPending: 0 };
      const seqs = picked.map((r) => Number(r.seq));
      const fromDeferred = picked.filter((r) => r.state === 'deferred').length;
      const fromPending = picked.filter((r) => r.state === 'pending').length;
      // Due deferred rows are sent like pending ones (and suppressed like them, if the address was since).
      if (fromDeferred) {
        yield* exec(
          db
            .updateTable('recipients')
            .set({ state: 'pending', updated_at: now() })
            .where('campaign_id', '=', campaignId)
            .where('seq', 'in', seqs)
            .where('state', '=', 'deferred'),
        );
      }
      const claim = yield* claimBody(db, campaignId, provider, claimToken, (eb) => eb('seq', 'in', seqs));
      return { ...claim, fromDeferred, fromPending };
    });
  }

  async settleAccepted(campaignId: string, seq: number, provider: string, providerMessageId: string): Promise<void> {
    await this.recordSends(campaignId, provider, '', { accepted: [{ seq, providerMessageId }], dispatch: [] });
  }

  async recordSends(
    campaignId: string,
    provider: string,
    claimToken: string,
    writes: { accepted: Array<{ seq: number; providerMessageId: string }>; dispatch: number[] },
  ): Promise<number[]> {
    const db = this.conn.db;
    const ts = now();
    if (writes.accepted.length + writes.dispatch.length === 0) return [];
    if (this.conn.dialect === 'postgres') {
      // One statement, one round trip (see ledger-sends-pg.ts); a row both accepted and dispatched here takes the path below.
      const statement = sendWritesStatement(campaignId, provider, claimToken, ts, writes);
      if (statement) {
        const rs = await this.conn.db.executeQuery(statement);
        return (rs.rows as Array<{ seq: number }>).map((r) => Number(r.seq)).sort((a, b) => a - b);
      }
    }
    // From pending too: the provider accepted it, so the ledger must say so (never resend).
    this.#acceptQuery ??= QueryTemplate.build(['ts', 'provider', 'providerMessageId', 'campaignId', 'seq'], (v) =>
      db
        .updateTable('recipients')
        .set({ state: 'accepted', provider: v('provider'), provider_message_id: v('providerMessageId'), last_error: null, updated_at: v('ts') })
        .where('campaign_id', '=', v('campaignId'))
        .where('seq', '=', v('seq'))
        .where('state', 'in', ['pending', 'sending']),
    );
    const acceptQuery = this.#acceptQuery;
    const accept = (seqs: number[], providerMessageId: string): Compilable<unknown> =>
      seqs.length === 1
        ? { compile: () => acceptQuery.bind({ ts, provider, providerMessageId, campaignId, seq: seqs[0] }) }
        : db
            .updateTable('recipients')
            .set({ state: 'accepted', provider, provider_message_id: providerMessageId, last_error: null, updated_at: ts })
            .where('campaign_id', '=', campaignId)
            .where('seq', 'in', seqs)
            .where('state', 'in', ['pending', 'sending']);
    const dispatchMany = (seqs: number[]) =>
      db
        .updateTable('recipients')
        .set({ dispatched_at: ts, provider, updated_at: ts })
        .where('campaign_id', '=', campaignId)
        .where('seq', 'in', seqs)
        .where('state', '=', 'sending')
        .where('claim_token', '=', claimToken)
        .returning('seq');
    // One message at a time (SMTP): the same statement as dispatchMany([seq]), compiled once.
    this.#dispatchOneQuery ??= QueryTemplate.build(['ts', 'provider', 'campaignId', 'seq', 'claimToken'], (v) =>
      db
        .updateTable('recipients')
        .set({ dispatched_at: v('ts'), provider: v('provider'), updated_at: v('ts') })
        .where('campaign_id', '=', v('campaignId'))
        .where('seq', 'in', [v('seq')])
        .where('state', '=', 'sending')
        .where('claim_token', '=', v('claimToken'))
        .returning('seq'),
    );
    const dispatchOneQuery = this.#dispatchOneQuery;
    const dispatch = (seqs: number[]): Compilable<{ seq: number }> =>
      seqs.length === 1
        ? { compile: () => dispatchOneQuery.bind({ ts, provider, campaignId, seq: seqs[0], claimToken }) as CompiledQuery<{ seq: number }> }
        : dispatchMany(seqs);
    const { accepted, dispatch: toDispatch } = writes;
    if (accepted.length + toDispatch.length === 0) return [];
    // Acceptances with the same provider message id (one Mailgun call) settle in one statement per chunk.
    const byId = new Map<string, number[]>();
    for (const a of accepted) {
      const seqs = byId.get(a.providerMessageId);
      if (seqs) seqs.push(a.seq);
      else byId.set(a.providerMessageId, [a.seq]);
    }
    const accepts: Compilable<unknown>[] = [];
    for (const [providerMessageId, seqs] of byId) {
      for (let i = 0; i < seqs.length; i += IN_CHUNK) accepts.push(accept(seqs.slice(i, i + IN_CHUNK), providerMessageId));
    }
    if (accepts.length + Math.ceil(toDispatch.length / IN_CHUNK) === 1) {
      // One statement: no transaction needed.
      if (accepts.length) {
        await this.conn.one(accepts[0]);
        return [];
      }
      const rs = await this.conn.one(dispatch(toDispatch));
      return (rs.rows as Array<{ seq: number }>).map((r) => Number(r.seq)).sort((a, b) => a - b);
    }
    return this.conn.tx(function* () {
      for (const a of accepts) yield* exec(a);
      const marked: number[] = [];
      for (let i = 0; i < toDispatch.length; i += IN_CHUNK) {
        for (const r of yield* rows(dispatch(toDispatch.slice(i, i + IN_CHUNK)))) marked.push(Number(r.seq));
      }
      return marked.sort((a, b) => a - b);
    });
  }

  async settleRejected(campaignId: string, seq: number, provider: string, reason: string, hardBounce: boolean): Promise<void> {
    const db = this.conn.db;
    const ts = now();
    const update = db
      .updateTable('recipients')
      .set({ state: 'rejected', provider, last_error: reason, hard_bounce: hardBounce ? 1 : 0, updated_at: ts })
      .where('campaign_id', '=', campaignId)
      .where('seq', '=', seq)
      .where('state', 'in', ['pending', 'sending']);
    if (!hardBounce) {
      await update.execute();
      return;
    }
    const addSuppression = db
      .insertInto('suppressions')
      .columns(['email', 'reason', 'source', 'created_at'])
      .expression(
        db
          .selectFrom('recipients')
          .select([
            sql<string>`lower(email)`.as('email'),
            sql<string>`${'hard bounce: ' + reason}`.as('reason'),
            sql<string>`${provider}`.as('source'),
            sql<string>`${ts}`.as('created_at'),
          ])
          .where('campaign_id', '=', campaignId)
          .where('seq', '=', seq),
      )
      .onConflict((oc) => oc.column('email').doNothing());
    await this.conn.tx(function* () {
      yield* exec(update);
      yield* exec(addSuppression);
    });
  }

  markDispatched(campaignId: string, seqs: number[], provider: string, claimToken: string): Promise<number[]> {
    return this.recordSends(campaignId, provider, claimToken, { accepted: [], dispatch: seqs });
  }

  async release(campaignId: string, seqs: number[], lastError: string, claimToken: string): Promise<void> {
    const ts = now();
    for (let i = 0; i < seqs.length; i += IN_CHUNK) {
      await this.conn.db
        .updateTable('recipients')
        .set({ state: 'pending', dispatched_at: null, claim_token: null, last_error: lastError, updated_at: ts })
        .where('campaign_id', '=', campaignId)
        .where('seq', 'in', seqs.slice(i, i + IN_CHUNK))
        .where('state', '=', 'sending')
        .where('claim_token', '=', claimToken)
        .execute();
    }
  }

  tallyRange(campaignId: string, fromSeq: number, toSeq: number): Promise<RangeTally> {
    return this.tally(campaignId, (eb) => eb.and([eb('seq', '>=', fromSeq), eb('seq', '<=', toSeq)]));
  }

  async tallyRows(campaignId: string, seqs: number[]): Promise<RangeTally> {
    const total = emptyTally();
    for (let i = 0; i < seqs.length; i += IN_CHUNK) {
      const chunk = seqs.slice(i, i + IN_CHUNK);
      const t = await this.tally(campaignId, (eb) => eb('seq', 'in', chunk));
      for (const [p, n] of Object.entries(t.accepted)) total.accepted[p] = (total.accepted[p] ?? 0) + n;
      for (const k of ['rejected', 'suppressed', 'pending', 'sending', 'deferred', 'held', 'inFlightRecovered'] as const) total[k] += t[k];
    }
    return total;
  }

  private async tally(campaignId: string, scope: RecipientScope): Promise<RangeTally> {
    const groups = await this.conn.db
      .selectFrom('recipients')
      .select((eb) => [
        'state',
        'provider',
        eb.fn.countAll().as('n'),
        eb.fn.sum<number | string>(sql`case when in_flight_recoveries > 0 then 1 else 0 end`).as('recovered'),
      ])
      .where('campaign_id', '=', campaignId)
      .where(scope)
      .groupBy(['state', 'provider'])
      .execute();
    const tally = emptyTally();
    for (const g of groups) {
      const n = Number(g.n);
      tally.inFlightRecovered += Number(g.recovered ?? 0);
      switch (g.state) {
        case 'accepted': {
          const p = g.provider ?? 'unknown';
          tally.accepted[p] = (tally.accepted[p] ?? 0) + n;
          break;
        }
        case 'rejected':
        case 'suppressed':
        case 'pending':
        case 'sending':
        case 'deferred':
        case 'held':
          tally[g.state] += n;
          break;
      }
    }
    return tally;
  }

  settleDeferred(
    campaignId: string,
    seq: number,
    provider: string,
    reason: string,
    policy: DeferralPolicy,
    at: Date,
    retryAfterMs?: number,
  ): Promise<DeferOutcome> {
    const db = this.conn.db;
    return this.conn.tx(function* () {
      const [row] = yield* rows(
        db.selectFrom('recipients').select(['state', 'deferred_since', 'deferrals']).where('campaign_id', '=', campaignId).where('seq', '=', seq),
      );
      const ts = at.toISOString();
      if (!row || (row.state !== 'sending' && row.state !== 'pending'))
        return { state: 'rejected', reason: `not deferred: the row is ${row?.state ?? 'missing'}` } as DeferOutcome;
      const since = row.deferred_since ? new Date(row.deferred_since) : at;
      const deferrals = Number(row.deferrals ?? 0) + 1;
      const elapsed = at.getTime() - since.getTime();
      if (elapsed >= policy.windowMs) {
        const hours = elapsed / 3_600_000;
        const waited = hours >= 1 ? `${hours.toFixed(1)} h` : `${Math.round(elapsed / 60_000)} min`;
        const rejected = `soft bounce: deferred ${deferrals} times over ${waited} (deferral window ${formatDuration(policy.windowMs)}); last answer: ${reason}`;
        yield* exec(
          db
            .updateTable('recipients')
            .set({ state: 'rejected', provider, last_error: rejected, defer_until: null, deferred_since: since.toISOString(), deferrals, updated_at: ts })
            .where('campaign_id', '=', campaignId)
            .where('seq', '=', seq),
        );
        return { state: 'rejected', reason: rejected } as DeferOutcome;
      }
      const backoff = Math.min(policy.maxRetryMs, policy.firstRetryMs * 2 ** Math.min(30, deferrals - 1));
      // Never past the end of the window by much: the last try is at its end.
      const wait = Math.max(backoff, retryAfterMs ?? 0);
      const until = new Date(Math.min(at.getTime() + wait, since.getTime() + policy.windowMs));
      yield* exec(
        db
          .updateTable('recipients')
          .set({
            state: 'deferred',
            provider,
            last_error: reason,
            dispatched_at: null,
            claim_token: null,
            defer_until: until.toISOString(),
            deferred_since: since.toISOString(),
            deferrals,
            updated_at: ts,
          })
          .where('campaign_id', '=', campaignId)
          .where('seq', '=', seq),
      );
      return { state: 'deferred', deferUntil: until } as DeferOutcome;
    });
  }

  async holdRows(campaignId: string, seqs: number[], reason: string): Promise<void> {
    const ts = now();
    for (let i = 0; i < seqs.length; i += IN_CHUNK) {
      await this.conn.db
        .updateTable('recipients')
        .set({ state: 'held', held_at: ts, last_error: reason, claim_token: null, updated_at: ts })
        .where('campaign_id', '=', campaignId)
        .where('seq', 'in', seqs.slice(i, i + IN_CHUNK))
        .where('state', '=', 'sending')
        .execute();
    }
  }

  async listHeld(campaignId: string): Promise<HeldRow[]> {
    const rs = await this.conn.db
      .selectFrom('recipients')
      .select(['seq', 'email', 'provider', 'held_at', 'last_error'])
      .where('campaign_id', '=', campaignId)
      .where('state', '=', 'held')
      .orderBy('seq')
      .execute();
    return rs.map((r) => ({
      seq: Number(r.seq),
      email: r.email,
      provider: r.provider,
      heldAt: r.held_at ? new Date(r.held_at) : null,
      reason: r.last_error ?? '',
    }));
  }

  releaseHeld(campaignId: string, input: ReleaseHeldInput): Promise<ReleaseHeldResult> {
    const db = this.conn.db;
    return this.conn.tx(function* () {
      const ts = now();
      let q = db.selectFrom('recipients').select(['seq', 'provider', 'last_error']).where('campaign_id', '=', campaignId).where('state', '=', 'held');
      if (input.fromSeq !== undefined) q = q.where('seq', '>=', input.fromSeq);
      if (input.toSeq !== undefined) q = q.where('seq', '<=', input.toSeq);
      const held = yield* rows(q.orderBy('seq'));
      const acceptedByProvider: Record<string, number> = {};
      for (const r of held) {
        const seqs = [Number(r.seq)];
        const was = r.last_error ? ` (held: ${r.last_error})` : '';
        if (input.action === 'mark-sent') {
          const p = r.provider ?? 'unknown';
          acceptedByProvider[p] = (acceptedByProvider[p] ?? 0) + 1;
          yield* exec(
            db
              .updateTable('recipients')
              .set({
                state: 'accepted',
                last_error: `marked sent by ${input.by} at ${ts}${was}`,
                released_by: input.by,
                released_at: ts,
                held_at: null,
                updated_at: ts,
              })
              .where('campaign_id', '=', campaignId)
              .where('seq', 'in', seqs)
              .where('state', '=', 'held'),
          );
        } else {
          yield* exec(
            db
              .updateTable('recipients')
              .set({
                state: 'pending',
                dispatched_at: null,
                claim_token: null,
                last_error: `released to resend by ${input.by} at ${ts}${was}`,
                released_by: input.by,
                released_at: ts,
                held_at: null,
                updated_at: ts,
              })
              .where('campaign_id', '=', campaignId)
              .where('seq', 'in', seqs)
              .where('state', '=', 'held'),
          );
        }
      }
      return { released: held.length, acceptedByProvider, ranges: toRanges(held.map((r) => Number(r.seq))) };
    });
  }

  async nextDeferral(campaignId: string): Promise<Date | undefined> {
    const r = await this.conn.db
      .selectFrom('recipients')
      .select((eb) => eb.fn.min('defer_until').as('next'))
      .where('campaign_id', '=', campaignId)
      .where('state', '=', 'deferred')
      .executeTakeFirst();
    return r?.next ? new Date(String(r.next)) : undefined;
  }

  async getRecipients(campaignId: string, seqs: number[]): Promise<RecipientRow[]> {
    const out: RecipientRow[] = [];
    for (let i = 0; i < seqs.length; i += IN_CHUNK) {
      const rs = await this.conn.db
        .selectFrom('recipients')
        .selectAll()
        .where('campaign_id', '=', campaignId)
        .where('seq', 'in', seqs.slice(i, i + IN_CHUNK))
        .execute();
      out.push(...rs.map(toRecipient));
    }
    return out.sort(bySeq);
  }

  async countInFlight(): Promise<number> {
    // Served by the partial index recipients_sending_idx: only in-flight rows are read.
    const r = await this.conn.db
      .selectFrom('recipients')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('state', '=', 'sending')
      .executeTakeFirst();
    return Number(r?.n ?? 0);
  }

  async listRecipients(campaignId: string): Promise<RecipientRow[]> {
    const rs = await this.conn.db.selectFrom('recipients').selectAll().where('campaign_id', '=', campaignId).orderBy('seq').execute();
    return rs.map(toRecipient);
  }

  async getRecipient(campaignId: string, seq: number): Promise<RecipientRow | undefined> {
    const r = await this.conn.db.selectFrom('recipients').selectAll().where('campaign_id', '=', campaignId).where('seq', '=', seq).executeTakeFirst();
    return r ? toRecipient(r) : undefined;
  }
}

function emptyTally(): RangeTally {
  return { accepted: {}, rejected: 0, suppressed: 0, pending: 0, sending: 0, deferred: 0, held: 0, inFlightRecovered: 0 };
}

/** Sorted seqs as inclusive ranges: [1, 2, 3, 7] -> [[1, 3], [7, 7]]. */
export function toRanges(seqs: number[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const s of [...seqs].sort((a, b) => a - b)) {
    const last = out[out.length - 1];
    if (last && s === last[1] + 1) last[1] = s;
    else if (!last || s > last[1]) out.push([s, s]);
  }
  return out;
}

function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${ms / 1000} s`;
}
