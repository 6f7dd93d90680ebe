/**
 * Kind-neutral rules on what providers answered, used by every adapter and by the send activity:
 * the batch-alike rule (most of a batch refused alike is the provider refusing us, not each
 * recipient) and the scrubbing of addresses from reply texts before they are shown or stored.
 */

/**
 * An e-mail address: a dot-atom local part (RFC 5322 atext, UTF-8 letters allowed as in
 * RFC 6531) and a domain of letter/digit labels (IDN in Unicode or punycode) or a domain
 * literal. Quoted local parts are not needed: no reply we know of echoes one.
 */
const ATEXT = "[\\p{L}\\p{M}\\p{N}!#$%&'*+/=?^_`{|}~-]";
const LOCAL_PART = `${ATEXT}+(?:\\.${ATEXT}+)*`;
const DOMAIN_LABEL = String.raw`[\p{L}\p{M}\p{N}](?:[\p{L}\p{M}\p{N}-]*[\p{L}\p{M}\p{N}])?`;
const DOMAIN = String.raw`(?:${DOMAIN_LABEL}(?:\.${DOMAIN_LABEL})*|\[[^\]\s]+\])`;
const ADDRESS = new RegExp(String.raw`<\s*${LOCAL_PART}@${DOMAIN}\s*>|${LOCAL_PART}@${DOMAIN}`, 'gu');

/**
 * Replaces every e-mail address in a text with '[address]': both `<bob@example.org>`
 * (brackets included) and bare `bob@example.org`, internationalised ones too.
 * Reply texts often echo the recipient ("<bob@example.org>: Relay access denied").
 */
export function scrubAddresses(text: string): string {
  return text.replace(ADDRESS, '[address]');
}

/** Fewer alike refusals than this are never taken for a provider problem. */
const ALIKE_MINIMUM = 3;

/**
 * The batch-alike rule: when MOST of one batch's recipients got the same refusal (same
 * signature), it is about the provider, not about them (e.g. a relay answering every RCPT TO
 * with 550 5.1.1 because it only knows its own users). `attempted` = recipients of the batch
 * that got any answer; `refusals` = one entry per 'rejected' or 'deferred' recipient.
 * Returns the signature and count when one signature covers at least 3 recipients AND more
 * than half of `attempted`; else undefined.
 */
export function alikeRefusal(attempted: number, refusals: Array<{ signature: string }>): { signature: string; count: number } | undefined {
  const counts = new Map<string, number>();
  let best: { signature: string; count: number } | undefined;
  for (const { signature } of refusals) {
    const count = (counts.get(signature) ?? 0) + 1;
    counts.set(signature, count);
    if (best === undefined || count > best.count) best = { signature, count };
  }
  if (best === undefined || best.count < ALIKE_MINIMUM || best.count * 2 <= attempted) return undefined;
  return best;
}
