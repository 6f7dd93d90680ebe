/**
 * The Mailgun ceiling: mailgun.js (Mailgun's own client) posting batch calls of 1,000
 * recipients straight to the bench's Mailgun-compatible API, no Temporal, no ledger. Each
 * recipient is rendered from the same template and travels in recipient-variables, as the
 * engine's Mailgun provider sends them; RAW_MAILGUN_CALLS_IN_FLIGHT calls at a time.
 */
import Mailgun from 'mailgun.js';
import type { AudienceRow } from '../store/types';
import type { CampaignTemplate } from '../store/types';
import { compileTemplate } from '../template';

/** Calls in flight at once: the default window (batches in flight per campaign) with one call per batch of 1,000. */
export const RAW_MAILGUN_CALLS_IN_FLIGHT = 4;
export const RAW_MAILGUN_CALL_SIZE = 1000;

export interface RawMailgunRun {
  rcptPerS: number;
  /** CPU time of this (the sending) process per recipient, ms. */
  cpuMsPerRcpt: number;
}

export async function rawMailgun(
  target: { url: string; apiKey: string; domain: string },
  template: CampaignTemplate,
  from: string,
  rows: AudienceRow[],
): Promise<RawMailgunRun> {
  const mg = new Mailgun(FormData).client({ username: 'api', key: target.apiKey, url: target.url, timeout: 60_000 });
  const t = compileTemplate(template);
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  let next = 0;
  const caller = async () => {
    while (next < rows.length) {
      const call = rows.slice(next, next + RAW_MAILGUN_CALL_SIZE);
      next += call.length;
      const vars: Record<string, Record<string, string>> = {};
      for (const row of call) {
        const body = t.render(row.fields);
        vars[row.email] = { subject: body.subject, text: body.text ?? '', html: body.html ?? '' };
      }
      await mg.messages.create(target.domain, {
        from,
        to: call.map((r) => r.email),
        subject: '%recipient.subject%',
        text: '%recipient.text%',
        html: '%recipient.html%',
        'recipient-variables': JSON.stringify(vars),
      });
    }
  };
  await Promise.all(Array.from({ length: RAW_MAILGUN_CALLS_IN_FLIGHT }, caller));
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  return { rcptPerS: rows.length / seconds, cpuMsPerRcpt: (cpu.user + cpu.system) / 1000 / rows.length };
}
