/**
 * `{{field}}` merge templates. Values are inserted verbatim in subject and text, and
 * HTML-escaped in html (inside a tag outside quotes, spaces too: escapeHtmlInTag); a link in
 * html whose scheme merge values decide (`href="{{link}}"`, `href={{link}}`,
 * `href="{{scheme}}{{rest}}"`, `<meta http-equiv="refresh" content="0;url={{link}}">`) must be an
 * http, https, mailto or tel URL, as the attribute value renders (a `javascript:` link is
 * refused, not sent). A template names its fields up front so a campaign can be checked
 * against its audience before anything is sent.
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
   * Merge fields that start a link in the html part (`<a href="{{link}}">`, `<a href={{link}}>`,
   * `src`, `action`, ..., a refresh `<meta>`'s `content="0;url={{link}}"`), alone or with others
   * (`href="{{scheme}}{{rest}}"`): their values decide the URL's scheme, so the link they make
   * must be http, https, mailto or tel.
   */
  urlFields: string[];
  /**
   * What is wrong with one recipient's values, each a phrase after the address ("has no value for
   * merge field 'city'"); empty when it can be rendered. Engine values are rarely known at
   * launch: an engine field left out counts as empty, so the fields after it in a link are
   * checked as if they started it.
   */
  problemsWith(values: Record<string, string>, engine?: EngineValues): string[];
  render(values: Record<string, string>, engine?: EngineValues): { subject: string; text: string; html?: string };
}

/** Attributes whose value a mail client follows or loads as a URL. */
const URL_ATTRIBUTES = new Set(['href', 'src', 'action', 'formaction', 'background', 'poster', 'cite', 'longdesc', 'xlink:href', 'data']);
/** Schemes a merge value may give a link; anything else (javascript:, data:, vbscript:, file:) is refused. */
export const SAFE_URL_SCHEMES = ['http', 'https', 'mailto', 'tel'] as const;

/**
 * One URL attribute value of the html part whose scheme merge values may decide, as its template
 * text (character references not yet decoded) and merge fields in order.
 */
interface LinkValue {
  parts: Array<{ text: string } | { field: string }>;
  /** A refresh `<meta>`'s content (`0;url=...`): the link starts after the delay and `url=`. */
  refresh: boolean;
  /** Audience fields that may decide the scheme (no fixed text before them settles it), in order. */
  deciders: string[];
}

/** Where the html part's merge fields sit, as an HTML parser reads the template. */
interface HtmlLayout {
  /** URL attribute values whose scheme a merge value may decide. */
  links: LinkValue[];
  /** Merge fields inside a tag outside quotes, by offset: in an unquoted attribute value, or where a name goes. */
  bare: Map<number, 'value' | 'name'>;
}

/** HTML's space characters: they end a tag name, an attribute name and an unquoted attribute value. */
const HTML_SPACE = new Set(['\t', '\n', '\f', '\r', ' ']);
/** Elements whose content is text up to their end tag, never markup. */
const RAW_TEXT = new Set(['script', 'style', 'title', 'textarea', 'xmp', 'iframe', 'noembed', 'noframes']);

/**
 * Reads an html template the way an HTML parser reads it (tags, attributes quoted or not, `>`
 * inside quotes, comments, raw text elements) with each merge field as one opaque unit, and
 * finds the URL attribute values merge values help decide: `<a href="{{link}}">`,
 * `<a class=x href = {{link}}>`, `<A HREF={{scheme}}{{rest}}>`. `<a href="https://x/?u={{id}}">`
 * is not one (the template fixes the scheme), and neither is a field in text or in a comment.
 * Where it cannot tell (a field that might complete a comment's or raw text's end), it reads on
 * as markup: a field is checked too often rather than too rarely.
 */
