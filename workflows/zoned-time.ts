/**
 * Time in an IANA zone, pure and deterministic for a given instant (Intl with the zone's rules from
 * Node's ICU): usable from workflows (send windows) and from activities and the CLI (quota clocks).
 */
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(zone, f);
  }
  return f;
}

/** The local wall clock at instant t, as epoch ms read as if it were UTC (whole seconds). */
export function wallAt(t: number, zone: string): number {
  const p: Record<string, number> = {};
  for (const part of formatter(zone).formatToParts(new Date(t))) if (part.type !== 'literal') p[part.type] = Number(part.value);
  return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
}

/** The zone's offset from UTC at instant t, in ms. */
export function offsetAt(t: number, zone: string): number {
  return wallAt(t, zone) - Math.floor(t / 1000) * 1000;
}
