/**
 * The one connection every part of the store shares, and its transaction runner.
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
import type { CompiledQuery, Kysely, QueryResult } from 'kysely';
import type { Database, Dialect } from './schema';

/** A transaction body: yields the queries to execute, receives each one's result. */
export type TxBody<T> = Generator<CompiledQuery, T, QueryResult<unknown>>;

export interface Compilable<R> {
  compile(): CompiledQuery<R>;
}

/** Execute a query inside a transaction body and return its rows. */
export function* rows<R>(query: Compilable<R>): Generator<CompiledQuery, R[], QueryResult<unknown>> {
  const result = yield query.compile();
  return result.rows as R[];
}

/** Execute a statement inside a transaction body and return the number of affected rows. */
export function* exec(query: Compilable<unknown>): Generator<CompiledQuery, number, QueryResult<unknown>> {
  const result = yield query.compile();
  return Number(result.numAffectedRows ?? 0n);
}

/** Rows per multi-row INSERT (12 parameters each: well under SQLite's and PostgreSQL's limits). */
export const INSERT_CHUNK = 500;
/** Parameters per `IN (...)` list. */
export const IN_CHUNK = 900;
const STATEMENT_CACHE = 64;
const PG_TX_ATTEMPTS = 5;

/** Faults the store injects into itself, for the fault suite only (never set in production). */
export interface StoreFaults {
  /**
   * Kill the process (SIGKILL) inside its Nth ledger transaction on this store, after the
   * first statement and before the commit. 0 or absent: never.
   */
  killInTransaction?: number;
}

export interface StoreConnectionOptions {
  db: Kysely<Database>;
  dialect: Dialect;
  /** The better-sqlite3 handle behind `db` (required for sqlite: transactions run on it synchronously). */
  sqlite?: SqliteDatabase;
  faults?: StoreFaults;
}

export class StoreConnection {
  readonly db: Kysely<Database>;
  readonly dialect: Dialect;
  readonly #sqlite: SqliteDatabase | undefined;
  readonly #statements = new Map<string, Statement>();
  readonly #killInTransaction: number;
  #transactions = 0;

  constructor(opts: StoreConnectionOptions) {
    this.db = opts.db;
    this.dialect = opts.dialect;
    this.#sqlite = opts.sqlite;
    this.#killInTransaction = Number(opts.faults?.killInTransaction ?? 0);
    if (this.dialect === 'sqlite' && !this.#sqlite) {
      throw new Error('KyselyStore: the sqlite dialect needs the better-sqlite3 handle (opts.sqlite)');
    }
  }

  async close(): Promise<void> {
    this.#statements.clear();
    await this.db.destroy();
  }

  /** Run a generator body in one transaction (see the file comment). */
  tx<T>(body: () => TxBody<T>): Promise<T> {
    const raw = this.#sqlite;
    if (raw) {
      // Hold Kysely's connection mutex so no other query of this store interleaves,
      // then run the whole transaction synchronously under BEGIN IMMEDIATE.
      return this.db.connection().execute(async () =>
        raw
          .transaction(() => {
            const gen = body();
            let step = gen.next();
            const crash = this.crashPointForThisTransaction();
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

  /**
   * One statement on the hot path. On SQLite it runs synchronously on a cached prepared
   * statement (a transaction body runs synchronously too, so the two never interleave).
   */
  async one(query: Compilable<unknown>): Promise<QueryResult<unknown>> {
    if (this.#sqlite) return this.runSqlite(query.compile());
    return this.db.executeQuery(query.compile());
  }

  private async pgTx<T>(body: () => TxBody<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.db.transaction().execute(async (trx) => {
          const gen = body();
          let step = gen.next();
          const crash = this.crashPointForThisTransaction();
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

  /**
   * Fault injection (`faults.killInTransaction`): whether this transaction is the one to die in.
   * Unset in production: a single comparison per transaction.
   */
  private crashPointForThisTransaction(): boolean {
    return this.#killInTransaction > 0 && ++this.#transactions === this.#killInTransaction;
  }
}

function crashNow(): never {
  process.kill(process.pid, 'SIGKILL');
  throw new Error('unreachable: killed');
}