function htmlLayout(html: string): HtmlLayout {
  const fieldEnd = new Map<number, number>();
  for (const m of html.matchAll(FIELD)) fieldEnd.set(m.index ?? 0, (m.index ?? 0) + m[0].length);
  const layout: HtmlLayout = { links: [], bare: new Map<number, 'value' | 'name'>() };
  /** The index past the characters and whole merge fields from i up to the first `stop` character, noting the fields stepped over. */
  const runTo = (i: number, stop: (c: string) => boolean, where?: 'value' | 'name'): number => {
    while (i < html.length && !stop(html[i])) {
      const end = fieldEnd.get(i);
      if (end !== undefined && where) layout.bare.set(i, where);
      i = end ?? i + 1;
    }
    return i;
  };
  const tagStartsAt = (i: number) => /[A-Za-z]/.test(html[i] ?? '') || fieldEnd.has(i);
  for (let i = html.indexOf('<'); i >= 0 && i < html.length; i = html.indexOf('<', i)) {
    if (tagStartsAt(i + 1)) {
      const tag = readTag(html, i + 1, runTo);
      linksOfTag(html, tag, layout);
      i = RAW_TEXT.has(tag.name) ? rawTextEnd(html, tag.end, tag.name, runTo, fieldEnd) : tag.end;
    } else if (html[i + 1] === '/' && tagStartsAt(i + 2)) {
      i = readTag(html, i + 2, runTo).end; // an end tag's attributes are ignored
    } else if (html.startsWith('<!--', i)) {
      i = commentEnd(html, i + 4);
    } else if (html[i + 1] === '!' || html[i + 1] === '?' || html[i + 1] === '/') {
      const close = html.indexOf('>', i + 2); // <!DOCTYPE ...>, <?xml ...?>, </>: text up to the next '>'
      i = close < 0 ? html.length : close + 1;
    } else {
      i++;
    }
  }
  return layout;
}

type RunTo = (i: number, stop: (c: string) => boolean, where?: 'value' | 'name') => number;
/** A tag as read: its lowercased name, its attributes (names lowercased, value spans) and the index past its `>`. */
interface Tag {
  name: string;
  attributes: Array<{ name: string; value?: { start: number; end: number } }>;
  end: number;
}

/** Reads a tag from its name at `at`. */
function readTag(html: string, at: number, runTo: RunTo): Tag {
  const nameEnd = runTo(at, (c) => HTML_SPACE.has(c) || c === '/' || c === '>', 'name');
  const tag: Tag = { name: html.slice(at, nameEnd).toLowerCase(), attributes: [], end: html.length };
  const skipSpace = (i: number) => runTo(i, (c) => !HTML_SPACE.has(c));
  let i = nameEnd;
  for (;;) {
    i = runTo(i, (c) => !HTML_SPACE.has(c) && c !== '/');
    if (i >= html.length) return tag;
    if (html[i] === '>') return { ...tag, end: i + 1 };
    // An attribute name may start with '=' (`<a =x>`); it runs to a space, '/', '>' or '='.
    const attrEnd = runTo(i + (html[i] === '=' ? 1 : 0), (c) => HTML_SPACE.has(c) || c === '/' || c === '>' || c === '=', 'name');
    const attribute: Tag['attributes'][number] = { name: html.slice(i, attrEnd).toLowerCase() };
    tag.attributes.push(attribute);
    i = skipSpace(attrEnd);
    if (html[i] !== '=') continue; // no value
    i = skipSpace(i + 1);
    if (i >= html.length || html[i] === '>') continue;
    const quote = html[i] === '"' || html[i] === "'" ? html[i] : undefined;
    if (quote) {
      const close = html.indexOf(quote, i + 1); // a merge field never holds a quote
      const end = close < 0 ? html.length : close;
      attribute.value = { start: i + 1, end };
      i = Math.min(end + 1, html.length);
    } else {
      const end = runTo(i, (c) => HTML_SPACE.has(c) || c === '>', 'value');
      attribute.value = { start: i, end };
      i = end;
    }
  }
}

/**
 * Records the attribute values of a start tag that are links: URL attributes (`href`, `src`, ...)
 * and the content of a refresh `<meta>` (`<meta http-equiv="refresh" content="0;url=...">`).
 * A meta whose tag name, attribute names or http-equiv a merge value may decide counts as a
 * refresh: its content is checked too often rather than too rarely.
 */
function linksOfTag(html: string, tag: Tag, layout: HtmlLayout): void {
  const maybeMeta = tag.name === 'meta' || tag.name.includes('{{');
  const refresh =
    maybeMeta &&
    tag.attributes.some((a) => {
      if (a.name.includes('{{')) return true;
      if (a.name !== 'http-equiv' || !a.value) return false;
      const value = html.slice(a.value.start, a.value.end);
      return value.includes('{{') || decodeReferences(value).trim().toLowerCase() === 'refresh';
    });
  for (const a of tag.attributes) {
    if (!a.value) continue;
    if (URL_ATTRIBUTES.has(a.name)) attributeValue(html, a.value.start, a.value.end, false, layout);
    else if (refresh && a.name === 'content') attributeValue(html, a.value.start, a.value.end, true, layout);
  }
}

