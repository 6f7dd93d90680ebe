/**
 * A campaign definition (YAML or JSON file, or an object from code), validated with
 * errors that name the exact field and what was expected. Nothing is stored or sent
 * until it is valid.
 */
import { parseSender } from './address';
import { InvalidCampaignError } from './errors';
import type { CampaignRecord } from './store/types';
import { templateProblems, usesField } from './template';
import { readYamlFile } from './yaml-file';
import { clip, quote } from './quote-value';
import { parseSendWindow, type SendWindowSpec } from '../workflows/send-window';
import { parseProviderList } from '../workflows/weighted-routing';

/** A campaign file: what the store keeps, and how the workflow sends it (`batchesInFlight`, the window). */
export type CampaignDefinition = Omit<CampaignRecord, 'createdAt'> & { batchesInFlight?: number };

/** The most batches one campaign may have in flight at once (each holds a worker's activity slot and provider connections). */
export const MAX_BATCHES_IN_FLIGHT = 32;

export const DEFAULT_BATCH_SIZE = 100;
export const MAX_BATCH_SIZE = 1000;
/** Longest subject template (characters): one RFC 5322 header line. */
export const MAX_SUBJECT = 998;
/** Longest text or html template (characters). */
export const MAX_BODY = 1_000_000;
export const CAMPAIGN_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** Longest postal address (characters). */
export const MAX_POSTAL_ADDRESS = 500;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
/** A value given, quoted and clipped for an error message ("nothing" when absent). */
const show = quote;

/**
 * @param knownProviders provider names the configuration defines; when given, unknown names are errors.
 */
export function parseCampaignDefinition(raw: unknown, knownProviders?: string[], origin = 'campaign'): CampaignDefinition {
  const problems: string[] = [];
  if (!isObject(raw)) throw new InvalidCampaignError(`${origin}: expected a mapping with id, from, template, providers`);

  const id = raw.id;
  if (typeof id !== 'string' || !CAMPAIGN_ID.test(id))
    problems.push(`id: expected 1-128 letters, digits, '.', '_' or '-' (starting with a letter or digit), got ${show(id)}`);

  const name = raw.name;
  if (name !== undefined && typeof name !== 'string') problems.push(`name: expected text, got ${show(name)}`);

  let from = '';
  if (typeof raw.from !== 'string') problems.push(`from: expected the sender address, got ${show(raw.from)}`);
  // eslint-disable-next-line no-control-regex
  else if (/[\u0000-\u001f\u007f\u0085\u2028\u2029]/.test(raw.from))
    problems.push(`from: must be one line without control characters (a line break could inject headers), got ${show(raw.from)}`);
  else if (raw.from.length > 320) problems.push(`from: longer than 320 characters (got ${raw.from.length})`);
  else {
    // One mailbox, "Name <addr>" or "addr", whose display name is not an address.
    const sender = parseSender(raw.from);
    if (!sender.ok) problems.push(`from: invalid sender address ${show(raw.from)} (${sender.reason})`);
    else from = sender.from;
  }

  const t = raw.template;
  if (!isObject(t)) problems.push(`template: expected a mapping with subject, text and optional html, got ${show(t)}`);
  else {
    if (typeof t.subject !== 'string' || t.subject.trim() === '') problems.push(`template.subject: expected non-empty text, got ${show(t.subject)}`);
    if (typeof t.text !== 'string' || t.text.trim() === '') problems.push(`template.text: expected non-empty text, got ${show(t.text)}`);
    if (t.html !== undefined && typeof t.html !== 'string') problems.push(`template.html: expected text, got ${show(t.html)}`);
    if (typeof t.subject === 'string' && t.subject.length > MAX_SUBJECT)
      problems.push(`template.subject: longer than ${MAX_SUBJECT} characters (got ${t.subject.length}); a subject is one header line`);
    for (const part of ['text', 'html'] as const) {
      const v = t[part];
      if (typeof v === 'string' && v.length > MAX_BODY) problems.push(`template.${part}: longer than ${MAX_BODY} characters (got ${v.length})`);
    }
    for (const key of Object.keys(t))
      if (!['subject', 'text', 'html'].includes(key)) problems.push(`template.${key}: unknown field (expected subject, text, html)`);
    if (typeof t.subject === 'string' && typeof t.text === 'string') {
      problems.push(...templateProblems({ subject: t.subject, text: t.text, html: typeof t.html === 'string' ? t.html : undefined }));
    }
  }

  const providers = raw.providers;
  // Names in priority order, or every entry { name, weight } (weighted routing).
  const parsedProviders = parseProviderList(providers, { known: knownProviders });
  if (!Array.isArray(providers) || providers.length === 0)
    problems.push(`providers: expected a non-empty list of provider names in priority order (or of { name, weight }), got ${show(providers)}`);
  else if (providers.some((p) => typeof p === 'object' && p !== null)) problems.push(...parsedProviders.problems);
  else {
    const seen = new Set<string>();
    providers.forEach((p, i) => {
      if (typeof p !== 'string' || p === '') problems.push(`providers[${i}]: expected a provider name, got ${show(p)}`);
      else if (knownProviders && !knownProviders.includes(p))
        problems.push(`providers[${i}]: unknown provider '${clip(p)}' (configured: ${knownProviders.join(', ') || 'none'})`);
      else if (seen.has(p)) problems.push(`providers[${i}]: '${clip(p)}' is listed twice`);
      if (typeof p === 'string') seen.add(p);
    });
  }

  const transactional = raw.transactional ?? false;
  if (typeof transactional !== 'boolean') problems.push(`transactional: expected true or false, got ${show(raw.transactional)}`);
  const postal = raw.postalAddress;
  if (postal !== undefined && (typeof postal !== 'string' || postal.trim() === '' || postal.length > MAX_POSTAL_ADDRESS)) {
    problems.push(`postalAddress: expected the sender's postal address (1-${MAX_POSTAL_ADDRESS} characters), got ${show(postal)}`);
  }
  const list = raw.list;
  if (list !== undefined && (typeof list !== 'string' || !CAMPAIGN_ID.test(list)))
    problems.push(`list: expected a list name (letters, digits, '.', '_', '-'), got ${show(list)}`);
  if (transactional === false && isObject(t)) problems.push(...marketingProblems(t, typeof postal === 'string' ? postal : undefined));

  const batchSize = raw.batchSize ?? DEFAULT_BATCH_SIZE;
  if (typeof batchSize !== 'number' || !Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH_SIZE) {
    problems.push(`batchSize: expected a whole number from 1 to ${MAX_BATCH_SIZE}, got ${show(raw.batchSize)}`);
  }

  const window = raw.batchesInFlight;
  if (window !== undefined && (typeof window !== 'number' || !Number.isInteger(window) || window < 1 || window > MAX_BATCHES_IN_FLIGHT)) {
    problems.push(`batchesInFlight: expected a whole number from 1 to ${MAX_BATCHES_IN_FLIGHT} (batches in flight at once), got ${show(window)}`);
  }

  // When it may send: checked here (field by field), normalized for the store and the workflow.
  let sendWindow: SendWindowSpec | undefined;
  if (raw.window !== undefined) {
    const w = parseSendWindow(raw.window);
    if (w.window) sendWindow = w.window.spec;
    else problems.push(...w.problems);
  }

  for (const key of Object.keys(raw)) {
    if (!FIELDS.includes(key)) problems.push(`${key}: unknown field (expected ${FIELDS.join(', ')})`);
  }

  if (problems.length) throw new InvalidCampaignError(`${origin} is invalid:\n  - ${problems.join('\n  - ')}`, problems);
  const tpl = t as Record<string, string>;
  return {
    id: id as string,
    ...(typeof name === 'string' ? { name } : {}),
    from,
    template: { subject: tpl.subject, text: tpl.text, ...(tpl.html !== undefined ? { html: tpl.html } : {}) },
    providers: parsedProviders.order,
    ...(parsedProviders.weights ? { weights: parsedProviders.weights } : {}),
    batchSize: batchSize as number,
    ...(transactional === true ? { transactional: true } : {}),
    ...(typeof postal === 'string' ? { postalAddress: postal.trim() } : {}),
    ...(typeof list === 'string' ? { list } : {}),
    ...(typeof window === 'number' ? { batchesInFlight: window } : {}),
    ...(sendWindow ? { window: sendWindow } : {}),
  };
}

