/**
 * The Store over Kysely: one implementation for SQLite (better-sqlite3) and PostgreSQL (pg).
 *
 * Multi-statement operations (claimRange, importAudience, settleRejected with a hard
 * bounce) are written once as generators that yield compiled Kysely queries; a small
 * runner executes them inside a transaction:
 * - PostgreSQL: an ordinary Kysely transaction (READ COMMITTED; the claim is an
 *   `UPDATE ... WHERE state = 'pending' RETURNING`, so concurrent claimers of one range
 *   block on the row locks and re-check the state: a row is never claimed twice).
 * - SQLite: `BEGIN IMMEDIATE` via better-sqlite3, executed synchronously. The write lock is
 *   taken up front (no read-to-write upgrade failures) and never held across an await, so
 *   other connections in the same process or in other processes only ever wait on
 *   busy_timeout for a few milliseconds.
 */
import type { Database as SqliteDatabase, Statement } from 'better-sqlite3';
import { CompiledQuery, Kysely, QueryResult, sql, type Expression, type ExpressionBuilder, type SqlBool } from 'kysely';
import type { Database, RecipientsTable } from './schema';
import { migrate } from './schema';
import type {
  AudienceRow,
  CampaignRecord,
  ClaimResult,
  DeferOutcome,
  DeferralPolicy,
  DeliveryEvent,
  DeliveryEventInput,
  DeliveryEventType,
  ListSuppressionRow,
  RecordEventResult,
  RangeTally,
  RecipientRow,
  RecipientState,
  RateReservation,
  SendRateLimits,
  HeldRow,
  ReleaseHeldInput,
  ReleaseHeldResult,
  Store,
  SuppressionRow,
  SweepClaim,
  SweepOptions,
} from './types';

type TxBody<T> = Generator<CompiledQuery, T, QueryResult<unknown>>;
interface Compilable<R> {
  compile(): CompiledQuery<R>;
}

/** Execute a query inside a transaction body and return its rows. */
function* rows<R>(query: Compilable<R>): Generator<CompiledQuery, R[], QueryResult<unknown>> {
  const result = yield query.compile();
  return result.rows as R[];
}

/** Execute a statement inside a transaction body and return the number of affected rows. */
function* exec(query: Compilable<unknown>): Generator<CompiledQuery, number, QueryResult<unknown>> {
  const result = yield query.compile();
  return Number(result.numAffectedRows ?? 0n);
}

/**
 * A hot-path query compiled once: built with a marker string for each varying value, compiled,
 * then bound per call by putting the real values where the markers are. The same SQL and
 * parameter positions as building and compiling it each time, without the builder and compiler
 * (a few per cent of the worker's CPU per message on the SMTP path).
 */
class QueryTemplate<K extends string> {
  private constructor(
    private readonly query: CompiledQuery,
    private readonly slots: ReadonlyArray<K | null>,
  ) {}

  static build<K extends string>(keys: readonly K[], build: (value: (key: K) => never) => Compilable<unknown>): QueryTemplate<K> {
    const markerOf = (key: K) => `\u0000mailover-param:${key}`;
    const keyOf = new Map(keys.map((k) => [markerOf(k), k]));
    const query = build((key) => markerOf(key) as never).compile();
    const slots = query.parameters.map((p) => (typeof p === 'string' ? keyOf.get(p) ?? null : null));
    for (const k of keys) if (!slots.includes(k)) throw new Error(`QueryTemplate: value '${k}' is not a parameter of ${query.sql}`);
    return new QueryTemplate(query, slots);
  }

  bind(values: Record<K, unknown>): CompiledQuery {
    const parameters = this.query.parameters.map((p, i) => {
      const slot = this.slots[i];
      return slot === null || slot === undefined ? p : values[slot];
    });
    return { ...this.query, parameters };
  }
}

/** Rows per multi-row INSERT (12 parameters each: well under SQLite's and PostgreSQL's limits). */
const INSERT_CHUNK = 500;
/** Parameters per `IN (...)` list. */
const IN_CHUNK = 900;
const STATEMENT_CACHE = 64;
const PG_TX_ATTEMPTS = 5;

export interface KyselyStoreOptions {
  db: Kysely<Database>;
  dialect: 'sqlite' | 'postgres';
  /** The better-sqlite3 handle behind `db` (required for sqlite: transactions run on it synchronously). */
  sqlite?: SqliteDatabase;
  /** Human-readable location without secrets, e.g. `sqlite:./data/mailover.db`. */
  location?: string;
}

