/**
 * Email address validation and normalisation for audience import.
 *
 * Deliberately conservative: plain ASCII `local@domain` addresses (the form ESPs
 * accept everywhere). An internationalised domain (IDN, e.g. `bücher.example`) is
 * converted to its punycode form (`xn--bcher-kva.example`); a non-ASCII local part
 * (SMTPUTF8) is refused, as are quoted local parts.
 */
import { domainToASCII } from 'url';

export type NormalisedAddress = { ok: true; email: string } | { ok: false; reason: string };

const MAX_ADDRESS = 254;
const MAX_LOCAL = 64;
const MAX_LABEL = 63;
/** RFC 5322 atext plus the dot (dot placement is checked separately). */
const LOCAL_RE = /^[a-z0-9!#$%&'*+/=?^_`{|}~.-]+$/;
const LABEL_RE = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;

/**
 * Trim, unwrap a `Display Name <addr>` form, lowercase, and validate.
 * Returns a short human reason ("missing @", "domain has no dot", ...) when invalid.
 */
export function normaliseAddress(raw: string): NormalisedAddress {
  let s = String(raw ?? '').trim();
  // `Name <addr>` or `<addr>`
  const angle = /^(?:[^<>]*?)<([^<>]*)>$/.exec(s);
  if (angle) s = angle[1]!.trim();
  else if (s.includes('<') || s.includes('>')) return bad('invalid characters');
  if (s === '') return bad('empty address');
  if (/\s/.test(s)) return bad('contains spaces');
  s = idnToAscii(s);

  if (/[^\x21-\x7e]/.test(s)) {
    const at = s.lastIndexOf('@');

    if (at >= 0 && !/[^\x21-\x7e]/.test(s.slice(0, at))) return bad('non-ASCII characters in domain (not a valid internationalised domain name)');
    return bad('non-ASCII characters (only ASCII local parts are supported; domains may be internationalised)');
  }
  s = s.toLowerCase();
  const at = s.split('@');
  if (at.length < 2) return bad('missing @');
  if (at.length > 2) return bad('more than one @');
  const [local, domain] = at as [string, string];
  if (local === '') return bad('empty local part');
  if (domain === '') return bad('empty domain');
  if (s.length > MAX_ADDRESS) return bad(`longer than ${MAX_ADDRESS} characters`);
  if (local.length > MAX_LOCAL) return bad(`local part longer than ${MAX_LOCAL} characters`);
  if (s.includes('..')) return bad('consecutive dots');
  if (!LOCAL_RE.test(local)) return bad('invalid characters in local part');
  if (local.startsWith('.') || local.endsWith('.')) return bad('local part starts or ends with a dot');
  if (domain.startsWith('.') || domain.endsWith('.')) return bad('domain starts or ends with a dot');
  if (!domain.includes('.')) return bad('domain has no dot');
  for (const label of domain.split('.')) {
    if (label.length > MAX_LABEL) return bad(`domain label longer than ${MAX_LABEL} characters`);
    if (!LABEL_RE.test(label)) return bad('invalid characters in domain');
  }
  if (/^[0-9]+$/.test(domain.slice(domain.lastIndexOf('.') + 1))) return bad('domain has a numeric top-level label');
  return { ok: true, email: s };
}

/** `local@bücher.example` -> `local@xn--bcher-kva.example` when only the domain is non-ASCII. */
function idnToAscii(s: string): string {
  const at = s.lastIndexOf('@');
  if (at < 0) return s;
  const local = s.slice(0, at);
  const domain = s.slice(at + 1);
  // eslint-disable-next-line no-control-regex
  if (!/[^\x00-\x7f]/.test(domain) || /[^\x00-\x7f]/.test(local)) return s;
  const ascii = domainToASCII(domain);
  return ascii ? `${local}@${ascii}` : s; // '' = not a valid IDN: left as is, refused below as non-ASCII
}

function bad(reason: string): NormalisedAddress {
  return { ok: false, reason };
}

export type ParsedSender = { ok: true; from: string } | { ok: false; reason: string };

/** Characters that end or split a display name written without quotes (RFC 5322 specials but '.'). */
const UNQUOTED_SPECIALS = /[()<>[\]:;@\\,"]/;

/**
 * A sender (`from`): exactly one mailbox, `local@domain` or `Display Name <local@domain>`, whose
 * display name is not itself an address. A name with a comma, colon or other separator must be
 * quoted (`"Acme, Inc." <news@acme.example>`): unquoted, mail software reads an address list or a
 * group (`news@example.org, <ceo@bank.example>` is two mailboxes). Returns the sender with its
 * address normalised, or a short reason.
 */
export function parseSender(raw: string): ParsedSender {
  const m = /^\s*(.*?)\s*<([^<>]*)>\s*$/.exec(raw);
  if (!m) {
    if (/[,;]/.test(raw)) return refuse('more than one address: expected one mailbox, "Name <local@domain>"');
    const addr = normaliseAddress(raw);
    return addr.ok ? { ok: true, from: addr.email } : addr;
  }
  const name = m[1]!;
  const addr = normaliseAddress(m[2]!);
  if (!addr.ok) return addr;
  if (name === '') return { ok: true, from: addr.email };
  const quoted = /^"((?:[^"\\]|\\.)*)"$/.exec(name);
  const shown = quoted ? quoted[1]!.replace(/\\(.)/g, '$1') : name;
  if (!quoted && /[<>,;]/.test(name)) {
    return refuse(`more than one address: expected one mailbox, "Name <local@domain>" (a display name with ',' or ';' goes in double quotes)`);
  }
  if (shown.includes('@')) return refuse(`the display name ${JSON.stringify(shown)} holds an address (a display name must not look like one)`);
  if (/=\?/.test(shown)) return refuse(`the display name ${JSON.stringify(shown)} holds an encoded word ("=?"); write the name as plain text`);
  const special = quoted ? null : UNQUOTED_SPECIALS.exec(name);
  if (special) {
    return refuse(`the display name ${JSON.stringify(name)} has '${special[0]}', which mail software reads as a separator; put the name in double quotes`);
  }
  return { ok: true, from: `${name} <${addr.email}>` };
}

function refuse(reason: string): ParsedSender {
  return { ok: false, reason };
}
