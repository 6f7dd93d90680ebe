/**
 * Input values quoted in error messages and reports, cut to a readable length: a 50 MB header
 * line or a 1 MB YAML value must not come back whole on stderr. Every message that quotes a
 * value it was given (a file's text, a config value, a command-line argument) goes through here.
 */

/** Longest quoted value (characters, the ellipsis and the original length included). */
export const MAX_QUOTED_CHARS = 200;

/** Its first characters, without cutting a surrogate pair in two. */
function head(text: string, n: number): string {
  const cut = text.slice(0, Math.max(0, n));
  const last = cut.charCodeAt(cut.length - 1);
  return last >= 0xd800 && last <= 0xdbff ? cut.slice(0, -1) : cut;
}

/** `text` as it is when short; else its start, an ellipsis and its length: "abc… (50000092 characters)". */
export function clip(text: string, max = MAX_QUOTED_CHARS): string {
  if (text.length <= max) return text;
  const tail = `… (${text.length} characters)`;
  return head(text, max - tail.length) + tail;
}

/**
 * A value as JSON (strings in double quotes, escapes shown), at most `max` characters: a long
 * string keeps its start, an ellipsis inside the quotes and its length after them:
 * "abc…" (50000092 characters). `undefined` is "nothing".
 */
export function quote(value: unknown, max = MAX_QUOTED_CHARS): string {
  if (value === undefined) return 'nothing';
  if (typeof value !== 'string') return clip(JSON.stringify(value) ?? String(value), max);
  if (value.length <= max) {
    const whole = JSON.stringify(value);
    if (whole.length <= max) return whole;
  }
  const tail = ` (${value.length} characters)`;
  const budget = max - tail.length;
  // Escapes make the quoted form longer than the text: keep fewer characters until it fits.
  let n = budget - 3;
  let quoted = JSON.stringify(head(value, n) + '…');
  while (quoted.length > budget && n > 0) {
    n = Math.floor((n * budget) / quoted.length) - 1;
    quoted = JSON.stringify(head(value, n) + '…');
  }
  return quoted + tail;
}
