/**
 * `mailover campaign report`: a campaign's outcome as a person likes to read it: totals, a table
 * per provider, bounce and complaint rates, the provider switches, and a chart of sends per minute
 * per provider. Figures come from the store (ledger and events); the switches from the campaign's
 * workflow when Temporal has it. The HTML page is self-contained (inline CSS, plain SVG, no script).
 */
import { eventLabel, shortTime } from './ledger-views';
import { table } from './progress';
import type { DeliveryEventType, RecipientState, SendsPerMinute, Store } from './store/types';
import type { ProviderSwitch } from '../workflows/campaign-api';

export interface ProviderFigures {
  provider: string;
  accepted: number;
  rejected: number;
  deferred: number;
  held: number;
  /** Rows whose ESP reported each event type (at least once). */
  events: Record<DeliveryEventType, number>;
}

export interface CampaignReport {
  id: string;
  name?: string;
  retryOf?: string;
  retries: string[];
  providers: string[];
  generatedAt: Date;
  total: number;
  states: Record<RecipientState, number>;
  events: Record<DeliveryEventType, number>;
  perProvider: ProviderFigures[];
  rates: {
    /** Rejected at send / (accepted + rejected). */
    rejection: number | null;
    /** Accepted rows their ESP later reported bounced / accepted. */
    bounce: number | null;
    /** Accepted rows their ESP reported as a complaint / accepted. */
    complaint: number | null;
  };
  minutes: SendsPerMinute[];
  /** The workflow's provider switches; null when Temporal could not say (see switchesNote). */
  switches: ProviderSwitch[] | null;
  switchesNote?: string;
}

const STATES: RecipientState[] = ['pending', 'sending', 'accepted', 'rejected', 'deferred', 'held', 'suppressed'];
const EVENT_TYPES: DeliveryEventType[] = ['delivered', 'failed-permanent', 'failed-temporary', 'complained', 'unsubscribed'];

const zeroEvents = (): Record<DeliveryEventType, number> => Object.fromEntries(EVENT_TYPES.map((t) => [t, 0])) as Record<DeliveryEventType, number>;

export async function buildCampaignReport(
  store: Pick<Store, 'getCampaign' | 'retriesOf' | 'stateCounts' | 'eventCounts' | 'sendsPerMinute'>,
  campaignId: string,
  switches: { switches: ProviderSwitch[] } | { unavailable: string },
): Promise<CampaignReport> {
  const campaign = await store.getCampaign(campaignId);
  if (!campaign) throw new Error(`campaign '${campaignId}' not found in the store`);
  const states = Object.fromEntries(STATES.map((s) => [s, 0])) as Record<RecipientState, number>;
  const byProvider = new Map<string, ProviderFigures>();
  const figures = (provider: string) => {
    let f = byProvider.get(provider);
    if (!f) byProvider.set(provider, (f = { provider, accepted: 0, rejected: 0, deferred: 0, held: 0, events: zeroEvents() }));
    return f;
  };
  for (const p of campaign.providers) figures(p);
  let total = 0;
  for (const c of await store.stateCounts(campaignId)) {
    states[c.state] += c.rows;
    total += c.rows;
    if (c.provider && (c.state === 'accepted' || c.state === 'rejected' || c.state === 'deferred' || c.state === 'held'))
      figures(c.provider)[c.state] += c.rows;
  }
  const events = zeroEvents();
  for (const e of await store.eventCounts(campaignId)) {
    events[e.type] += e.rows;
    figures(e.provider).events[e.type] += e.rows;
  }
  const ratio = (n: number, d: number) => (d > 0 ? n / d : null);
  const report: CampaignReport = {
    id: campaign.id,
    retries: await store.retriesOf(campaignId),
    providers: campaign.providers,
    generatedAt: new Date(),
    total,
    states,
    events,
    perProvider: [...byProvider.values()],
    rates: {
      rejection: ratio(states.rejected, states.accepted + states.rejected),
      bounce: ratio(events['failed-permanent'], states.accepted),
      complaint: ratio(events.complained, states.accepted),
    },
    minutes: await store.sendsPerMinute(campaignId),
    switches: 'switches' in switches ? switches.switches : null,
  };
  if (campaign.name) report.name = campaign.name;
  if (campaign.retryOf) report.retryOf = campaign.retryOf;
  if ('unavailable' in switches) report.switchesNote = switches.unavailable;
  return report;
}

export function percent(r: number | null): string {
  return r === null ? 'n/a' : `${(r * 100).toFixed(2)}%`;
}

const EVENT_COLUMNS: DeliveryEventType[] = ['delivered', 'failed-permanent', 'complained', 'unsubscribed'];

