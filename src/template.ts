/**
 * `{{field}}` merge templates. Values are inserted verbatim in subject and text, and
 * HTML-escaped in html; a value that starts a link in html (`href="{{link}}"`) must be an
 * http, https, mailto or tel URL (a `javascript:` link is refused, not sent). A template names its fields up front so a campaign can be
 * checked against its audience before anything is sent.
 */
import type { CampaignTemplate } from './store/types';

const FIELD = /\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}/g;

/**
 * Merge fields the engine fills in for every recipient (an audience column of the same name is
 * ignored): the recipient's signed unsubscribe link and the campaign's postal address.
 */
export const ENGINE_FIELDS = ['unsubscribe_url', 'postal_address'] as const;
export type EngineValues = Partial<Record<(typeof ENGINE_FIELDS)[number], string>>;
const isEngineField = (name: string) => (ENGINE_FIELDS as readonly string[]).includes(name);

/** Whether a template part uses a merge field (`{{ name }}`, spaces allowed). */
export function usesField(source: string | undefined, name: string): boolean {
  if (!source) return false;
  for (const m of source.matchAll(FIELD)) if (m[1] === name) return true;
  return false;
}

export interface CompiledTemplate {
  /** Merge fields the audience must provide (used anywhere in the template, engine fields excepted), sorted. */
  fields: string[];
  /** Engine fields the template uses. */
  engineFields: string[];
  /**
   * Merge fields that start a link in the html part (`<a href="{{link}}">`, `src`, `action`, ...):
   * their value decides the URL's scheme, so it must be http, https, mailto or tel.
   */
  urlFields: string[];
  /** What is wrong with one recipient's values, each a phrase after the address ("has no value for merge field 'city'"); empty when it can be rendered. */
  problemsWith(values: Record<string, string>): string[];
  render(values: Record<string, string>, engine?: EngineValues): { subject: string; text: string; html?: string };
}

/** Attributes whose value a mail client follows or loads as a URL. */
const URL_ATTRIBUTES = new Set(['href', 'src', 'action', 'formaction', 'background', 'poster', 'cite', 'longdesc', 'xlink:href', 'data']);
/** Schemes a merge value may give a link; anything else (javascript:, data:, vbscript:, file:) is refused. */
export const SAFE_URL_SCHEMES = ['http', 'https', 'mailto', 'tel'] as const;

/**
 * The URL attribute whose value a merge field at `index` of an html template starts, if any:
 * `<a href="{{link}}">` and `<a href={{link}}>` do; `<a href="https://x/?u={{id}}">` does not
 * (the template fixes the scheme there) and neither does a field in text.
 */
