/**
 * Suppression sync with SendGrid's own lists, through @sendgrid/client:
 *
 * - pull: bounces (/v3/suppression/bounces), spam reports (/v3/suppression/spam_reports) and
 *   global unsubscribes (/v3/suppression/unsubscribes, the list /v3/asm/suppressions/global
 *   adds to) go on mailover's suppression list; blocks (/v3/suppression/blocks) are read and
 *   counted but suppress nobody: SendGrid records a block when the receiving server refused
 *   the message for a reason about the sender or content (an IP on a blocklist), not the address,
 *   and keeps sending to it itself. Each list is read page by page (limit/offset) to the end.
 * - push: mailover's suppression list becomes global unsubscribes (POST
 *   /v3/asm/suppressions/global, 1,000 a call): SendGrid's API cannot add bounces or spam reports,
 *   and a global unsubscribe stops all mail to the address, as mailover's list does. List-scoped
 *   suppressions are not pushed (mailover's lists are not SendGrid's unsubscribe groups).
 */
import type { Store } from '../../store/types';
import { sendGridBaseUrl, sendGridRequest } from './api';
import { mailSendOutcome, noAnswerError } from './errors';
import type { SendGridProviderConfig } from './provider';

export type SendGridList = 'bounces' | 'blocks' | 'spam_reports' | 'unsubscribes';
export const SENDGRID_LISTS: readonly SendGridList[] = ['bounces', 'blocks', 'spam_reports', 'unsubscribes'];

export interface PullReport {
  read: Record<SendGridList, number>;
  /** Addresses newly suppressed in mailover (already suppressed ones are left as they were). */
  added: number;
  pages: number;
}

export interface PushReport {
  pushed: number;
  /** List-scoped suppressions left out (SendGrid's global list is for all mail). */
  skippedListScoped: number;
  calls: number;
}

const PAGE = 500;
const PUSH_CHUNK = 1000;

async function call(config: SendGridProviderConfig, req: Parameters<typeof sendGridRequest>[1]): Promise<unknown> {
  const timeoutMs = config.timeoutMs ?? 30_000;
  let answer;
  try {
    answer = await sendGridRequest(config, req, { timeoutMs });
  } catch (err) {
    throw new Error(noAnswerError(err, { provider: config.name, baseUrl: sendGridBaseUrl(config), inDoubt: [], timeoutMs }).message, { cause: err });
  }
  if (answer.status >= 200 && answer.status < 300) return answer.body;
  const outcome = mailSendOutcome(answer, { provider: config.name, inDoubt: [], secret: config.apiKey });
  throw new Error(outcome.kind === 'error' ? `${req.method} ${req.url}: ${outcome.error.message}` : `${req.method} ${req.url}: HTTP ${answer.status}`);
}

function describe(provider: string, list: SendGridList, item: Record<string, unknown>): string {
  if (list === 'bounces') return `hard bounce (${provider}): ${[item.status, item.reason].filter((v) => typeof v === 'string' && v !== '').join(' ')}`.trim();
  if (list === 'spam_reports') return `complaint (${provider})`;
  return `unsubscribed (${provider}, global)`;
}

/** Pulls SendGrid's bounces, spam reports and global unsubscribes into mailover's suppression list (blocks read, not suppressed). */
export async function pullSendGridSuppressions(store: Store, config: SendGridProviderConfig, opts: { pageSize?: number } = {}): Promise<PullReport> {
  const pageSize = opts.pageSize ?? PAGE;
  const report: PullReport = { read: { bounces: 0, blocks: 0, spam_reports: 0, unsubscribes: 0 }, added: 0, pages: 0 };
  const suppressed = new Set((await store.listSuppressions()).map((r) => r.email));
  for (const list of SENDGRID_LISTS) {
    for (let offset = 0; ; offset += pageSize) {
      const body = await call(config, { method: 'GET', url: `/v3/suppression/${list}`, qs: { limit: pageSize, offset } });
      report.pages++;
      const items = Array.isArray(body) ? (body as unknown[]).filter((x): x is Record<string, unknown> => typeof x === 'object' && x !== null) : [];
      for (const item of items) {
        const address = String(item.email ?? '')
          .trim()
          .toLowerCase();
        if (!address.includes('@')) continue;
        report.read[list]++;
        if (list === 'blocks' || suppressed.has(address)) continue;
        await store.addSuppression(address, describe(config.name, list, item), `${config.name} ${list}`);
        suppressed.add(address);
        report.added++;
      }
      if (items.length < pageSize) break;
    }
  }
  return report;
}

/** Pushes mailover's suppression list to SendGrid's global unsubscribes, 1,000 addresses a call. */
export async function pushSendGridSuppressions(store: Store, config: SendGridProviderConfig): Promise<PushReport> {
  const rows = await store.listSuppressions();
  const everywhere = new Set(rows.map((r) => r.email));
  const scoped = new Set((await store.listListSuppressions()).map((r) => r.email).filter((e) => !everywhere.has(e)));
  const report: PushReport = { pushed: 0, skippedListScoped: scoped.size, calls: 0 };
  const emails = [...everywhere];
  for (let i = 0; i < emails.length; i += PUSH_CHUNK) {
    const chunk = emails.slice(i, i + PUSH_CHUNK);
    await call(config, { method: 'POST', url: '/v3/asm/suppressions/global', body: { recipient_emails: chunk } });
    report.calls++;
    report.pushed += chunk.length;
  }
  return report;
}