export class KyselyStore implements Store {
  readonly dialect: 'sqlite' | 'postgres';
  readonly location: string;
  readonly db: Kysely<Database>;
  readonly #sqlite: SqliteDatabase | undefined;
  readonly #statements = new Map<string, Statement>();
  #acceptQuery: QueryTemplate<'ts' | 'provider' | 'providerMessageId' | 'campaignId' | 'seq'> | undefined;
  #dispatchOneQuery: QueryTemplate<'ts' | 'provider' | 'campaignId' | 'seq' | 'claimToken'> | undefined;

  constructor(opts: KyselyStoreOptions) {
    this.db = opts.db;
    this.dialect = opts.dialect;
    this.#sqlite = opts.sqlite;
    this.location = opts.location ?? opts.dialect;
    if (this.dialect === 'sqlite' && !this.#sqlite) {
      throw new Error('KyselyStore: the sqlite dialect needs the better-sqlite3 handle (opts.sqlite)');
    }
  }

  migrate(): Promise<void> {
    return migrate(this.db, this.dialect);
  }

  async close(): Promise<void> {
    this.#statements.clear();
    await this.db.destroy();
  }

  // ---------------------------------------------------------------- campaigns

  async createCampaign(c: Omit<CampaignRecord, 'createdAt'>): Promise<void> {
    const res = await this.db
      .insertInto('campaigns')
      .values({
        id: c.id,
        name: c.name ?? null,
        from_address: c.from,
        template_json: JSON.stringify(c.template),
        providers_json: JSON.stringify(c.providers),
        batch_size: c.batchSize,
        compliance_json: complianceJson(c),
        created_at: now(),
      })
      .onConflict((oc) => oc.column('id').doNothing())
      .executeTakeFirst();
    if (Number(res.numInsertedOrUpdatedRows ?? 0n) === 0) {
      throw new Error(`campaign '${c.id}' already exists`);
    }
  }

  async getCampaign(id: string): Promise<CampaignRecord | undefined> {
    const r = await this.db.selectFrom('campaigns').selectAll().where('id', '=', id).executeTakeFirst();
    if (!r) return undefined;
    const rec: CampaignRecord = {
      id: r.id,
      from: r.from_address,
      template: JSON.parse(r.template_json),
      providers: JSON.parse(r.providers_json),
      batchSize: Number(r.batch_size),
      createdAt: new Date(r.created_at),
    };
    if (r.name !== null) rec.name = r.name;
    if (r.compliance_json) {
      const c = JSON.parse(r.compliance_json) as Pick<CampaignRecord, 'transactional' | 'postalAddress' | 'list'>;
      if (c.transactional) rec.transactional = true;
      if (typeof c.postalAddress === 'string') rec.postalAddress = c.postalAddress;
      if (typeof c.list === 'string') rec.list = c.list;
    }
    return rec;
  }

  // ---------------------------------------------------------------- audience

