/**
 * Suppression sync with Postmark's per-stream suppression lists, through `postmark`: pull each
 * stream's list (GET /message-streams/{stream}/suppressions/dump) into mailover's one list, and
 * push mailover's list onto each stream (POST /message-streams/{stream}/suppressions, 50
 * addresses a call, Postmark's limit). Postmark records what it is given as ManualSuppression:
 * it keeps its own reasons (HardBounce, SpamComplaint) for what it saw itself.
 */
import { ServerClient } from 'postmark';
import type { Store } from '../../store/types';
import { POSTMARK_API_HOST, type PostmarkProviderConfig } from './provider';

/** Postmark takes at most this many addresses in one create-suppressions call. */
export const POSTMARK_SUPPRESSION_CHUNK = 50;

export interface PostmarkPullReport {
  /** Entries read, per stream. */
  read: Record<string, number>;
  /** Addresses newly suppressed in mailover (already suppressed ones are left as they were). */
  added: number;
}

export interface PostmarkPushReport {
  /** Addresses pushed, per stream. */
  pushed: Record<string, number>;
  /** Addresses Postmark answered as not suppressed (Status Failed), with its message. */
  failed: number;
  calls: number;
}

/** The streams a provider sends on (broadcast, then transactional; once if they are the same). */
export function postmarkStreams(config: PostmarkProviderConfig): string[] {
  return [...new Set([config.broadcastStream ?? 'broadcast', config.transactionalStream ?? 'outbound'])];
}

function client(config: PostmarkProviderConfig): ServerClient {
  return new ServerClient(config.serverToken, {
    requestHost: config.requestHost ?? POSTMARK_API_HOST,
    useHttps: config.useHttps ?? true,
    timeout: Math.ceil((config.timeoutMs ?? 30_000) / 1000),
  });
}

function safeError(err: unknown, config: PostmarkProviderConfig, what: string): Error {
  const e = err as { statusCode?: number; code?: number; message?: string };
  const status = e.statusCode ? `HTTP ${e.statusCode}${e.code ? ` ErrorCode ${e.code}` : ''}: ` : '';
  return new Error(`${config.name}: ${what}: ${status}${String(e.message ?? err)}`.split(config.serverToken).join('***'));
}

/** mailover's words for a Postmark suppression. */
function describe(provider: string, stream: string, s: { SuppressionReason?: string; Origin?: string }): string {
  const why = s.SuppressionReason === 'HardBounce' ? 'hard bounce' : s.SuppressionReason === 'SpamComplaint' ? 'complaint' : 'unsubscribed';
  return `${why} (${provider}, stream ${stream}${s.Origin ? `, by ${s.Origin}` : ''})`;
}

/** Pulls every stream's suppression list into mailover's suppression list. */
export async function pullPostmarkSuppressions(store: Store, config: PostmarkProviderConfig): Promise<PostmarkPullReport> {
  const pm = client(config);
  const report: PostmarkPullReport = { read: {}, added: 0 };
  const suppressed = new Set((await store.listSuppressions()).map((r) => r.email));
  for (const stream of postmarkStreams(config)) {
    let dump;
    try {
      dump = await pm.getSuppressions(stream);
    } catch (err) {
      throw safeError(err, config, `reading the suppressions of stream ${stream}`);
    }
    report.read[stream] = 0;
    for (const s of dump.Suppressions ?? []) {
      const address = String(s.EmailAddress ?? '')
        .trim()
        .toLowerCase();
      if (!address.includes('@')) continue;
      report.read[stream]++;
      if (suppressed.has(address)) continue;
      await store.addSuppression(address, describe(config.name, stream, s), `${config.name} ${stream}`);
      suppressed.add(address);
      report.added++;
    }
  }
  return report;
}

/** Pushes mailover's suppression list onto every stream the provider sends on. */
export async function pushPostmarkSuppressions(store: Store, config: PostmarkProviderConfig): Promise<PostmarkPushReport> {
  const pm = client(config);
  const addresses = (await store.listSuppressions()).map((r) => r.email);
  const report: PostmarkPushReport = { pushed: {}, failed: 0, calls: 0 };
  for (const stream of postmarkStreams(config)) {
    report.pushed[stream] = 0;
    for (let i = 0; i < addresses.length; i += POSTMARK_SUPPRESSION_CHUNK) {
      const chunk = addresses.slice(i, i + POSTMARK_SUPPRESSION_CHUNK);
      let res;
      try {
        res = await pm.createSuppressions(stream, { Suppressions: chunk.map((EmailAddress) => ({ EmailAddress })) });
      } catch (err) {
        throw safeError(err, config, `adding suppressions to stream ${stream}`);
      }
      report.calls++;
      const failed = (res.Suppressions ?? []).filter((s) => s.Status === 'Failed').length;
      report.failed += failed;
      report.pushed[stream] += chunk.length - failed;
    }
  }
  return report;
}
