/**
 * Suppression sync with an ESP that keeps its own lists (Mailgun): pull its bounces, unsubscribes
 * and complaints into mailover (so a new backup provider starts with what the primary knew), and
 * push mailover's list to it. Through mailgun.js, following Mailgun's paging to the end.
 */
import Mailgun from 'mailgun.js';
import { MAILGUN_REGIONS, type MailgunProviderConfig } from './provider';
import type { Store, SuppressionRow } from '../../store/types';

export type MailgunList = 'bounces' | 'unsubscribes' | 'complaints';
export const MAILGUN_LISTS: readonly MailgunList[] = ['bounces', 'unsubscribes', 'complaints'];

export interface PullReport {
  /** Entries read per list. */
  read: Record<MailgunList, number>;
  /** Addresses newly suppressed in mailover (already suppressed ones are left as they were). */
  added: number;
  /**
   * Unsubscribes Mailgun holds for some tags only: each becomes a suppression for the mailover
   * list of that name (campaigns tag their Mailgun messages with their list), not for all mail.
   * Counts (list, address) pairs newly added.
   */
  addedToLists: number;
  pages: number;
}

export interface PushReport {
  pushed: Record<MailgunList, number>;
  /** Addresses pushed as unsubscribes for the tags of their mailover lists only. */
  pushedForLists: number;
  calls: number;
}

const PAGE = 1000;
/** One entry of a suppression list as Mailgun's API takes it. */
type Entry = { address: string; created_at: string; code?: number; error?: string; tags?: string[] };
const PUSH_CHUNK = 1000;

function client(config: MailgunProviderConfig) {
  const url = (config.url ?? MAILGUN_REGIONS[config.region ?? 'us']).replace(/\/+$/, '');
  return new Mailgun(FormData).client({ username: 'api', key: config.apiKey, url, timeout: config.timeoutMs ?? 30_000 });
}

/** The tags a Mailgun unsubscribe is limited to; none when it covers all mail (`*`). */
function tagsOf(item: Record<string, unknown>): string[] {
  const tags = Array.isArray(item.tags) ? item.tags.map(String).filter((t) => t !== '') : [];
  return tags.includes('*') ? [] : tags;
}

function describe(provider: string, list: MailgunList, item: Record<string, unknown>): string {
  if (list === 'bounces') return `hard bounce (${provider}): ${[item.code, item.error].filter((v) => v !== undefined && v !== '').join(' ')}`.trim();
  if (list === 'complaints') return `complaint (${provider})`;
  const tags = Array.isArray(item.tags) ? item.tags.join(',') : '*';
  return `unsubscribed (${provider}${tags && tags !== '*' ? `, tags ${tags}` : ''})`;
}

function safeError(err: unknown, apiKey: string): Error {
  const e = err as { status?: number; message?: string; details?: string };
  const msg = `${e.status ? `HTTP ${e.status}: ` : ''}${e.details || e.message || String(err)}`.split(apiKey).join('***');
  return new Error(msg);
}

/** Pulls every entry of the provider's three lists into mailover's suppression list. */
export async function pullMailgunSuppressions(store: Store, config: MailgunProviderConfig, opts: { pageSize?: number } = {}): Promise<PullReport> {
  const pageSize = opts.pageSize ?? PAGE;
  const mg = client(config);
  const report: PullReport = { read: { bounces: 0, unsubscribes: 0, complaints: 0 }, added: 0, addedToLists: 0, pages: 0 };
  // What mailover already has, read once (not one look-up per entry Mailgun returns).
  const suppressed = new Set((await store.listSuppressions()).map((r) => r.email));
  const listed = new Set((await store.listListSuppressions()).map((r) => `${r.list}\n${r.email}`));
  for (const list of MAILGUN_LISTS) {
    let page: string | undefined;
    for (;;) {
      let res;
      try {
        res = await mg.suppressions.list(config.domain, list, { limit: pageSize, ...(page ? { page } : {}) });
      } catch (err) {
        throw safeError(err, config.apiKey);
      }
      report.pages++;
      const items = res.items as unknown as Array<Record<string, unknown>>;
      if (!items.length) break;
      for (const item of items) {
        const address = String(item.address ?? '')
          .trim()
          .toLowerCase();
        if (!address.includes('@')) continue;
        report.read[list]++;
        const tags = list === 'unsubscribes' ? tagsOf(item) : [];
        if (tags.length) {
          for (const tag of tags) {
            if (listed.has(`${tag}\n${address}`)) continue;
            await store.addListSuppression(tag, address, describe(config.name, list, item), `${config.name} ${list}`);
            listed.add(`${tag}\n${address}`);
            report.addedToLists++;
          }
          continue;
        }
        if (!suppressed.has(address)) {
          await store.addSuppression(address, describe(config.name, list, item), `${config.name} ${list}`);
          suppressed.add(address);
          report.added++;
        }
      }
      const next = (res.pages as Record<string, { page?: string }> | undefined)?.next?.page;
      if (!next || next === page || items.length < pageSize) break;
      page = next;
    }
  }
  return report;
}

/** Which of Mailgun's lists a mailover suppression belongs on. */
export function mailgunListFor(row: SuppressionRow): MailgunList {
  const r = row.reason.toLowerCase();
  if (r.startsWith('hard bounce')) return 'bounces';
  if (r.startsWith('complaint')) return 'complaints';
  return 'unsubscribes';
}

/** Pushes mailover's suppression list to the provider's lists (bounces, complaints, unsubscribes), 1,000 per call. */
export async function pushMailgunSuppressions(store: Store, config: MailgunProviderConfig): Promise<PushReport> {
  const mg = client(config);
  const rows = await store.listSuppressions();
  const everywhere = new Set(rows.map((r) => r.email));
  // List-scoped suppressions go to Mailgun as unsubscribes for the tag of that name (one entry per
  // address, all its lists); an address suppressed for all mail is pushed as such instead.
  const tagsByAddress = new Map<string, { tags: string[]; createdAt: Date }>();
  for (const r of await store.listListSuppressions()) {
    if (everywhere.has(r.email)) continue;
    const entry = tagsByAddress.get(r.email) ?? { tags: [], createdAt: r.createdAt };
    entry.tags.push(r.list);
    tagsByAddress.set(r.email, entry);
  }
  const report: PushReport = { pushed: { bounces: 0, unsubscribes: 0, complaints: 0 }, pushedForLists: 0, calls: 0 };
  for (const list of MAILGUN_LISTS) {
    const mine: Entry[] = rows
      .filter((r) => mailgunListFor(r) === list)
      .map((r) => ({
        address: r.email,
        created_at: r.createdAt.toUTCString(),
        ...(list === 'bounces' ? { code: 550, error: r.reason.slice(0, 250) } : {}),
        ...(list === 'unsubscribes' ? { tags: ['*'] } : {}),
      }));
    const scoped = list === 'unsubscribes' ? [...tagsByAddress].map(([address, e]) => ({ address, created_at: e.createdAt.toUTCString(), tags: e.tags })) : [];
    mine.push(...scoped);
    report.pushedForLists += scoped.length;
    for (let i = 0; i < mine.length; i += PUSH_CHUNK) {
      const chunk = mine.slice(i, i + PUSH_CHUNK);
      try {
        await mg.suppressions.create(config.domain, list, chunk);
      } catch (err) {
        throw safeError(err, config.apiKey);
      }
      report.calls++;
      report.pushed[list] += chunk.filter((e) => !e.tags || e.tags.includes('*')).length;
    }
  }
  return report;
}
