/**
 * Hot-path statements compiled once (the ledger's single-row accept and dispatch).
 */
import type { CompiledQuery } from 'kysely';
import type { Compilable } from './connection';

/**
 * A hot-path query compiled once: built with a marker string for each varying value, compiled,
 * then bound per call by putting the real values where the markers are. The same SQL and
 * parameter positions as building and compiling it each time, without the builder and compiler
 * (a few per cent of the worker's CPU per message on the SMTP path).
 */
export class QueryTemplate<K extends string> {
  private constructor(
    private readonly query: CompiledQuery,
    private readonly slots: ReadonlyArray<K | null>,
  ) {}

  static build<K extends string>(keys: readonly K[], build: (value: (key: K) => never) => Compilable<unknown>): QueryTemplate<K> {
    const markerOf = (key: K) => `\u0000mailover-param:${key}`;
    const keyOf = new Map(keys.map((k) => [markerOf(k), k]));
    const query = build((key) => markerOf(key) as never).compile();
    const slots = query.parameters.map((p) => (typeof p === 'string' ? (keyOf.get(p) ?? null) : null));
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