/** Records one link attribute value if merge values may decide its scheme. */
function attributeValue(html: string, start: number, end: number, refresh: boolean, layout: HtmlLayout): void {
  const parts: LinkValue['parts'] = [];
  let last = start;
  for (const m of html.slice(start, end).matchAll(FIELD)) {
    const at = start + (m.index ?? 0);
    if (at > last) parts.push({ text: html.slice(last, at) });
    parts.push({ field: m[1] });
    last = at + m[0].length;
  }
  if (last < end) parts.push({ text: html.slice(last, end) });
  const deciders = (refresh ? fieldsDecidingRefresh(parts) : fieldsDecidingScheme(parts)).filter((name) => !isEngineField(name));
  if (deciders.length) layout.links.push({ parts, refresh, deciders });
}

/**
 * Where a comment that starts at `from` (past `<!--`) ends: at `-->` or `--!>`, or at a `>` a
 * merge value might complete to one (`{{x}}>`, `-{{x}}>`).
 */
function commentEnd(html: string, from: number): number {
  if (html[from] === '>') return from + 1; // <!-->
  if (html.startsWith('->', from)) return from + 2; // <!--->
  for (let g = html.indexOf('>', from); g >= 0; g = html.indexOf('>', g + 1)) {
    if (/(?:--!?|\}\}[-!]*)$/.test(html.slice(Math.max(from, g - 80), g))) return g + 1;
  }
  return html.length;
}

/**
 * Where the text of a raw text element (`<style>`, `<script>`, `<title>`, ...) ends: at its end
 * tag, or at a `<` a merge value might complete to one (`</{{x}}>`, `<{{x}}>`).
 */
function rawTextEnd(html: string, from: number, name: string, runTo: RunTo, fieldEnd: Map<number, number>): number {
  for (let j = html.indexOf('<', from); j >= 0; j = html.indexOf('<', j + 1)) {
    if (fieldEnd.has(j + 1)) return j;
    if (html[j + 1] !== '/') continue;
    const tagName = html.slice(
      j + 2,
      runTo(j + 2, (c) => HTML_SPACE.has(c) || c === '/' || c === '>'),
    );
    if (tagName.toLowerCase() === name || tagName.includes('{{')) return j;
  }
  return html.length;
}

/** Named character references that can spell part of a scheme, and those escapeHtml writes. */
const NAMED_REFERENCES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  colon: ':',
  plus: '+',
  period: '.',
  Tab: '\t',
  NewLine: '\n',
};

/**
 * Decodes the character references a mail client decodes in an attribute value: numeric ones
 * (`&#115;`, `&#x3A`, with or without ';') and the named ones that matter for a scheme. Any
 * other named reference stays as written; it starts with '&', which no scheme contains.
 */
function decodeReferences(text: string): string {
  return text.replace(/&#(?:([0-9]+)|[xX]([0-9A-Fa-f]+));?|&([A-Za-z][A-Za-z0-9]*);/g, (whole, dec?: string, hex?: string, named?: string) => {
    if (named !== undefined) return NAMED_REFERENCES[named] ?? whole;
    const code = dec !== undefined ? Number.parseInt(dec, 10) : Number.parseInt(hex ?? '', 16);
    return code === 0 || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff) ? '\ufffd' : String.fromCodePoint(code);
  });
}

/**
 * How far a link value's scheme is decided, as a mail client reads it: the scheme ('' for a
 * relative link) and the index of the character that settled it (the ':' ending the scheme, or
 * the first character no scheme can hold), or the value's length when nothing has settled it.
 * Leading spaces and control characters are ignored, and so are tabs and line breaks anywhere.
 */
function schemeOf(value: string): { scheme: string; decidedAt: number } {
  let leading = true;
  let scheme = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === '\t' || c === '\n' || c === '\r' || (leading && c <= ' ')) continue;
    if (leading ? /[A-Za-z]/.test(c) : /[A-Za-z0-9+.-]/.test(c)) {
      scheme += c;
      leading = false;
      continue;
    }
    return { scheme: c === ':' && scheme ? scheme.toLowerCase() : '', decidedAt: i };
  }
  return { scheme: '', decidedAt: value.length };
}

/**
 * The scheme of a link value as a mail client reads it ('' for a relative link), ignoring what
 * browsers ignore: leading spaces and control characters, tabs and line breaks inside the scheme.
 */
export function linkScheme(value: string): string {
  return schemeOf(value).scheme;
}