function providerRows(r: CampaignReport): string[][] {
  return [
    ['provider', 'accepted', 'rejected', 'deferred', 'held', ...EVENT_COLUMNS.map(eventLabel), 'peak / min'],
    ...r.perProvider.map((p) => [
      p.provider,
      String(p.accepted),
      String(p.rejected),
      String(p.deferred),
      String(p.held),
      ...EVENT_COLUMNS.map((t) => String(p.events[t])),
      String(Math.max(0, ...r.minutes.filter((m) => m.provider === p.provider).map((m) => m.sent))),
    ]),
  ];
}

function totalRows(r: CampaignReport): string[][] {
  return [
    ['recipients', String(r.total)],
    ...STATES.filter((s) => r.states[s] > 0 || s === 'accepted' || s === 'rejected' || s === 'suppressed').map((s) => [s, String(r.states[s])]),
  ];
}

function rateRows(r: CampaignReport): string[][] {
  return [
    ['rejected at send', percent(r.rates.rejection), `${r.states.rejected} of ${r.states.accepted + r.states.rejected} attempted`],
    ['bounced after acceptance', percent(r.rates.bounce), `${r.events['failed-permanent']} of ${r.states.accepted} accepted`],
    ['complaints', percent(r.rates.complaint), `${r.events.complained} of ${r.states.accepted} accepted`],
  ];
}

function switchRows(switches: ProviderSwitch[]): string[][] {
  return switches.map((s) => [shortTime(new Date(s.at)), String(s.atSeq), s.from, s.to ?? '(none: holding)', s.reason]);
}

/** The report as text for a terminal. */
export function reportText(r: CampaignReport): string {
  const out: string[] = [];
  out.push(`campaign ${r.id}${r.name ? ` (${r.name})` : ''}: ${r.total} recipients via ${r.providers.join(' → ')}`);
  if (r.retryOf) out.push(`retry of ${r.retryOf}`);
  if (r.retries.length) out.push(`retried as ${r.retries.join(', ')}`);
  out.push(table([['outcome', 'recipients'], ...totalRows(r)]));
  out.push(table(providerRows(r)));
  out.push(table([['rate', 'value', 'of'], ...rateRows(r)]));
  if (r.switches === null) out.push(`provider switches: unknown (${r.switchesNote ?? 'Temporal did not say'})`);
  else if (!r.switches.length) out.push('no provider switches');
  else out.push(table([['at (UTC)', 'recipient #', 'from', 'to', 'reason'], ...switchRows(r.switches)]));
  const minutes = new Set(r.minutes.map((m) => m.minute));
  out.push(
    minutes.size
      ? `sends over ${minutes.size} minute(s), ${[...minutes][0].replace('T', ' ')} to ${[...minutes].pop()!.replace('T', ' ')} UTC (chart: --html FILE)`
      : 'nothing sent yet',
  );
  return out.join('\n');
}

// ------------------------------------------------------------------ HTML

