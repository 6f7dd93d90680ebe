/** A scratch PostgreSQL database for the bench's PostgreSQL runs: created on MAILOVER_BENCH_PG_URL's server, dropped at the end. */
import { Client } from 'pg';

/** The PostgreSQL server the scratch databases are created on (any database name: it connects to `postgres`). */
export const PG_URL = process.env.MAILOVER_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** A scratch database: its URL, and how to drop it. */
export async function createScratchDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const onAdmin = async (text: string) => {
    const admin = new URL(PG_URL);
    admin.pathname = '/postgres';
    const client = new Client({ connectionString: admin.toString() });
    await client.connect();
    try {
      await client.query(text);
    } finally {
      await client.end();
    }
  };
  const name = `mailover_bench_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  await onAdmin(`create database ${name}`);
  const url = new URL(PG_URL);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => onAdmin(`drop database if exists ${name} with (force)`) };
}