const FIELDS = ['id', 'name', 'from', 'template', 'providers', 'batchSize', 'batchesInFlight', 'transactional', 'postalAddress', 'list', 'window'];

/**
 * What a marketing campaign (not `transactional: true`) must carry before anything is sent:
 * an unsubscribe link (`{{unsubscribe_url}}`) and the sender's postal address (`postalAddress`,
 * shown with `{{postal_address}}` or written out) in its text, and in its html when it has one.
 */
export function marketingProblems(template: Record<string, unknown>, postalAddress: string | undefined): string[] {
  const problems: string[] = [];
  const lift = '(or set transactional: true for non-marketing mail)';
  if (postalAddress === undefined) problems.push(`postalAddress: a marketing campaign must name the sender's postal address ${lift}`);
  for (const part of ['text', 'html'] as const) {
    const source = template[part];
    if (typeof source !== 'string') continue;
    if (!usesField(source, 'unsubscribe_url'))
      problems.push(`template.${part}: a marketing campaign must carry an unsubscribe link: put {{unsubscribe_url}} in it ${lift}`);
    const shown = usesField(source, 'postal_address') || (postalAddress !== undefined && source.includes(postalAddress.trim()));
    if (!shown) problems.push(`template.${part}: a marketing campaign must show the sender's postal address: put {{postal_address}} in it ${lift}`);
  }
  return problems;
}

/** The same checks on a definition from code (launchCampaign): its sender, and what a marketing campaign carries; an error naming every problem. */
export function assertSendable(def: CampaignDefinition): void {
  const problems: string[] = [];
  const sender = typeof def.from === 'string' ? parseSender(def.from) : undefined;
  if (!sender?.ok) problems.push(`from: invalid sender address ${show(def.from)}${sender ? ` (${sender.reason})` : ''}`);
  if (!def.transactional) problems.push(...marketingProblems(def.template as unknown as Record<string, unknown>, def.postalAddress));
  if (def.window !== undefined) problems.push(...(parseSendWindow(def.window).problems ?? []));
  if (problems.length) throw new InvalidCampaignError(`campaign '${def.id}' is invalid:\n  - ${problems.join('\n  - ')}`, problems);
}

export function loadCampaignDefinition(path: string, knownProviders?: string[]): CampaignDefinition {
  const doc = readYamlFile(path, 'campaign file', (m) => new InvalidCampaignError(m));
  return parseCampaignDefinition(doc, knownProviders, path);
}