const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function htmlTable(head: string[], rows: string[][], cls: string): string {
  const cell = (v: string, tag: 'td' | 'th') => `<${tag}${/^[\d.]+%?$/.test(v) ? ' class="n"' : ''}>${escapeHtml(v)}</${tag}>`;
  return `<table class="${cls}"><thead><tr>${head.map((h) => cell(h, 'th')).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((v) => cell(v, 'td')).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

/** Every minute from the first send to the last (minutes without a send count 0). */
function minuteAxis(minutes: SendsPerMinute[]): string[] {
  if (!minutes.length) return [];
  const sorted = minutes.map((m) => m.minute).sort();
  const first = Date.parse(`${sorted[0]}:00Z`);
  const last = Date.parse(`${sorted[sorted.length - 1]}:00Z`);
  const axis: string[] = [];
  for (let t = first; t <= last; t += 60_000) axis.push(new Date(t).toISOString().slice(0, 16));
  return axis;
}

/** Sends per minute per provider as a plain SVG line chart, with the provider switches marked. */
export function sendsChartSvg(r: CampaignReport): string {
  const W = 900;
  const H = 320;
  const m = { left: 56, right: 20, top: 20, bottom: 48 };
  const axis = minuteAxis(r.minutes);
  const providers = [...new Set([...r.perProvider.filter((p) => p.accepted > 0).map((p) => p.provider), ...r.minutes.map((x) => x.provider)])];
  const max = Math.max(1, ...r.minutes.map((x) => x.sent));
  const x = (i: number) => m.left + (axis.length <= 1 ? (W - m.left - m.right) / 2 : (i * (W - m.left - m.right)) / (axis.length - 1));
  const y = (v: number) => H - m.bottom - (v * (H - m.top - m.bottom)) / max;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" data-chart="sends-per-minute" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="sends per minute per provider">`,
  );
  parts.push(`<line x1="${m.left}" y1="${H - m.bottom}" x2="${W - m.right}" y2="${H - m.bottom}" stroke="#333"/>`);
  parts.push(`<line x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${H - m.bottom}" stroke="#333"/>`);
  for (const v of [0, Math.round(max / 2), max]) {
    parts.push(`<text class="y-tick" x="${m.left - 6}" y="${y(v) + 4}" text-anchor="end">${v}</text>`);
    parts.push(`<line x1="${m.left}" y1="${y(v)}" x2="${W - m.right}" y2="${y(v)}" stroke="#ddd"/>`);
  }
  const ticks = axis.length <= 1 ? [0] : [0, Math.floor((axis.length - 1) / 2), axis.length - 1];
  for (const i of [...new Set(ticks)].filter((i) => axis[i])) {
    parts.push(`<text class="x-tick" x="${x(i)}" y="${H - m.bottom + 18}" text-anchor="middle">${escapeHtml(axis[i].slice(11))}</text>`);
  }
  parts.push(`<text x="${(W + m.left) / 2}" y="${H - 8}" text-anchor="middle">minute (UTC)</text>`);
  parts.push(`<text x="14" y="${(H - m.bottom) / 2}" text-anchor="middle" transform="rotate(-90 14 ${(H - m.bottom) / 2})">sends / minute</text>`);
  providers.forEach((p, k) => {
    const colour = COLOURS[k % COLOURS.length];
    const perMinute = new Map(r.minutes.filter((v) => v.provider === p).map((v) => [v.minute, v.sent]));
    const points = axis.map((minute, i) => ({ minute, i, sent: perMinute.get(minute) ?? 0 }));
    parts.push(
      `<polyline data-provider="${escapeHtml(p)}" fill="none" stroke="${colour}" stroke-width="2" points="${points.map((pt) => `${x(pt.i).toFixed(1)},${y(pt.sent).toFixed(1)}`).join(' ')}"/>`,
    );
    for (const pt of points.filter((v) => v.sent > 0)) {
      parts.push(
        `<circle data-provider="${escapeHtml(p)}" data-minute="${pt.minute}" data-sent="${pt.sent}" cx="${x(pt.i).toFixed(1)}" cy="${y(pt.sent).toFixed(1)}" r="3" fill="${colour}"><title>${escapeHtml(`${pt.minute.replace('T', ' ')} UTC, ${p}: ${pt.sent} sent`)}</title></circle>`,
      );
    }
    parts.push(`<rect x="${m.left + 10 + k * 170}" y="${m.top - 14}" width="12" height="12" fill="${colour}"/>`);
    parts.push(`<text class="legend" x="${m.left + 26 + k * 170}" y="${m.top - 4}">${escapeHtml(p)}</text>`);
  });
  for (const s of r.switches ?? []) {
    const minute = new Date(s.at).toISOString().slice(0, 16);
    const i = axis.indexOf(minute);
    if (i < 0) continue;
    parts.push(`<line data-switch="${escapeHtml(s.from)}" x1="${x(i)}" y1="${m.top}" x2="${x(i)}" y2="${H - m.bottom}" stroke="#555" stroke-dasharray="4 3"/>`);
    parts.push(`<text class="switch" x="${x(i) + 4}" y="${m.top + 12}">${escapeHtml(`${s.from} → ${s.to ?? 'none'}`)}</text>`);
  }
  parts.push('</svg>');
  return parts.join('\n');
}

/** The report as one self-contained HTML page (opens in any browser, no script). */
export function reportHtml(r: CampaignReport): string {
  const title = `Campaign ${r.id}${r.name ? ` (${r.name})` : ''}`;
  const meta = [
    `${r.total} recipients via ${r.providers.join(' → ')}`,
    ...(r.retryOf ? [`retry of ${r.retryOf}`] : []),
    ...(r.retries.length ? [`retried as ${r.retries.join(', ')}`] : []),
  ];
  const switches =
    r.switches === null
      ? `<p class="switches-unknown">Provider switches: unknown (${escapeHtml(r.switchesNote ?? 'Temporal did not say')})</p>`
      : r.switches.length
        ? htmlTable(['at (UTC)', 'recipient #', 'from', 'to', 'reason'], switchRows(r.switches), 'switches')
        : '<p class="switches-none">No provider switches.</p>';
  const [provHead, ...provRows] = providerRows(r);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:960px}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}th,td{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}td.n,th.n{text-align:right}
th{background:#f3f3f3}.meta{color:#555}svg text{font-size:12px;fill:#333}
</style></head><body>
<h1>${escapeHtml(title)}</h1>
<p class="meta">${meta.map(escapeHtml).join(' · ')} · report of ${escapeHtml(shortTime(r.generatedAt))} UTC</p>
<h2>Outcome</h2>
${htmlTable(['outcome', 'recipients'], totalRows(r), 'totals')}
<h2>By provider</h2>
${htmlTable(provHead, provRows, 'providers')}
<h2>Rates</h2>
${htmlTable(['rate', 'value', 'of'], rateRows(r), 'rates')}
<h2>Provider switches</h2>
${switches}
<h2>Sends per minute</h2>
${r.minutes.length ? sendsChartSvg(r) : '<p>Nothing sent yet.</p>'}
</body></html>
`;
}