function urlAttributeStartedAt(html: string, index: number): string | undefined {
  const before = html.slice(0, index);
  const tagStart = before.lastIndexOf('<');
  if (tagStart < 0 || before.lastIndexOf('>') > tagStart) return undefined;
  const attr = /([A-Za-z][A-Za-z0-9:_-]*)\s*=\s*(["']?)\s*$/.exec(before.slice(tagStart));
  if (!attr) return undefined;
  const name = attr[1].toLowerCase();
  return URL_ATTRIBUTES.has(name) ? name : undefined;
}

/**
 * The scheme of a link value as a mail client reads it ('' for a relative link), ignoring what
 * browsers ignore: leading spaces and control characters, tabs and line breaks inside the scheme.
 */
export function linkScheme(value: string): string {
  const cleaned = value.replace(/^[\u0000-\u0020]+/, '').replace(/[\t\n\r]/g, '');
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(cleaned);
  return m ? m[1].toLowerCase() : '';
}

function unsafeLink(name: string, value: string): string | undefined {
  const scheme = linkScheme(value);
  if (scheme === '' || (SAFE_URL_SCHEMES as readonly string[]).includes(scheme)) return undefined;
  const shown = value.length > 60 ? `${value.slice(0, 60)}...` : value;
  return `unsafe link in merge field '${name}': ${JSON.stringify(shown)} (scheme '${scheme}:'; allowed: ${SAFE_URL_SCHEMES.join(', ')})`;
}

/** Line breaks a header must never contain (CR, LF, NEL, LINE/PARAGRAPH SEPARATOR). */
const HEADER_BREAKS = /[\r\n\u0085\u2028\u2029]+/g;

/**
 * Names every plain object inherits (constructor, toString, __proto__, ...): a merge field
 * with such a name would read the inherited value instead of the recipient's, so it is refused.
 */
const RESERVED = new Set(Object.getOwnPropertyNames(Object.prototype));

export class TemplateError extends Error {
  override readonly name = 'TemplateError';
}

/** Problems with a template's syntax, each naming the part and position (empty when fine). */
export function templateProblems(template: CampaignTemplate): string[] {
  const problems: string[] = [];
  for (const part of ['subject', 'text', 'html'] as const) {
    const source = template[part];
    if (source === undefined) continue;
    // Anything that opens a merge field but is not a well-formed `{{name}}`.
    const stripped = source.replace(FIELD, (m) => ' '.repeat(m.length));
    const open = stripped.indexOf('{{');
    const close = stripped.indexOf('}}');
    for (const m of source.matchAll(FIELD)) {
      if (RESERVED.has(m[1])) problems.push(`template.${part}: merge field name '${m[1]}' at position ${(m.index ?? 0) + 1} is reserved (pick another column name)`);
    }
    if (open >= 0) {
      const snippet = source.slice(open, open + 30).split('\n')[0];
      problems.push(`template.${part}: malformed merge field at position ${open + 1}: "${snippet}" (expected {{name}} with letters, digits, _ . -)`);
    } else if (close >= 0) {
      problems.push(`template.${part}: "}}" without "{{" at position ${close + 1}`);
    }
  }
  return problems;
}

export function escapeHtml(value: string): string {
  return value
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

function fieldsOf(source: string | undefined, into: Set<string>): void {
  if (!source) return;
  for (const m of source.matchAll(FIELD)) into.add(m[1]);
}

export function compileTemplate(template: CampaignTemplate): CompiledTemplate {
  const problems = templateProblems(template);
  if (problems.length) throw new TemplateError(problems.join('; '));
  const names = new Set<string>();
  fieldsOf(template.subject, names);
  fieldsOf(template.text, names);
  fieldsOf(template.html, names);
  const fields = [...names].filter((n) => !isEngineField(n)).sort();
  const engineFields = [...names].filter(isEngineField).sort();
  const urlNames = new Set<string>();
  for (const m of (template.html ?? '').matchAll(FIELD)) {
    if (!isEngineField(m[1]) && urlAttributeStartedAt(template.html ?? '', m.index ?? 0)) urlNames.add(m[1]);
  }
  const urlFields = [...urlNames].sort();

  type Mode = 'header' | 'text' | 'html';
  const fill = (source: string, values: Record<string, string>, mode: Mode, engine: EngineValues): string =>
    source.replace(FIELD, (_m, name: string) => {
      const value = isEngineField(name)
        ? engine[name as keyof EngineValues]
        : Object.prototype.hasOwnProperty.call(values, name)
          ? values[name]
          : undefined;
      if (typeof value !== 'string' || value === '') throw new TemplateError(`missing merge field '${name}'`);
      if (mode === 'html') {
        const unsafe = urlNames.has(name) ? unsafeLink(name, value) : undefined;
        if (unsafe) throw new TemplateError(unsafe);
        return escapeHtml(value);
      }
      // A header (the subject) is one line: a CR/LF in a merge value must never start a new header.
      return mode === 'header' ? value.replace(HEADER_BREAKS, ' ') : value;
    });

  return {
    fields,
    engineFields,
    urlFields,
    problemsWith(values) {
      const problems: string[] = [];
      const absent = fields.filter((f) => !Object.prototype.hasOwnProperty.call(values, f) || (values[f] ?? '').trim() === '');
      if (absent.length) problems.push(`has no value for merge field ${absent.map((f) => `'${f}'`).join(', ')}`);
      for (const name of urlFields) {
        const unsafe = Object.prototype.hasOwnProperty.call(values, name) ? unsafeLink(name, values[name]) : undefined;
        if (unsafe) problems.push(`has an ${unsafe}`);
      }
      return problems;
    },
    render(values, engine = {}) {
      return {
        // The subject template itself may carry a line break too (a YAML block scalar): fold it as well.
        subject: fill(template.subject, values, 'header', engine).replace(HEADER_BREAKS, ' ').trim(),
        text: fill(template.text, values, 'text', engine),
        html: template.html === undefined ? undefined : fill(template.html, values, 'html', engine),
      };
    },
  };
}