  importAudience(campaignId: string, input: AudienceRow[]): Promise<{ inserted: number; duplicates: number }> {
    // Dedupe within the batch first (case-insensitive), keeping file order.
    const seen = new Set<string>();
    const batch: AudienceRow[] = [];
    for (const row of input) {
      const email = row.email.trim().toLowerCase();
      if (seen.has(email)) continue;
      seen.add(email);
      batch.push({ email, fields: row.fields });
    }
    const inBatchDuplicates = input.length - batch.length;
    if (batch.length === 0) return Promise.resolve({ inserted: 0, duplicates: inBatchDuplicates });

    const db = this.db;
    const dialect = this.dialect;
    return this.tx(function* () {
      if (dialect === 'postgres') {
        // Serialise concurrent imports into one campaign (seq allocation).
        yield* rows({ compile: () => sql`select pg_advisory_xact_lock(hashtext(${campaignId}))`.compile(db) });
      }
      const existing = new Set<string>();
      for (let i = 0; i < batch.length; i += IN_CHUNK) {
        const emails = batch.slice(i, i + IN_CHUNK).map((r) => r.email);
        const found = yield* rows(
          db.selectFrom('recipients').select('email').where('campaign_id', '=', campaignId).where('email', 'in', emails),
        );
        for (const f of found) existing.add(f.email);
      }
      const fresh = batch.filter((r) => !existing.has(r.email));
      const [max] = yield* rows(
        db
          .selectFrom('recipients')
          .select((eb) => eb.fn.max('seq').as('max'))
          .where('campaign_id', '=', campaignId),
      );
      let seq = Number(max?.max ?? 0);
      const ts = now();
      for (let i = 0; i < fresh.length; i += INSERT_CHUNK) {
        const values: RecipientsTable[] = fresh.slice(i, i + INSERT_CHUNK).map((r) => ({
          campaign_id: campaignId,
          seq: ++seq,
          email: r.email,
          fields_json: JSON.stringify(r.fields ?? {}),
          state: 'pending',
          provider: null,
          provider_message_id: null,
          attempts: 0,
          last_error: null,
          in_flight_recoveries: 0,
          dispatched_at: null,
          claim_token: null,
          defer_until: null,
          deferred_since: null,
          deferrals: 0,
          held_at: null,
          released_by: null,
          released_at: null,
          created_at: ts,
          updated_at: ts,
        }));
        yield* exec(db.insertInto('recipients').values(values));
      }
      return { inserted: fresh.length, duplicates: inBatchDuplicates + existing.size };
    });
  }

  async countAudience(campaignId: string): Promise<number> {
    const r = await this.db
      .selectFrom('recipients')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('campaign_id', '=', campaignId)
      .executeTakeFirst();
    return Number(r?.n ?? 0);
  }

  async maxSeq(campaignId: string): Promise<number> {
    const r = await this.db
      .selectFrom('recipients')
      .select((eb) => eb.fn.max('seq').as('max'))
      .where('campaign_id', '=', campaignId)
      .executeTakeFirst();
    return Number(r?.max ?? 0);
  }

  async audienceFieldNames(campaignId: string): Promise<string[]> {
    const q =
      this.dialect === 'postgres'
        ? sql<{ key: string }>`select distinct jsonb_object_keys(fields_json::jsonb) as key from recipients where campaign_id = ${campaignId}`
        : sql<{ key: string }>`select distinct j.key as key from recipients r, json_each(r.fields_json) j where r.campaign_id = ${campaignId}`;
    const res = await q.execute(this.db);
    return res.rows.map((r) => r.key).sort();
  }

  async rowsMissingFields(
    campaignId: string,
    fields: string[],
    limit: number,
  ): Promise<Array<{ seq: number; missing: string[] }>> {
    if (fields.length === 0 || limit <= 0) return [];
    const value = (field: string) =>
      this.dialect === 'postgres'
        ? sql<string | null>`(fields_json::jsonb ->> ${field})`
        : sql<string | null>`(select j.value from json_each(recipients.fields_json) j where j.key = ${field})`;
    const found = await this.db
      .selectFrom('recipients')
      .select(['seq', 'fields_json'])
      .where('campaign_id', '=', campaignId)
      .where((eb) => eb.or(fields.map((f) => eb(sql`coalesce(trim(${value(f)}), '')`, '=', ''))))
      .orderBy('seq')
      .limit(limit)
      .execute();
    return found.map((r) => {
      const f = parseFields(r.fields_json);
      return { seq: Number(r.seq), missing: fields.filter((k) => isBlank(f[k])) };
    });
  }

  // ---------------------------------------------------------------- ledger

