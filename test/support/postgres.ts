/** A scratch PostgreSQL database per test run (created and dropped), on MAILOVER_TEST_PG_URL. */
import { Client } from 'pg';

export const PG_URL = process.env.MAILOVER_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface ScratchDatabase {
  url: string;
  drop(): Promise<void>;
}

async function onAdmin<T>(fn: (c: Client) => Promise<T>): Promise<T> {
  const admin = new URL(PG_URL);
  admin.pathname = '/postgres';
  const client = new Client({ connectionString: admin.toString() });
  try {
    await client.connect();
  } catch (err) {
    throw new Error(`PostgreSQL is not reachable at ${PG_URL} (${(err as Error).message}): the store must pass on both dialects; set MAILOVER_TEST_PG_URL`, {
      cause: err,
    });
  }
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export async function createScratchDatabase(): Promise<ScratchDatabase> {
  const name = `mailover_test_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  await onAdmin((c) => c.query(`create database ${name}`));
  const url = new URL(PG_URL);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => onAdmin((c) => c.query(`drop database if exists ${name} with (force)`)).then(() => undefined) };
}
