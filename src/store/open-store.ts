/**
 * Open the data-plane store: PostgreSQL when DATABASE_URL (or opts.databaseUrl) is a
 * postgres:// URL, else the embedded SQLite file (MAILOVER_DB, default ./data/mailover.db).
 */
import BetterSqlite3 from 'better-sqlite3';
import * as fs from 'fs';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import * as path from 'path';
import { Pool } from 'pg';
import type { StoreFaults } from './connection';
import { KyselyStore } from './kysely-store';
import type { Database } from './schema';
import type { Store } from './types';

export type { StoreFaults } from './connection';

export const DEFAULT_SQLITE_PATH = './data/mailover.db';

export interface OpenStoreOptions {
  /** postgres:// or postgresql:// URL; defaults to env DATABASE_URL. */
  databaseUrl?: string;
  /** SQLite file; defaults to env MAILOVER_DB, then ./data/mailover.db. */
  sqlitePath?: string;
  /**
   * SQLite durability (PRAGMA synchronous); defaults to env MAILOVER_SQLITE_SYNCHRONOUS, then `full`.
   * `full`: a settled row survives a power loss or an OS crash (WAL synced on every commit).
   * `normal`: faster, but the last commits before an OS crash or power loss can be lost (a process
   * crash loses nothing): a send settled then undone would be resent. Only as an explicit choice.
   */
  sqliteSynchronous?: SqliteSynchronous;
  /**
   * Faults the store injects into itself, for the fault suite only; never set in production
   * (the worker process sets them from MAILOVER_FAULT_KILL_IN_TRANSACTION, see worker-main.ts).
   */
  faults?: StoreFaults;
}

export type SqliteSynchronous = 'full' | 'normal';

/** The SQLite durability setting from the environment (default full); a clear error for anything else. */
export function sqliteSynchronousFromEnv(env: NodeJS.ProcessEnv = process.env): SqliteSynchronous {
  const raw = env.MAILOVER_SQLITE_SYNCHRONOUS;
  if (raw === undefined || raw === '') return 'full';
  const v = raw.trim().toLowerCase();
  if (v === 'full' || v === 'normal') return v;
  throw new Error(`MAILOVER_SQLITE_SYNCHRONOUS: expected 'full' or 'normal', got '${raw}'`);
}

export function isPostgresUrl(url: string | undefined): url is string {
  return !!url && /^postgres(?:ql)?:\/\//i.test(url);
}

/** Where the store is: a PostgreSQL URL, or the SQLite file (opts, then DATABASE_URL, MAILOVER_DB, the default file). */
export function storeTarget(
  opts: Pick<OpenStoreOptions, 'databaseUrl' | 'sqlitePath'> = {},
): { dialect: 'postgres'; url: string } | { dialect: 'sqlite'; file: string } {
  const url = opts.databaseUrl ?? process.env.DATABASE_URL;
  if (isPostgresUrl(url)) return { dialect: 'postgres', url };
  return { dialect: 'sqlite', file: opts.sqlitePath ?? process.env.MAILOVER_DB ?? DEFAULT_SQLITE_PATH };
}

export async function openStore(opts: OpenStoreOptions = {}): Promise<Store> {
  const target = storeTarget(opts);
  let store: KyselyStore;
  if (target.dialect === 'postgres') {
    const url = target.url;
    const pool = new Pool({ connectionString: url, max: 10 });
    // A connection that dies (server restart, pg_terminate_backend, network) must not crash the
    // process: an idle client reports on the pool; a checked-out client (between the statements of
    // a transaction) reports on itself, and its next query fails, so the activity retries.
    pool.on('error', () => undefined);
    pool.on('connect', (client) => client.on('error', () => undefined));
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    store = new KyselyStore({ db, dialect: 'postgres', location: redactUrl(url), faults: opts.faults });
  } else {
    const file = target.file;
    const synchronous = opts.sqliteSynchronous ?? sqliteSynchronousFromEnv();
    if (file !== ':memory:') fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    const sqlite = new BetterSqlite3(file);
    try {
      sqlite.pragma('busy_timeout = 5000');
      sqlite.pragma('journal_mode = WAL');
      sqlite.pragma(`synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    } catch (err) {
      sqlite.close();
      throw err;
    }
    const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
    store = new KyselyStore({ db, dialect: 'sqlite', sqlite, location: `sqlite:${file}`, faults: opts.faults });
  }
  try {
    await store.migrate();
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
  return store;
}

/** Where a store lives, safe to print: "sqlite:./data/mailover.db" or "postgres://host:port/db" (no credentials). */
export function describeStore(store: Store): string {
  if (store instanceof KyselyStore) return store.location;
  return store.dialect;
}

/** postgres://user:secret@host:5432/db?x=y -> postgres://host:5432/db */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    const port = u.port || '5432';
    return `postgres://${u.hostname}:${port}${u.pathname}`;
  } catch {
    return 'postgres://(unparseable url)';
  }
}
