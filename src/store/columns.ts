/**
 * How values are kept in the store's columns and read back (see schema.ts): timestamps as
 * ISO-8601 UTC text, addresses trimmed and lower-cased, JSON as text, ledger rows as RecipientRow.
 */
import type { RecipientsTable } from './schema';
import type { RecipientRow, RecipientState } from './types';

export function now(): string {
  return new Date().toISOString();
}

export function normEmail(email: string): string {
  return email.trim().toLowerCase();
}

export function isBlank(v: unknown): boolean {
  return v === undefined || v === null || String(v).trim() === '';
}

export function parseFields(json: string): Record<string, string> {
  try {
    const v = JSON.parse(json);
    return v && typeof v === 'object' ? v : {};
  } catch {
    return {};
  }
}

export function bySeq(a: RecipientRow, b: RecipientRow): number {
  return a.seq - b.seq;
}

export function toRecipient(r: RecipientsTable): RecipientRow {
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
