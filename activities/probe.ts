/**
 * `probeProvider`: send one small message per address straight through one provider adapter
 * (no campaign, no ledger) and say how many it accepted. Used by failover drills (their seed
 * list) and reusable by the provider-health workflow's half-open probe.
 *
 * The result holds counts and reasons only; any address that appears in a provider's error text
 * is replaced by `recipient #n`, so results are safe in workflow history.
 */
import { randomUUID } from 'crypto';
import { heartbeat, log } from '@temporalio/activity';
import type { OutgoingMessage, SendResult } from '../src/providers/provider';
import type { ProbeInput, ProbeResult } from './contracts';
import type { ActivityDeps } from './index';

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** `text` with every address of `to` replaced by `recipient #n`. */
export function withoutAddresses(text: string, to: string[]): string {
  let out = text;
  to.forEach((addr, i) => {
    out = out.replace(new RegExp(escapeRegExp(addr), 'gi'), `recipient #${i + 1}`);
  });
  return out;
}

function domainOf(address: string): string {
  return address.replace(/^.*@/, '').replace(/>.*$/, '') || 'mailover.invalid';
}

export async function probeProvider(deps: ActivityDeps, input: ProbeInput): Promise<ProbeResult> {
  const result: ProbeResult = { provider: input.provider, accepted: 0, rejected: 0, errors: [] };
  const fail = (reason: string, count: number) => {
    result.rejected += count;
    const clean = withoutAddresses(reason, input.to);
    if (!result.errors.includes(clean)) result.errors.push(clean);
  };
  if (input.to.length === 0) return result;
  if (!deps.providers.has(input.provider)) {
    fail(`provider '${input.provider}' is not configured on this worker (configured: ${deps.providers.names().join(', ') || 'none'})`, input.to.length);
    return result;
  }
  const from = input.from ?? deps.drills?.from ?? `mailover-probe@${domainOf(input.to[0])}`;
  const probeId = randomUUID().slice(0, 8);
  const domain = domainOf(from);
  const messages: OutgoingMessage[] = input.to.map((to, i) => ({
    campaignId: `probe-${probeId}`,
    seq: i + 1,
    to,
    from,
    subject: input.subject ?? `mailover delivery probe via ${input.provider}`,
    text: `A delivery probe sent by mailover through ${input.provider} (probe ${probeId}). No action is needed.`,
    messageId: `<mo.probe.${probeId}.${i + 1}@${domain}>`,
    headers: { 'X-Mailover-Probe': input.provider },
  }));
  const reported = new Set<number>();
  const report = async (m: OutgoingMessage, r: SendResult) => {
    reported.add(m.seq);
    if (r.status === 'accepted') result.accepted++;
    else fail(r.reason, 1);
    try {
      heartbeat();
    } catch {
      // called outside an activity (a tool): nothing to heartbeat
    }
  };
  try {
    await deps.providers.get(input.provider).sendBatch(messages, report);
  } catch (err) {
    // Provider-level trouble: whatever it did not report was not accepted.
    const reason = err instanceof Error ? err.message : String(err);
    fail(reason, messages.length - reported.size);
  }
  if (result.rejected > 0) {
    try {
      log.warn('probe found trouble', { provider: input.provider, accepted: result.accepted, rejected: result.rejected, errors: result.errors.join('; ') });
    } catch {
      // not inside an activity
    }
  }
  return result;
}
