/**
 * Every recipient's fate, from code: a campaign's rows with their outcome and last ESP event
 * (streamed page by page, so a million rows take the memory of one page), one address's history
 * across campaigns, and the rows written as CSV or JSON lines. The CLI's `campaign recipients` and
 * `recipient` commands are these.
 */
import { openStoreReadOnly } from './store/read-only-store';
import type { AddressHistory, DeliveryEventType, RecipientOutcome, RecipientState, Store } from './store/types';

export const OUTCOME_PAGE = 1000;

/** States an operator can filter on (`sending`: claimed by a send attempt right now). */
export const OUTCOME_STATES: readonly RecipientState[] = ['pending', 'sending', 'accepted', 'rejected', 'deferred', 'held', 'suppressed'];

export interface OutcomeFilter {
  states?: RecipientState[];
  provider?: string;
}

/** A campaign's rows by seq, with their last ESP event, one page of `pageSize` in memory at a time. */
export async function* streamOutcomes(
  store: Pick<Store, 'pageOutcomes'>,
  campaignId: string,
  filter: OutcomeFilter = {},
  pageSize = OUTCOME_PAGE,
): AsyncGenerator<RecipientOutcome> {
  let afterSeq = 0;
  for (;;) {
    const page = await store.pageOutcomes(campaignId, { ...filter, afterSeq, limit: pageSize });
    for (const row of page) yield row;
    if (page.length < pageSize) return;
    afterSeq = page[page.length - 1].seq;
  }
}

/** An ESP event as people name it: `failed-permanent` is a bounce. */
export function eventLabel(type: DeliveryEventType): string {
  switch (type) {
    case 'failed-permanent':
      return 'bounced';
    case 'failed-temporary':
      return 'soft-bounced';
    default:
      return type;
  }
}

export const OUTCOME_CSV_COLUMNS = [
  'seq',
  'email',
  'status',
  'provider',
  'provider_message_id',
  'answer',
  'updated_at',
  'last_event',
  'last_event_at',
  'last_event_reason',
] as const;

function outcomeCells(o: RecipientOutcome): string[] {
  return [
    String(o.seq),
    o.email,
    o.state,
    o.provider ?? '',
    o.providerMessageId ?? '',
    o.answer ?? '',
    o.updatedAt.toISOString(),
    o.lastEvent ? eventLabel(o.lastEvent.type) : '',
    o.lastEvent ? o.lastEvent.occurredAt.toISOString() : '',
    o.lastEvent?.reason ?? '',
  ];
}

/** One CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break. */
export function csvField(v: string): string {
  return /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

export function outcomeCsvHeader(): string {
  return OUTCOME_CSV_COLUMNS.join(',');
}

export function outcomeCsvLine(o: RecipientOutcome): string {
  return outcomeCells(o).map(csvField).join(',');
}

/** The row as one JSON object (`--json` writes one per line). */
export function outcomeJson(o: RecipientOutcome): Record<string, unknown> {
  return {
    seq: o.seq,
    email: o.email,
    status: o.state,
    provider: o.provider,
    providerMessageId: o.providerMessageId,
    answer: o.answer,
    attempts: o.attempts,
    updatedAt: o.updatedAt.toISOString(),
    lastEvent: o.lastEvent
      ? { type: eventLabel(o.lastEvent.type), provider: o.lastEvent.provider, at: o.lastEvent.occurredAt.toISOString(), reason: o.lastEvent.reason }
      : null,
  };
}

/** One line of the plain table: seq, address, status, provider, message id, answer, last event. */
export function outcomeTextCells(o: RecipientOutcome): string[] {
  const event = o.lastEvent ? `${eventLabel(o.lastEvent.type)} ${shortTime(o.lastEvent.occurredAt)}` : '';
  return [String(o.seq), o.email, o.state, o.provider ?? '', o.providerMessageId ?? '', truncate(o.answer ?? '', 60), event];
}

export function shortTime(d: Date): string {
  return d.toISOString().replace('T', ' ').slice(0, 19);
}

export function truncate(s: string, max: number): string {
  const one = s.replace(/\s+/g, ' ');
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
}

/** What an address's history says, as lines a person reads. */
export function addressHistoryLines(h: AddressHistory): string[] {
  const lines: string[] = [];
  if (h.suppression)
    lines.push(
      `${h.email}: suppressed on every provider since ${shortTime(h.suppression.createdAt)} UTC (${h.suppression.reason}; source ${h.suppression.source})`,
    );
  for (const l of h.listSuppressions)
    lines.push(`${h.email}: suppressed for list '${l.list}' since ${shortTime(l.createdAt)} UTC (${l.reason}; source ${l.source})`);
  if (!h.suppression && !h.listSuppressions.length) lines.push(`${h.email}: not suppressed`);
  if (!h.rows.length) lines.push('no campaign has this address');
  for (const r of h.rows) {
    const via = r.provider ? ` via ${r.provider}` : '';
    const id = r.providerMessageId ? ` (message id ${r.providerMessageId})` : '';
    const answer = r.answer ? `: ${truncate(r.answer, 120)}` : '';
    lines.push(`campaign ${r.campaignId} #${r.seq}: ${r.state}${via}${id}${answer}, last change ${shortTime(r.updatedAt)} UTC`);
    for (const e of h.events.filter((x) => x.campaignId === r.campaignId && x.seq === r.seq)) {
      lines.push(`  ${shortTime(e.occurredAt)} UTC ${eventLabel(e.type)} (${e.provider})${e.reason ? `: ${truncate(e.reason, 120)}` : ''}`);
    }
  }
  const unlinked = h.events.filter((e) => !h.rows.some((r) => r.campaignId === e.campaignId && r.seq === e.seq));
  if (unlinked.length) lines.push('events not linked to a campaign row:');
  for (const e of unlinked)
    lines.push(`  ${shortTime(e.occurredAt)} UTC ${eventLabel(e.type)} (${e.provider})${e.reason ? `: ${truncate(e.reason, 120)}` : ''}`);
  return lines;
}

export function addressHistoryJson(h: AddressHistory): Record<string, unknown> {
  return {
    email: h.email,
    suppressed: h.suppression ? { reason: h.suppression.reason, source: h.suppression.source, since: h.suppression.createdAt.toISOString() } : null,
    listSuppressions: h.listSuppressions.map((l) => ({ list: l.list, reason: l.reason, source: l.source, since: l.createdAt.toISOString() })),
    campaigns: h.rows.map((r) => ({
      campaignId: r.campaignId,
      ...outcomeJson(r),
      events: h.events
        .filter((e) => e.campaignId === r.campaignId && e.seq === r.seq)
        .map((e) => ({ type: eventLabel(e.type), provider: e.provider, at: e.occurredAt.toISOString(), reason: e.reason })),
    })),
    unlinkedEvents: h.events
      .filter((e) => !h.rows.some((r) => r.campaignId === e.campaignId && r.seq === e.seq))
      .map((e) => ({ type: eventLabel(e.type), provider: e.provider, at: e.occurredAt.toISOString(), reason: e.reason })),
  };
}

/** The retry links of a campaign, from the store when it can be read without writing (for `campaign status`); undefined when it cannot. */
export async function retryLinks(id: string): Promise<{ retryOf?: string; retries: string[] } | undefined> {
  const reader = await openStoreReadOnly().catch(() => undefined);
  if (reader?.state !== 'open') return undefined;
  try {
    const c = await reader.campaigns.getCampaign(id);
    if (!c) return undefined;
    return { ...(c.retryOf ? { retryOf: c.retryOf } : {}), retries: await reader.campaigns.retriesOf(id) };
  } finally {
    await reader.close();
  }
}
