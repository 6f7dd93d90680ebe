/**
 * The store opened only to read, for `mailover campaign start --dry-run`, which writes nothing
 * anywhere: nothing is migrated, no directory, database file or table is created, and PostgreSQL
 * sessions are read-only. A store that does not exist yet (no SQLite file, no mailover tables)
 * holds no campaigns. An SQLite file in WAL mode that no process has open cannot be read without
 * SQLite creating its -wal and -shm files next to it: that one is left unread, and says why.
 */
import BetterSqlite3 from 'better-sqlite3';
import { closeSync, existsSync, openSync, readSync, statSync } from 'fs';
import { Kysely, PostgresDialect, SqliteDialect, sql } from 'kysely';
import { Pool } from 'pg';
import { KyselyStore } from './kysely-store';
import { redactUrl, storeTarget, type OpenStoreOptions } from './open-store';
import type { Database } from './schema';
import type { Store } from './types';

export type StoreReader =
  /** Opened read-only: close it after use. */
  | { state: 'open'; location: string; campaigns: Pick<Store, 'getCampaign' | 'retriesOf'>; close(): Promise<void> }
  /** No store yet: it holds no campaigns. */
  | { state: 'empty'; location: string }
  /** Left unread, because reading it would write. */
  | { state: 'unread'; location: string; reason: string };

export async function openStoreReadOnly(opts: Pick<OpenStoreOptions, 'databaseUrl' | 'sqlitePath'> = {}): Promise<StoreReader> {
  const target = storeTarget(opts);
  return target.dialect === 'postgres' ? postgresReader(target.url) : sqliteReader(target.file);
}

function sqliteReader(file: string): StoreReader {
  const location = `sqlite:${file}`;
  if (file === ':memory:' || !existsSync(file) || statSync(file).size === 0) return { state: 'empty', location };
  if (inWalMode(file) && !(existsSync(`${file}-wal`) && existsSync(`${file}-shm`))) {
    return { state: 'unread', location, reason: 'no process has it open, and reading it would make SQLite create its -wal and -shm files' };
  }
  let sqlite: BetterSqlite3.Database | undefined;
  try {
    sqlite = new BetterSqlite3(file, { readonly: true, fileMustExist: true });
    sqlite.pragma('busy_timeout = 5000');
    if (!sqlite.prepare("select 1 from sqlite_master where type = 'table' and name = 'campaigns'").get()) {
      sqlite.close();
      return { state: 'empty', location };
    }
  } catch (err) {
    sqlite?.close();
    // e.g. SQLITE_READONLY_RECOVERY: a crashed writer's WAL that only a writer may recover.
    if (/^SQLITE_READONLY/.test(String((err as { code?: unknown }).code)))
      return { state: 'unread', location, reason: `SQLite would have to write to read it (${(err as Error).message})` };
    throw err;
  }
  const store = new KyselyStore({ db: new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) }), dialect: 'sqlite', sqlite, location });
  return { state: 'open', location, campaigns: store, close: () => store.close() };
}

/** Bytes 18 and 19 of an SQLite file's header (its write and read versions) are 2 in WAL mode. */
function inWalMode(file: string): boolean {
  const header = Buffer.alloc(20);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, header, 0, header.length, 0);
  } finally {
    closeSync(fd);
  }
  return header[18] === 2 || header[19] === 2;
}

async function postgresReader(url: string): Promise<StoreReader> {
  const location = redactUrl(url);
  const pool = new Pool({ connectionString: url, max: 1, options: '-c default_transaction_read_only=on' });
  pool.on('error', () => undefined);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    const { rows } = await sql<{ present: boolean }>`select to_regclass('campaigns') is not null as present`.execute(db);
    if (!rows[0]?.present) {
      await db.destroy();
      return { state: 'empty', location };
    }
  } catch (err) {
    await db.destroy();
    throw err;
  }
  const store = new KyselyStore({ db, dialect: 'postgres', location });
  return { state: 'open', location, campaigns: store, close: () => store.close() };
}
