/**
 * Amazon SES's account-level suppression list, synced with mailover's: pull reads every entry
 * (ListSuppressedDestinations, following NextToken to the end) into mailover's list; push puts
 * mailover's suppressions on it (PutSuppressedDestination, one address per call, as the API
 * takes them). SES knows two reasons, BOUNCE and COMPLAINT: mailover's hard bounces go as
 * BOUNCE, everything else (complaints, unsubscribes, manual entries) as COMPLAINT, the reason
 * that keeps SES from sending there just the same. List-scoped unsubscribes stay in mailover:
 * SES's list is for all mail of the account.
 */
import type { SuppressionListReason } from '@aws-sdk/client-sesv2';
import type { Store, SuppressionRow } from '../../store/types';
import { sesClient } from './client';
import { classifySesError } from './errors';
import type { SesProviderConfig } from './provider';

export interface SesPullReport {
  read: { bounces: number; complaints: number };
  /** Addresses newly suppressed in mailover (already suppressed ones are left as they were). */
  added: number;
  pages: number;
}

export interface SesPushReport {
  pushed: { bounces: number; complaints: number };
  calls: number;
}

function failed(err: unknown, config: SesProviderConfig, what: string): Error {
  const verdict = classifySesError(err, config.name, false);
  return new Error(`${what}: ${verdict.kind === 'error' ? verdict.error.message : verdict.reason}`);
}

/** Which SES reason a mailover suppression is pushed with. */
export function sesReasonFor(row: SuppressionRow): SuppressionListReason {
  return row.reason.toLowerCase().startsWith('hard bounce') ? 'BOUNCE' : 'COMPLAINT';
}

/** Reads the whole account-level suppression list into mailover's. */
export async function pullSesSuppressions(store: Store, config: SesProviderConfig, opts: { pageSize?: number } = {}): Promise<SesPullReport> {
  const { client: ses, sdk } = await sesClient(config, 3);
  const report: SesPullReport = { read: { bounces: 0, complaints: 0 }, added: 0, pages: 0 };
  try {
    const suppressed = new Set((await store.listSuppressions()).map((r) => r.email));
    let token: string | undefined;
    do {
      let page;
      try {
        page = await ses.send(new sdk.ListSuppressedDestinationsCommand({ PageSize: opts.pageSize ?? 1000, ...(token ? { NextToken: token } : {}) }));
      } catch (err) {
        throw failed(err, config, `reading the suppression list of ${config.name}`);
      }
      report.pages++;
      for (const item of page.SuppressedDestinationSummaries ?? []) {
        const address = (item.EmailAddress ?? '').trim().toLowerCase();
        if (!address.includes('@')) continue;
        const bounce = item.Reason === 'BOUNCE';
        report.read[bounce ? 'bounces' : 'complaints']++;
        if (suppressed.has(address)) continue;
        const reason = bounce
          ? `hard bounce (${config.name}): on the SES suppression list (BOUNCE)`
          : `complaint (${config.name}): on the SES suppression list (COMPLAINT)`;
        await store.addSuppression(address, reason, `${config.name} suppression list`);
        suppressed.add(address);
        report.added++;
      }
      token = page.NextToken || undefined;
    } while (token);
  } finally {
    ses.destroy();
  }
  return report;
}

/** Puts every address of mailover's suppression list on the account-level list (PutSuppressedDestination is idempotent). */
export async function pushSesSuppressions(store: Store, config: SesProviderConfig): Promise<SesPushReport> {
  const { client: ses, sdk } = await sesClient(config, 3);
  const report: SesPushReport = { pushed: { bounces: 0, complaints: 0 }, calls: 0 };
  try {
    for (const row of await store.listSuppressions()) {
      const reason = sesReasonFor(row);
      try {
        await ses.send(new sdk.PutSuppressedDestinationCommand({ EmailAddress: row.email, Reason: reason }));
      } catch (err) {
        throw failed(err, config, `adding an address to the suppression list of ${config.name} (${report.calls} added before)`);
      }
      report.calls++;
      report.pushed[reason === 'BOUNCE' ? 'bounces' : 'complaints']++;
    }
  } finally {
    ses.destroy();
  }
  return report;
}
