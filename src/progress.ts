/** Human views of a campaign: a one-line progress bar and a summary table. */
import type { CampaignProgress, CampaignResult } from '../workflows/campaign-api';
import { waitText } from '../workflows/send-schedule';

/** An ISO time for people: `2026-12-02 08:00:00 UTC`. */
export const utcTime = (iso: string) => `${iso.replace('T', ' ').slice(0, 19)} UTC`;

const done = (p: Pick<CampaignProgress, 'accepted' | 'rejected' | 'suppressed' | 'heldForReview'>) => p.accepted + p.rejected + p.suppressed + p.heldForReview;

export function progressBar(p: CampaignProgress, width = 30): string {
  const finished = done(p);
  const ratio = p.total ? Math.min(1, finished / p.total) : 0;
  const filled = Math.round(ratio * width);
  const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
  const via = p.activeProvider ? `via ${p.activeProvider}` : 'no provider';
  const waiting = p.status === 'scheduled' || p.status === 'waiting' ? waitText(p) : undefined;
  const state = p.status === 'running' ? via : (waiting ?? `${p.status}${p.pauseReason ? `: ${p.pauseReason}` : ''}`);
  const switches = p.switches.length ? ` · ${p.switches.length} switch${p.switches.length > 1 ? 'es' : ''}` : '';
  const deferred = p.deferred ? ` · deferred ${p.deferred}` : '';
  const held = p.heldForReview ? ` · held ${p.heldForReview}` : '';
  return `[${bar}] ${String(Math.round(ratio * 100)).padStart(3)}% ${finished}/${p.total} · accepted ${p.accepted} · rejected ${p.rejected} · suppressed ${p.suppressed}${deferred}${held}${switches} · ${state}`;
}

export function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) => '│ ' + r.map((cell, c) => (/^\d+$/.test(cell) ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join(' │ ') + ' │';
  const rule = (l: string, m: string, r: string) => l + widths.map((w) => '─'.repeat(w + 2)).join(m) + r;
  return [rule('┌', '┬', '┐'), line(rows[0]), rule('├', '┼', '┤'), ...rows.slice(1).map(line), rule('└', '┴', '┘')].join('\n');
}

export function summaryTable(r: CampaignResult): string {
  const rows: string[][] = [['', 'recipients']];
  for (const [provider, n] of Object.entries(r.acceptedByProvider)) rows.push([`accepted via ${provider}`, String(n)]);
  rows.push(['accepted (total)', String(r.accepted)], ['rejected', String(r.rejected)], ['suppressed', String(r.suppressed)]);
  if (r.deferred) rows.push(['deferred (the provider said "later")', String(r.deferred)]);
  if (r.heldForReview) rows.push(['held for review (outcome unknown)', String(r.heldForReview)]);
  if (r.inFlightRecovered) rows.push(['found in flight after a crash', String(r.inFlightRecovered)]);
  rows.push(['provider switches', String(r.switches.length)], ['total', String(r.total)]);
  return table(rows);
}

export function switchesTable(r: Pick<CampaignResult, 'switches'>): string {
  if (!r.switches.length) return 'no provider switches';
  return table([['at recipient #', 'from', 'to', 'reason'], ...r.switches.map((s) => [String(s.atSeq), s.from, s.to ?? '(none: holding)', s.reason])]);
}

/** Lines for the first `max` rejected audience rows, by line, and how many more there were. */
export function rejectedRowLines(rejected: Array<{ line: number; value: string; reason: string }>, max = 20): string[] {
  const lines = rejected.slice(0, max).map((r) => `  line ${r.line}: ${r.reason}: ${JSON.stringify(r.value)}`);
  if (rejected.length > max) lines.push(`  ... and ${rejected.length - max} more`);
  return lines;
}
