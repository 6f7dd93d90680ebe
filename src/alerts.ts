/**
 * Alert delivery: one operational event (src/ops-events.ts) POSTed as JSON to one alert target.
 * slack: a Slack-compatible incoming-webhook body `{ text, blocks }`;
 * webhook: generic `{ event, text, severity, at }`.
 * A target's URL is a secret (it usually is the credential): errors and logs name the target, never the URL.
 */
import type { AlertTarget } from './config';
import { describeOpsEvent, isAlarming, type OpsEvent } from './ops-events';

export type AlertSeverity = 'alarm' | 'info';

export interface WebhookAlertBody {
  event: OpsEvent;
  text: string;
  /** alarm: bad news (isAlarming); info: everything else. */
  severity: AlertSeverity;
  /** ISO 8601: when the event was raised. */
  at: string;
}

export interface SlackAlertBody {
  text: string;
  blocks: unknown[];
}

export function alertSeverity(e: OpsEvent): AlertSeverity {
  return isAlarming(e) ? 'alarm' : 'info';
}

export function alertBody(kind: AlertTarget['kind'], event: OpsEvent, at: Date): WebhookAlertBody | SlackAlertBody {
  const text = describeOpsEvent(event);
  if (kind === 'webhook') return { event, text, severity: alertSeverity(event), at: at.toISOString() };
  const icon = isAlarming(event)
    ? ':rotating_light:'
    : event.kind === 'drill-finished' || event.kind === 'circuit-closed'
      ? ':white_check_mark:'
      : ':information_source:';
  return {
    text: `${icon} mailover: ${text}`,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: `${icon} *mailover* ${escapeMrkdwn(text)}` } },
      { type: 'context', elements: [{ type: 'mrkdwn', text: `${event.kind} · ${at.toISOString()}` }] },
    ],
  };
}

/** Slack mrkdwn control characters in free text (reasons can quote provider replies). */
function escapeMrkdwn(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export class AlertDeliveryError extends Error {
  override readonly name = 'AlertDeliveryError';
}

/** Why a request failed, without the URL (fetch's own messages and causes can contain it). */
function describeFailure(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; code?: string; cause?: { code?: string; name?: string } };
  if (e?.name === 'TimeoutError' || e?.cause?.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`;
  const code = e?.cause?.code ?? e?.code;
  if (typeof code === 'string' && /^[A-Z_]+$/.test(code)) return `network error (${code})`;
  return 'network error';
}

/**
 * POST one event to one target. Resolves on a 2xx answer; otherwise throws an AlertDeliveryError
 * whose message names the target and the reason (HTTP status, timeout, network error code).
 */
export async function deliverAlert(target: AlertTarget, event: OpsEvent, opts: { at: Date; idempotencyKey?: string }): Promise<void> {
  const body = JSON.stringify(alertBody(target.kind, event, opts.at));
  let res: Response;
  try {
    res = await fetch(target.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'user-agent': 'mailover-alerts',
        ...(opts.idempotencyKey ? { 'idempotency-key': opts.idempotencyKey } : {}),
      },
      body,
      signal: AbortSignal.timeout(target.timeoutMs),
    });
  } catch (err) {
    throw new AlertDeliveryError(`alert target ${target.name}: ${describeFailure(err, target.timeoutMs)}`);
  }
  // Drain the answer so the connection can be reused (bounded by the same timeout).
  await res.arrayBuffer().catch(() => undefined);
  if (!res.ok) throw new AlertDeliveryError(`alert target ${target.name}: HTTP ${res.status}`);
}
