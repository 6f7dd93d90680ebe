/**
 * A campaign's start time (`mailover campaign start --at`): ISO 8601 with its offset (or Z), so it
 * means one instant wherever the command runs, and in the future. Checked before anything is
 * stored or started.
 */

const ISO_WITH_OFFSET = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/i;

const EXAMPLE = '2026-12-02T09:00:00+01:00';

/** The instant `value` names, or what is wrong with it (naming `field` and the value); `now` is epoch ms. */
export function parseStartAt(value: unknown, now: number, field = '--at'): { at: Date; problem?: undefined } | { at?: undefined; problem: string } {
  const shown = JSON.stringify(typeof value === 'string' ? value.slice(0, 80) : value) ?? String(value);
  const expected = `${field}: expected a time in ISO 8601 with its offset, like ${EXAMPLE} or 2026-12-02T08:00:00Z, got ${shown}`;
  const m = typeof value === 'string' ? ISO_WITH_OFFSET.exec(value.trim()) : null;
  if (!m) return { problem: expected };
  const [year, month, day, hour, minute, second = 0] = m.slice(1, 7).map((v) => Number(v ?? 0));
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth || hour > 23 || minute > 59 || second > 59) {
    return { problem: `${field}: ${shown} is not a date and time of day (${expected.slice(field.length + 2, expected.indexOf(', got'))})` };
  }
  const at = new Date(Date.parse(value as string));
  if (Number.isNaN(at.getTime())) return { problem: expected };
  if (at.getTime() <= now) {
    return {
      problem: `${field}: ${shown} is in the past (it is now ${new Date(now).toISOString().slice(0, 19)}Z); give a later time, or leave ${field} out to start at once`,
    };
  }
  return { at };
}
