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
