/**
 * Delivery status notifications (RFC 3464): a `multipart/report; report-type=delivery-status`
 * message whose `message/delivery-status` part holds one block of per-message fields and one
 * block per recipient (Final-Recipient, Action, Status, Diagnostic-Code). Parsed with mailparser.
 */
import { simpleParser, type ParsedMail } from 'mailparser';
import type { DeliveryEventType } from '../store/types';

export interface DsnRecipient {
  finalRecipient?: string;
  /** failed, delayed, delivered, relayed, expanded */
  action: string;
  /** Enhanced status code, e.g. 5.1.1 */
  status?: string;
  diagnosticCode?: string;
}

export interface ParsedDsn {
  /** True when the message is a delivery status notification (has a delivery-status part). */
  isDsn: boolean;
  messageId?: string;
  subject: string;
  reportingMta?: string;
  recipients: DsnRecipient[];
}

/** `Name: value` fields with folded continuation lines, in blocks separated by blank lines. */
function fieldBlocks(text: string): Array<Map<string, string>> {
  const blocks: Array<Map<string, string>> = [];
  let current = new Map<string, string>();
  let last: string | undefined;
  for (const line of text.replace(/\r\n?/g, '\n').split('\n')) {
    if (line.trim() === '') {
      if (current.size) blocks.push(current);
      current = new Map();
      last = undefined;
    } else if (/^[ \t]/.test(line) && last) {
      current.set(last, `${current.get(last)} ${line.trim()}`);
    } else {
      const m = /^([A-Za-z0-9-]+)\s*:\s*(.*)$/.exec(line);
      if (!m) continue;
      last = m[1].toLowerCase();
      current.set(last, m[2].trim());
    }
  }
  if (current.size) blocks.push(current);
  return blocks;
}

/** `rfc822; user@example.com` -> `user@example.com` */
function addressField(v: string | undefined): string | undefined {
  if (!v) return undefined;
  const i = v.indexOf(';');
  return (i >= 0 ? v.slice(i + 1) : v).trim().replace(/^<|>$/g, '') || undefined;
}

export function parseDeliveryStatus(text: string): { reportingMta?: string; recipients: DsnRecipient[] } {
  const blocks = fieldBlocks(text);
  const perMessage = blocks.find((b) => !b.has('final-recipient') && !b.has('action'));
  const recipients: DsnRecipient[] = blocks
    .filter((b) => b.has('action'))
    .map((b) => ({
      action: (b.get('action') ?? '').toLowerCase().split(/\s/)[0],
      ...(addressField(b.get('final-recipient')) ? { finalRecipient: addressField(b.get('final-recipient')) } : {}),
      ...(b.get('status') ? { status: b.get('status')!.split(/\s/)[0] } : {}),
      ...(b.get('diagnostic-code') ? { diagnosticCode: b.get('diagnostic-code') } : {}),
    }));
  const mta = perMessage?.get('reporting-mta');
  return { ...(mta ? { reportingMta: addressField(mta) ?? mta } : {}), recipients };
}

export async function parseDsn(raw: Buffer): Promise<ParsedDsn> {
  const mail: ParsedMail = await simpleParser(raw, { keepDeliveryStatus: true, skipHtmlToText: true, skipTextLinks: true, skipImageLinks: true });
  const part = mail.attachments.find((a) => a.contentType === 'message/delivery-status' || a.contentType === 'message/global-delivery-status');
  const base = { subject: mail.subject ?? '', ...(mail.messageId ? { messageId: mail.messageId } : {}) };
  if (!part) return { isDsn: false, recipients: [], ...base };
  return { isDsn: true, ...base, ...parseDeliveryStatus(part.content.toString('utf8')) };
}

/** What a DSN recipient block means: failed with 5.x.x is permanent; delayed or 4.x.x temporary; delivered/relayed/expanded delivered. */
export function dsnEventType(r: DsnRecipient): DeliveryEventType | null {
  if (r.action === 'failed') return r.status?.startsWith('4.') ? 'failed-temporary' : 'failed-permanent';
  if (r.action === 'delayed') return 'failed-temporary';
  if (r.action === 'delivered' || r.action === 'relayed' || r.action === 'expanded') return 'delivered';
  return null;
}

export function dsnReason(r: DsnRecipient): string {
  return [`action ${r.action}`, r.status ? `status ${r.status}` : '', r.diagnosticCode ?? ''].filter(Boolean).join('; ').slice(0, 2000);
}