  claimRange(campaignId: string, fromSeq: number, toSeq: number, provider: string, claimToken: string): Promise<ClaimResult> {
    const db = this.db;
    const postgres = this.dialect === 'postgres';
    return this.tx(function* () {
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
    const db = this.db;
    const postgres = this.dialect === 'postgres';
    const due = opts.now.toISOString();
    return this.tx(function* () {
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
        yield* exec(db.updateTable('recipients').set({ state: 'pending', updated_at: now() }).where('campaign_id', '=', campaignId).where('seq', 'in', seqs).where('state', '=', 'deferred'));
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
    const db = this.db;
    const ts = now();
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
      seqs.length === 1 ? { compile: () => dispatchOneQuery.bind({ ts, provider, campaignId, seq: seqs[0], claimToken }) as CompiledQuery<{ seq: number }> } : dispatchMany(seqs);
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
        await this.one(accepts[0]);
        return [];
      }
      const rs = await this.one(dispatch(toDispatch));
      return (rs.rows as Array<{ seq: number }>).map((r) => Number(r.seq)).sort((a, b) => a - b);
    }
    return this.tx(function* () {
      for (const a of accepts) yield* exec(a);
      const marked: number[] = [];
      for (let i = 0; i < toDispatch.length; i += IN_CHUNK) {
        for (const r of yield* rows(dispatch(toDispatch.slice(i, i + IN_CHUNK)))) marked.push(Number(r.seq));
      }
      return marked.sort((a, b) => a - b);
    });
  }

  /**
   * One statement on the hot path. On SQLite it runs synchronously on a cached prepared
   * statement (a transaction body runs synchronously too, so the two never interleave).
   */
  private async one(query: Compilable<unknown>): Promise<QueryResult<unknown>> {
    if (this.#sqlite) return this.runSqlite(query.compile());
    return this.db.executeQuery(query.compile());
  }

  async settleRejected(
    campaignId: string,
    seq: number,
    provider: string,
    reason: string,
    hardBounce: boolean,
  ): Promise<void> {
    const db = this.db;
    const ts = now();
    const update = db
      .updateTable('recipients')
      .set({ state: 'rejected', provider, last_error: reason, updated_at: ts })
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
    await this.tx(function* () {
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
      await this.db
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
    const groups = await this.db
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

  settleDeferred(campaignId: string, seq: number, provider: string, reason: string, policy: DeferralPolicy, at: Date, retryAfterMs?: number): Promise<DeferOutcome> {
    const db = this.db;
    return this.tx(function* () {
      const [row] = yield* rows(db.selectFrom('recipients').select(['state', 'deferred_since', 'deferrals']).where('campaign_id', '=', campaignId).where('seq', '=', seq));
      const ts = at.toISOString();
      if (!row || (row.state !== 'sending' && row.state !== 'pending')) return { state: 'rejected', reason: `not deferred: the row is ${row?.state ?? 'missing'}` } as DeferOutcome;
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
      await this.db
        .updateTable('recipients')
        .set({ state: 'held', held_at: ts, last_error: reason, claim_token: null, updated_at: ts })
        .where('campaign_id', '=', campaignId)
        .where('seq', 'in', seqs.slice(i, i + IN_CHUNK))
        .where('state', '=', 'sending')
        .execute();
    }
  }

  async listHeld(campaignId: string): Promise<HeldRow[]> {
    const rs = await this.db
      .selectFrom('recipients')
      .select(['seq', 'email', 'provider', 'held_at', 'last_error'])
      .where('campaign_id', '=', campaignId)
      .where('state', '=', 'held')
      .orderBy('seq')
      .execute();
    return rs.map((r) => ({ seq: Number(r.seq), email: r.email, provider: r.provider, heldAt: r.held_at ? new Date(r.held_at) : null, reason: r.last_error ?? '' }));
  }

  releaseHeld(campaignId: string, input: ReleaseHeldInput): Promise<ReleaseHeldResult> {
    const db = this.db;
    return this.tx(function* () {
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
              .set({ state: 'accepted', last_error: `marked sent by ${input.by} at ${ts}${was}`, released_by: input.by, released_at: ts, held_at: null, updated_at: ts })
              .where('campaign_id', '=', campaignId)
              .where('seq', 'in', seqs)
              .where('state', '=', 'held'),
          );
        } else {
          yield* exec(
            db
              .updateTable('recipients')
              .set({ state: 'pending', dispatched_at: null, claim_token: null, last_error: `released to resend by ${input.by} at ${ts}${was}`, released_by: input.by, released_at: ts, held_at: null, updated_at: ts })
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
    const r = await this.db
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
      const rs = await this.db.selectFrom('recipients').selectAll().where('campaign_id', '=', campaignId).where('seq', 'in', seqs.slice(i, i + IN_CHUNK)).execute();
      out.push(...rs.map(toRecipient));
    }
    return out.sort(bySeq);
  }

  async countInFlight(): Promise<number> {
    // Served by the partial index recipients_sending_idx: only in-flight rows are read.
    const r = await this.db.selectFrom('recipients').select((eb) => eb.fn.countAll().as('n')).where('state', '=', 'sending').executeTakeFirst();
    return Number(r?.n ?? 0);
  }

  async listRecipients(campaignId: string): Promise<RecipientRow[]> {
    const rs = await this.db
      .selectFrom('recipients')
      .selectAll()
      .where('campaign_id', '=', campaignId)
      .orderBy('seq')
      .execute();
    return rs.map(toRecipient);
  }

  // ---------------------------------------------------------------- suppressions

  async addSuppression(email: string, reason: string, source: string): Promise<void> {
    await this.addSuppressions([email], reason, source);
  }

  async addSuppressions(emails: string[], reason: string, source: string): Promise<number> {
    let added = 0;
    const createdAt = now();
    for (let i = 0; i < emails.length; i += INSERT_CHUNK) {
      const values = emails.slice(i, i + INSERT_CHUNK).map((email) => ({ email: normEmail(email), reason, source, created_at: createdAt }));
      const r = await this.db
        .insertInto('suppressions')
        .values(values)
        .onConflict((oc) => oc.column('email').doNothing())
        .executeTakeFirst();
      added += Number(r.numInsertedOrUpdatedRows ?? 0);
    }
    return added;
  }

  async removeSuppression(email: string): Promise<boolean> {
    const r = await this.db.deleteFrom('suppressions').where('email', '=', normEmail(email)).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  async isSuppressed(email: string): Promise<boolean> {
    const r = await this.db
      .selectFrom('suppressions')
      .select('email')
      .where('email', '=', normEmail(email))
      .executeTakeFirst();
    return r !== undefined;
  }

  async listSuppressions(): Promise<SuppressionRow[]> {
    const rs = await this.db.selectFrom('suppressions').selectAll().orderBy('created_at').orderBy('email').execute();
    return rs.map((r) => ({ email: r.email, reason: r.reason, source: r.source, createdAt: new Date(r.created_at) }));
  }

  async reserveSends(provider: string, want: number, limits: SendRateLimits, nowMs: number): Promise<RateReservation> {
    if (want <= 0) return { granted: 0, retryAfterMs: 0 };
    const windows: Array<{ ms: number; max: number }> = [];
    if (limits.perSecond !== undefined) windows.push({ ms: 1_000, max: limits.perSecond });
    if (limits.perWindow !== undefined) windows.push({ ms: limits.perWindow.windowMs, max: limits.perWindow.max });
    if (!windows.length) return { granted: want, retryAfterMs: 0 };
    const longest = Math.max(...windows.map((w) => w.ms));
    const db = this.db;
    const postgres = this.dialect === 'postgres';
    return this.tx(function* () {
      // PostgreSQL: one reserver per provider at a time (SQLite's BEGIN IMMEDIATE already serialises).
      if (postgres) yield* rows({ compile: () => sql`select pg_advisory_xact_lock(hashtext(${'mailover-rate:' + provider}))`.compile(db) });
      yield* exec(db.deleteFrom('rate_grants').where('provider', '=', provider).where('at_ms', '<=', nowMs - longest));
      const recent = yield* rows(db.selectFrom('rate_grants').select(['at_ms', 'count']).where('provider', '=', provider).where('at_ms', '>', nowMs - longest).orderBy('at_ms'));
      const grants = recent.map((r) => ({ at: Number(r.at_ms), count: Number(r.count) }));
      let granted = want;
      let retryAfterMs = 0;
      for (const w of windows) {
        const inWindow = grants.filter((g) => g.at > nowMs - w.ms);
        const used = inWindow.reduce((n, g) => n + g.count, 0);
        const room = Math.max(0, w.max - used);
        if (room < want) {
          // Capacity frees as the oldest grants in this window age out.
          let freed = room;
          let wait = w.ms;
          for (const g of inWindow) {
            freed += g.count;
            wait = g.at + w.ms - nowMs;
            if (freed >= Math.min(want, w.max)) break;
          }
          retryAfterMs = Math.max(retryAfterMs, wait);
        }
        granted = Math.min(granted, room);
      }
      if (granted > 0) yield* exec(db.insertInto('rate_grants').values({ provider, at_ms: nowMs, count: granted }));
      return { granted, retryAfterMs: granted < want ? Math.max(1, retryAfterMs) : 0 };
    });
  }

  async addListSuppression(list: string, email: string, reason: string, source: string): Promise<void> {
    await this.db
      .insertInto('list_suppressions')
      .values({ list, email: normEmail(email), reason, source, created_at: now() })
      .onConflict((oc) => oc.columns(['list', 'email']).doNothing())
      .execute();
  }

  async listListSuppressions(): Promise<ListSuppressionRow[]> {
    const rs = await this.db.selectFrom('list_suppressions').selectAll().orderBy('created_at').orderBy('list').orderBy('email').execute();
    return rs.map((r) => ({ list: r.list, email: r.email, reason: r.reason, source: r.source, createdAt: new Date(r.created_at) }));
  }

  // ---------------------------------------------------------------- provider events

  recordEvent(event: DeliveryEventInput, suppress?: { reason: string; source: string; list?: string }): Promise<RecordEventResult> {
    const db = this.db;
    const email = normEmail(event.email);
    const id = `${event.provider}:${event.providerEventId}`;
    return this.tx(function* () {
      const ts = now();
      let campaignId: string | null = null;
      let seq: number | null = null;
      if (event.campaignId) {
        // The identity must name a row of this very address: a mismatch links nothing.
        let q = db.selectFrom('recipients').select('seq').where('campaign_id', '=', event.campaignId).where('email', '=', email);
        if (event.seq !== undefined) q = q.where('seq', '=', event.seq);
        const [row] = yield* rows(q.limit(1));
        if (row) {
          campaignId = event.campaignId;
          seq = Number(row.seq);
        }
      }
      const inserted = yield* exec(
        db
          .insertInto('events')
          .values({ id, provider: event.provider, type: event.type, occurred_at: event.occurredAt.toISOString(), received_at: ts, email, campaign_id: campaignId, seq, reason: event.reason })
          .onConflict((oc) => oc.column('id').doNothing()),
      );
      let suppressed = false;
      if (suppress) {
        const n = suppress.list
          ? yield* exec(
              db
                .insertInto('list_suppressions')
                .values({ list: suppress.list, email, reason: suppress.reason, source: suppress.source, created_at: ts })
                .onConflict((oc) => oc.columns(['list', 'email']).doNothing()),
            )
          : yield* exec(
              db
                .insertInto('suppressions')
                .values({ email, reason: suppress.reason, source: suppress.source, created_at: ts })
                .onConflict((oc) => oc.column('email').doNothing()),
            );
        suppressed = n > 0;
      }
      return { recorded: inserted > 0, linked: campaignId !== null, suppressed };
    });
  }

  async listEvents(filter: { campaignId?: string; email?: string } = {}): Promise<DeliveryEvent[]> {
    let q = this.db.selectFrom('events').selectAll();
    if (filter.campaignId !== undefined) q = q.where('campaign_id', '=', filter.campaignId);
    if (filter.email !== undefined) q = q.where('email', '=', normEmail(filter.email));
    const rs = await q.orderBy('received_at').orderBy('id').execute();
    return rs.map((r) => ({
      id: r.id,
      provider: r.provider,
      type: r.type as DeliveryEventType,
      occurredAt: new Date(r.occurred_at),
      receivedAt: new Date(r.received_at),
      email: r.email,
      campaignId: r.campaign_id,
      seq: r.seq === null ? null : Number(r.seq),
      reason: r.reason,
    }));
  }

  async rememberWebhookToken(provider: string, token: string, forgetBefore: Date): Promise<boolean> {
    await this.db.deleteFrom('webhook_tokens').where('seen_at', '<', forgetBefore.toISOString()).execute();
    const r = await this.db
      .insertInto('webhook_tokens')
      .values({ provider, token, seen_at: now() })
      .onConflict((oc) => oc.columns(['provider', 'token']).doNothing())
      .executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0n) > 0;
  }

  async forgetWebhookToken(provider: string, token: string): Promise<void> {
    await this.db.deleteFrom('webhook_tokens').where('provider', '=', provider).where('token', '=', token).execute();
  }

  async listCampaignIds(): Promise<string[]> {
    const rs = await this.db.selectFrom('campaigns').select('id').orderBy('id').execute();
    return rs.map((r) => r.id);
  }

  async getRecipient(campaignId: string, seq: number): Promise<RecipientRow | undefined> {
    const r = await this.db.selectFrom('recipients').selectAll().where('campaign_id', '=', campaignId).where('seq', '=', seq).executeTakeFirst();
    return r ? toRecipient(r) : undefined;
  }

  // ---------------------------------------------------------------- transactions

  /** Run a generator body in one transaction (see the file comment). */
  private tx<T>(body: () => TxBody<T>): Promise<T> {
    const raw = this.#sqlite;
    if (raw) {
      // Hold Kysely's connection mutex so no other query of this store interleaves,
      // then run the whole transaction synchronously under BEGIN IMMEDIATE.
      return this.db.connection().execute(async () =>
        raw
          .transaction(() => {
            const gen = body();
            let step = gen.next();
            const crash = crashPointForThisTransaction();
            while (!step.done) {
              const result = this.runSqlite(step.value);
              if (crash) crashNow();
              step = gen.next(result);
            }
            return step.value;
          })
          .immediate(),
      );
    }
    return this.pgTx(body);
  }

  private async pgTx<T>(body: () => TxBody<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.db.transaction().execute(async (trx) => {
          const gen = body();
          let step = gen.next();
          const crash = crashPointForThisTransaction();
          while (!step.done) {
            const result = await trx.executeQuery(step.value);
            if (crash) crashNow();
            step = gen.next(result);
          }
          return step.value;
        });
      } catch (err) {
        // Deadlock / serialization failure: the transaction was rolled back; run it again.
        const code = (err as { code?: unknown }).code;
        if ((code === '40P01' || code === '40001') && attempt < PG_TX_ATTEMPTS) {
          await new Promise((r) => setTimeout(r, 5 * attempt + Math.random() * 10));
          continue;
        }
        throw err;
      }
    }
  }

  private runSqlite(q: CompiledQuery): QueryResult<unknown> {
    let stmt = this.#statements.get(q.sql);
    if (!stmt) {
      stmt = this.#sqlite!.prepare(q.sql);
      if (this.#statements.size >= STATEMENT_CACHE) {
        this.#statements.delete(this.#statements.keys().next().value!);
      }
      this.#statements.set(q.sql, stmt);
    }
    const params = q.parameters as unknown[];
    if (stmt.reader) return { rows: stmt.all(params) };
    const info = stmt.run(params);
    return { rows: [], numAffectedRows: BigInt(info.changes) };
  }
}

// ---------------------------------------------------------------- helpers

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

type RecipientScope = (eb: ExpressionBuilder<Database, 'recipients'>) => Expression<SqlBool>;

/**
 * The claim of a scope of rows (a seq range, or a sweep's seqs), inside one transaction:
 * 1. pending rows whose address is suppressed (for all mail, or for this campaign's list) -> suppressed;
 * 2. rows in `sending` that were dispatched -> returned as in flight (inFlightRecoveries + 1, provider kept);
 * 3. pending rows, and rows in `sending` never dispatched -> sending, claimed by `claimToken`.
 */
function* claimBody(db: Kysely<Database>, campaignId: string, provider: string, claimToken: string, scope: RecipientScope): TxBody<ClaimResult> {
  const ts = now();
  const [campaign] = yield* rows(db.selectFrom('campaigns').select('compliance_json').where('id', '=', campaignId));
  const list = listOf(campaignId, campaign?.compliance_json ?? null);
  const suppressed = yield* exec(
    db
      .updateTable('recipients')
      .set({
        state: 'suppressed',
        updated_at: ts,
        last_error: (eb) =>
          eb.fn.coalesce(
            eb
              .selectFrom('suppressions')
              .select(sql<string>`'suppressed: ' || suppressions.reason`.as('r'))
              .where('suppressions.email', '=', sql<string>`lower(recipients.email)`)
              .limit(1),
            eb
              .selectFrom('list_suppressions')
              .select(sql<string>`'suppressed for list ' || list_suppressions.list || ': ' || list_suppressions.reason`.as('r'))
              .where('list_suppressions.list', '=', list)
              .where('list_suppressions.email', '=', sql<string>`lower(recipients.email)`)
              .limit(1),
          ),
      })
      .where('campaign_id', '=', campaignId)
      .where(scope)
      .where('state', '=', 'pending')
      .where((eb) =>
        eb.or([
          eb.exists(
            eb
              .selectFrom('suppressions')
              .select(sql<number>`1`.as('one'))
              .where('suppressions.email', '=', sql<string>`lower(recipients.email)`),
          ),
          eb.exists(
            eb
              .selectFrom('list_suppressions')
              .select(sql<number>`1`.as('one'))
              .where('list_suppressions.list', '=', list)
              .where('list_suppressions.email', '=', sql<string>`lower(recipients.email)`),
          ),
        ]),
      ),
  );
  const inFlight = yield* rows(
    db
      .updateTable('recipients')
      .set((eb) => ({
        in_flight_recoveries: eb('in_flight_recoveries', '+', 1),
        claim_token: claimToken,
        updated_at: ts,
      }))
      .where('campaign_id', '=', campaignId)
      .where(scope)
      .where('state', '=', 'sending')
      .where('dispatched_at', 'is not', null)
      .returningAll(),
  );
  const claimed = yield* rows(
    db
      .updateTable('recipients')
      .set((eb) => ({
        state: 'sending',
        attempts: eb('attempts', '+', 1),
        provider,
        dispatched_at: null,
        claim_token: claimToken,
        updated_at: ts,
      }))
      .where('campaign_id', '=', campaignId)
      .where(scope)
      .where((eb) => eb.or([eb('state', '=', 'pending'), eb.and([eb('state', '=', 'sending'), eb('dispatched_at', 'is', null)])]))
      .returningAll(),
  );
  return {
    claimed: claimed.map(toRecipient).sort(bySeq),
    inFlight: inFlight.map(toRecipient).sort(bySeq),
    suppressed,
  };
}

/**
 * Fault injection for the fault suite: with MAILOVER_FAULT_KILL_IN_TRANSACTION=N the process
 * kills itself (SIGKILL) inside its Nth ledger transaction, after the first statement and
 * before the commit. Unset in production: a single comparison per transaction.
 */
const KILL_IN_TRANSACTION = Number(process.env.MAILOVER_FAULT_KILL_IN_TRANSACTION ?? 0);
let transactions = 0;
function crashPointForThisTransaction(): boolean {
  return KILL_IN_TRANSACTION > 0 && ++transactions === KILL_IN_TRANSACTION;
}
function crashNow(): never {
  process.kill(process.pid, 'SIGKILL');
  throw new Error('unreachable: killed');
}

function now(): string {
  return new Date().toISOString();
}

function complianceJson(c: Omit<CampaignRecord, 'createdAt'>): string | null {
  const v: Record<string, unknown> = {};
  if (c.transactional) v.transactional = true;
  if (c.postalAddress !== undefined) v.postalAddress = c.postalAddress;
  if (c.list !== undefined) v.list = c.list;
  return Object.keys(v).length ? JSON.stringify(v) : null;
}

/** The list a campaign belongs to (its `list`, else its own id). */
function listOf(campaignId: string, complianceJson: string | null): string {
  if (!complianceJson) return campaignId;
  try {
    const v = JSON.parse(complianceJson) as { list?: unknown };
    return typeof v.list === 'string' ? v.list : campaignId;
  } catch {
    return campaignId;
  }
}

function normEmail(email: string): string {
  return email.trim().toLowerCase();
}

function isBlank(v: unknown): boolean {
  return v === undefined || v === null || String(v).trim() === '';
}

function parseFields(json: string): Record<string, string> {
  try {
    const v = JSON.parse(json);
    return v && typeof v === 'object' ? v : {};
  } catch {
    return {};
  }
}

function bySeq(a: RecipientRow, b: RecipientRow): number {
  return a.seq - b.seq;
}

function toRecipient(r: RecipientsTable): RecipientRow {
  return {
    campaignId: r.campaign_id,
    seq: Number(r.seq),
    email: r.email,
    fields: parseFields(r.fields_json),
    state: r.state as RecipientState,
    provider: r.provider,
    providerMessageId: r.provider_message_id,
    attempts: Number(r.attempts),
    lastError: r.last_error,
    inFlightRecoveries: Number(r.in_flight_recoveries),
    dispatchedAt: r.dispatched_at ? new Date(r.dispatched_at) : null,
    deferUntil: r.defer_until ? new Date(r.defer_until) : null,
    deferredSince: r.deferred_since ? new Date(r.deferred_since) : null,
    deferrals: Number(r.deferrals ?? 0),
    heldAt: r.held_at ? new Date(r.held_at) : null,
    releasedBy: r.released_by ?? null,
    releasedAt: r.released_at ? new Date(r.released_at) : null,
    createdAt: new Date(r.created_at),
    updatedAt: new Date(r.updated_at),
  };
}