/**
 * The merge fields (engine fields included) that may decide the scheme of an attribute value
 * made of `parts`, whatever their values: those before the first fixed character that settles
 * it. `{{scheme}}{{rest}}` and `  {{a}}` give every field, `{{a}}:{{b}}` gives 'a' (the ':'
 * settles it), `https://x/?u={{id}}` none. A character reference the template splits around a
 * field (`&#{{n}};`) might decode to anything, so it settles nothing.
 */
function fieldsDecidingScheme(parts: LinkValue['parts']): string[] {
  const names: string[] = [];
  // The states the scan may be in: only spaces so far, and inside a scheme (neither: settled).
  let leading = true;
  let inScheme = false;
  for (const [k, part] of parts.entries()) {
    if (!leading && !inScheme) break;
    if ('field' in part) {
      if (!names.includes(part.field)) names.push(part.field);
      inScheme = true;
      continue;
    }
    const split = k + 1 < parts.length ? /&[#A-Za-z0-9]*$/.exec(part.text) : null;
    for (const c of decodeReferences(split ? part.text.slice(0, split.index) : part.text)) {
      if (c === '\t' || c === '\n' || c === '\r') continue;
      inScheme = (leading && /[A-Za-z]/.test(c)) || (inScheme && /[A-Za-z0-9+.-]/.test(c));
      leading = leading && c <= ' ';
      if (!leading && !inScheme) break;
    }
    if (split && (leading || inScheme)) inScheme = true;
  }
  return names;
}

/**
 * Where the URL starts in a refresh `<meta>`'s content, read the way browsers read it (the
 * HTML standard's declarative refresh: spaces, a delay of digits and dots, ';' or ',', then
 * `url=` and a quote, each optional) but leniently: a content the standard would refuse is
 * still checked, from where its URL would start.
 */
function refreshUrlStart(content: string): number {
  let i = 0;
  const skipSpace = () => {
    while (i < content.length && HTML_SPACE.has(content[i])) i++;
  };
  skipSpace();
  while (i < content.length && /[0-9.]/.test(content[i])) i++;
  skipSpace();
  if (content[i] === ';' || content[i] === ',') i++;
  skipSpace();
  const url = /^url[\t\n\f\r ]*=[\t\n\f\r ]*/i.exec(content.slice(i));
  if (url) i += url[0].length;
  if (content[i] === '"' || content[i] === "'") i++;
  return i;
}

/**
 * The merge fields (engine fields included) that may decide the scheme of the URL in a refresh
 * `<meta>`'s content made of `parts`: none when the template text before the first field already
 * settles it (`0;url=https://example.org/?u={{id}}`), else every field (`0;url={{link}}`,
 * `{{delay}};url={{link}}`): a value may move where the URL starts.
 */
function fieldsDecidingRefresh(parts: LinkValue['parts']): string[] {
  const first = parts[0];
  if (first && 'text' in first) {
    const split = parts.length > 1 ? /&[#A-Za-z0-9]*$/.exec(first.text) : null;
    const text = decodeReferences(split ? first.text.slice(0, split.index) : first.text);
    const start = refreshUrlStart(text);
    if (start < text.length && schemeOf(text.slice(start)).decidedAt < text.length - start) return [];
  }
  return [...new Set(parts.flatMap((part) => ('field' in part ? [part.field] : [])))];
}

/**
 * Why one link, rendered with these values, must not be sent (undefined when it may): its
 * scheme is not http, https, mailto or tel and merge values decided it. Names every audience
 * field that helped decide it and shows the link as a mail client reads it. `valueOf` gives a
 * field's raw value, or undefined to skip the link (a value that is missing is reported as such).
 */
function unsafeLink(link: LinkValue, valueOf: (name: string) => string | undefined): string | undefined {
  // Without a '&' in the template text, the client reads the values and text as they are; with
  // one, a reference may span text and value (`&#{{n}};`), so the html is rebuilt and decoded.
  const decode = link.parts.some((part) => 'text' in part && part.text.includes('&'));
  let source = '';
  const starts: Array<{ name: string; at: number }> = [];
  for (const part of link.parts) {
    if ('text' in part) {
      source += part.text;
      continue;
    }
    const value = valueOf(part.field);
    if (value === undefined) return undefined;
    if (!isEngineField(part.field)) starts.push({ name: part.field, at: decode ? decodeReferences(source).length : source.length });
    source += decode ? escapeHtml(value) : value;
  }
  const rendered = decode ? decodeReferences(source) : source;
  const urlStart = link.refresh ? refreshUrlStart(rendered) : 0;
  const decided = schemeOf(rendered.slice(urlStart));
  const scheme = decided.scheme;
  const decidedAt = urlStart + decided.decidedAt;
  if (scheme === '' || (SAFE_URL_SCHEMES as readonly string[]).includes(scheme)) return undefined;
  const names = [...new Set(starts.filter((s) => s.at <= decidedAt).map((s) => s.name))];
  if (!names.length) return undefined; // the template's own text (or an engine value) fixed it
  const shown = rendered.length > 60 ? `${rendered.slice(0, 60)}...` : rendered;
  const fields = names.length === 1 ? `merge field '${names[0]}'` : `merge fields ${names.map((n) => `'${n}'`).join(', ')}`;
  return `unsafe link in ${fields}: ${JSON.stringify(shown)} (scheme '${scheme}:'; allowed: ${SAFE_URL_SCHEMES.join(', ')})`;
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
      if (RESERVED.has(m[1]))
        problems.push(`template.${part}: merge field name '${m[1]}' at position ${(m.index ?? 0) + 1} is reserved (pick another column name)`);
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
  return value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/**
 * Escapes a merge value that sits inside a tag outside quotes. In an unquoted attribute value
 * (`href={{link}}`) a space would end the value and start another attribute ("https://x
 * onmouseover=alert(1)"): HTML spaces become character references, which the client decodes
 * back to the same value. Where a name goes (`<a {{attr}}>`) spaces, '/' and '=' do too, so a
 * value stays one inert name and never adds an attribute.
 */
export function escapeHtmlInTag(value: string, where: 'value' | 'name'): string {
  const structural = where === 'value' ? /[\t\n\f\r ]/g : /[\t\n\f\r /=]/g;
  return escapeHtml(value).replace(structural, (c) => `&#${c.charCodeAt(0)};`);
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
  const { links, bare } = template.html === undefined ? { links: [], bare: new Map<number, 'value' | 'name'>() } : htmlLayout(template.html);
  const urlFields = [...new Set(links.flatMap((l) => l.deciders))].sort();

  type Mode = 'header' | 'text' | 'html';
  const fill = (source: string, values: Record<string, string>, mode: Mode, engine: EngineValues): string =>
    source.replace(FIELD, (_m, name: string, offset: number) => {
      const value = isEngineField(name) ? engine[name as keyof EngineValues] : Object.prototype.hasOwnProperty.call(values, name) ? values[name] : undefined;
      if (typeof value !== 'string' || value === '') throw new TemplateError(`missing merge field '${name}'`);
      if (mode === 'html') {
        const where = bare.get(offset);
        return where ? escapeHtmlInTag(value, where) : escapeHtml(value);
      }
      // A header (the subject) is one line: a CR/LF in a merge value must never start a new header.
      return mode === 'header' ? value.replace(HEADER_BREAKS, ' ') : value;
    });
  /** The raw value of a merge field (engine fields from `engine`, '' when absent there). */
  const valueIn = (values: Record<string, string>, engine: EngineValues) => (name: string) =>
    isEngineField(name) ? (engine[name as keyof EngineValues] ?? '') : Object.prototype.hasOwnProperty.call(values, name) ? values[name] : undefined;

  return {
    fields,
    engineFields,
    urlFields,
    problemsWith(values, engine = {}) {
      const problems: string[] = [];
      const absent = fields.filter((f) => !Object.prototype.hasOwnProperty.call(values, f) || (values[f] ?? '').trim() === '');
      if (absent.length) problems.push(`has no value for merge field ${absent.map((f) => `'${f}'`).join(', ')}`);
      // A link with a field reported absent above is not checked; one link used twice is reported once.
      const present = valueIn(values, engine);
      const valueOf = (name: string) => (isEngineField(name) || !absent.includes(name) ? present(name) : undefined);
      for (const link of links) {
        const unsafe = unsafeLink(link, valueOf);
        if (unsafe && !problems.includes(`has an ${unsafe}`)) problems.push(`has an ${unsafe}`);
      }
      return problems;
    },
    render(values, engine = {}) {
      const rendered = {
        // The subject template itself may carry a line break too (a YAML block scalar): fold it as well.
        subject: fill(template.subject, values, 'header', engine).replace(HEADER_BREAKS, ' ').trim(),
        text: fill(template.text, values, 'text', engine),
        html: template.html === undefined ? undefined : fill(template.html, values, 'html', engine),
      };
      for (const link of links) {
        const unsafe = unsafeLink(link, valueIn(values, engine));
        if (unsafe) throw new TemplateError(unsafe);
      }
      return rendered;
    },
  };
}
