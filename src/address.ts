/**
 * Email address validation and normalisation for audience import.
 *
 * Deliberately conservative: plain ASCII `local@domain` addresses (the form ESPs
 * accept everywhere). Internationalised domains must be given in punycode.
 */

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
  // eslint-disable-next-line no-control-regex
  if (/[^\x21-\x7e]/.test(s)) return bad('non-ASCII characters (use punycode for the domain)');
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

function bad(reason: string): NormalisedAddress {
  return { ok: false, reason };
}
