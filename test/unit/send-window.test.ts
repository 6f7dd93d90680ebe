/**
 * Send windows (workflows/send-window.ts) on their own: parsing with errors that name the field,
 * and "open at t? when does it next open or close?" across days, midnight and Europe/Berlin's
 * daylight-saving changes. Pure: no Temporal, no network, no clock (every time is given).
 */
import { strict as assert } from 'assert';
import { describeWindow, instantOfWall, isWindowOpen, localTimeText, parseSendWindow, windowStateAt, type SendWindow } from '../../workflows/send-window';

const t = (iso: string) => Date.parse(iso);
const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

function win(raw: Record<string, unknown>): SendWindow {
  const r = parseSendWindow(raw);
  assert.ok(r.window, `parses: ${JSON.stringify(r.problems)}`);
  return r.window;
}

function problems(raw: unknown): string[] {
  const r = parseSendWindow(raw);
  assert.ok(r.problems, `${JSON.stringify(raw)} is refused`);
  return r.problems;
}

/** The state at `at` as ISO times, for deepEqual. */
function state(w: SendWindow, at: string) {
  const s = windowStateAt(w, t(at));
  return s.open ? { open: true, closesAt: iso(s.closesAt) } : { open: false, opensAt: iso(s.opensAt) };
}

const BERLIN_OFFICE = { days: 'mon-fri', hours: '09:00-17:00', zone: 'Europe/Berlin' };

describe('send window (workflows/send-window.ts)', () => {
  describe('parsing', () => {
    it('routing: a window parses to its days, hours and zone, normalized', () => {
      const w = win(BERLIN_OFFICE);
      assert.deepEqual(w.days, [false, true, true, true, true, true, false]);
      assert.equal(w.start, 9 * 60);
      assert.equal(w.end, 17 * 60);
      assert.deepEqual(w.spec, BERLIN_OFFICE);
      assert.equal(describeWindow(w), 'mon-fri 09:00-17:00 Europe/Berlin');
    });

    it('routing: days as a list, a comma list, full names, any case, and a range that wraps over the weekend', () => {
      assert.equal(win({ days: 'mon,wed,sat', zone: 'UTC' }).spec.days, 'mon,wed,sat');
      assert.equal(win({ days: ['Monday', 'WED', 'sat'], zone: 'UTC' }).spec.days, 'mon,wed,sat');
      assert.equal(win({ days: ['mon-wed', 'fri'], zone: 'UTC' }).spec.days, 'mon-wed,fri');
      assert.deepEqual(win({ days: 'fri-mon', zone: 'UTC' }).days, [true, true, false, false, false, true, true]);
      assert.equal(win({ days: 'fri-mon', zone: 'UTC' }).spec.days, 'mon,fri-sun');
      assert.equal(win({ days: 'mon, tue', zone: 'UTC' }).spec.days, 'mon,tue');
      assert.equal(win({ days: 'sun-sat', zone: 'UTC' }).spec.days, 'mon-sun');
    });

    it('routing: days default to every day and hours to the whole day; a zone is resolved to its IANA name', () => {
      const w = win({ zone: 'europe/berlin' });
      assert.deepEqual(w.spec, { days: 'mon-sun', hours: '00:00-24:00', zone: 'Europe/Berlin' });
      assert.equal(win({ hours: '22:00-06:00', zone: 'UTC' }).spec.hours, '22:00-06:00');
      assert.equal(win({ hours: ' 18:00 - 24:00 ', zone: 'UTC' }).spec.hours, '18:00-24:00');
      assert.equal(win({ hours: '9:00-17:30', zone: 'UTC' }).spec.hours, '09:00-17:30');
    });

    it('routing: bad hours name window.hours and the value', () => {
      assert.deepEqual(problems({ ...BERLIN_OFFICE, hours: '9-17' }), [
        'window.hours: expected HH:MM-HH:MM (e.g. 09:00-17:00, or 22:00-06:00 across midnight), got "9-17"',
      ]);
      assert.match(problems({ ...BERLIN_OFFICE, hours: '09:00-25:00' })[0], /^window\.hours: 25:00 is not a time of day .*got "09:00-25:00"$/);
      assert.match(problems({ ...BERLIN_OFFICE, hours: '24:00-06:00' })[0], /^window\.hours: 24:00 is not a time of day/);
      assert.match(problems({ ...BERLIN_OFFICE, hours: '09:60-10:00' })[0], /^window\.hours: 09:60 is not a time of day/);
      assert.match(
        problems({ ...BERLIN_OFFICE, hours: '09:00-09:00' })[0],
        /^window\.hours: it opens and closes at the same time, got "09:00-09:00" \(for the whole day use 00:00-24:00\)$/,
      );
      assert.match(problems({ ...BERLIN_OFFICE, hours: 900 })[0], /^window\.hours: expected HH:MM-HH:MM .*got 900$/);
    });

    it('routing: every day closed is an error, as is an unknown day', () => {
      assert.match(problems({ ...BERLIN_OFFICE, days: '' })[0], /^window\.days: no day given, so the window would never open/);
      assert.match(problems({ ...BERLIN_OFFICE, days: [] })[0], /^window\.days: no day given/);
      assert.deepEqual(problems({ ...BERLIN_OFFICE, days: 'mon-fr' }), [
        'window.days: expected days like mon-fri or mon,wed,sat (mon, tue, wed, thu, fri, sat, sun), got "mon-fr"',
      ]);
      assert.match(problems({ ...BERLIN_OFFICE, days: 'mon,holiday' })[0], /^window\.days: .*got "holiday" in "mon,holiday"$/);
      assert.match(problems({ ...BERLIN_OFFICE, days: 'mon-wed-fri' })[0], /got "mon-wed-fri"$/);
      assert.match(problems({ ...BERLIN_OFFICE, days: 5 })[0], /^window\.days: .*got 5$/);
    });

    it('routing: the zone is required and checked against the IANA database', () => {
      assert.deepEqual(problems({ days: 'mon-fri', hours: '09:00-17:00' }), [
        'window.zone: expected an IANA time zone like Europe/Berlin, America/New_York or UTC, got nothing',
      ]);
      assert.match(problems({ ...BERLIN_OFFICE, zone: 'Europe/Berln' })[0], /^window\.zone: unknown time zone "Europe\/Berln" \(expected an IANA time zone/);
      assert.match(problems({ ...BERLIN_OFFICE, zone: '+01:00' })[0], /^window\.zone: unknown time zone "\+01:00"/);
    });

    it('routing: unknown fields and a window that is not a mapping are named; every problem is reported at once', () => {
      assert.deepEqual(problems({ ...BERLIN_OFFICE, timezone: 'UTC' }), ['window.timezone: unknown field (expected days, hours, zone)']);
      assert.match(problems('mon-fri 09:00-17:00')[0], /^window: expected a mapping with days, hours and zone .*got "mon-fri 09:00-17:00"$/);
      assert.equal(problems({ days: 'x', hours: 'y', zone: 'z' }).length, 3);
      assert.match(problems(4)[0], /got 4 \(how many batches are in flight at once is batchesInFlight\)$/);
      assert.match(parseSendWindow({ zone: 1 }, 'campaign.yaml: window').problems?.[0] ?? '', /^campaign\.yaml: window\.zone:/);
    });

    it('routing: a normalized spec parses to the same window (the workflow parses what the launch normalized)', () => {
      for (const raw of [BERLIN_OFFICE, { days: ['fri-mon'], hours: '22:00-06:00', zone: 'europe/berlin' }, { zone: 'UTC' }]) {
        const w = win(raw);
        assert.deepEqual(win({ ...w.spec }), w);
      }
    });
  });

  describe('open or closed', () => {
    it('routing: office hours in Berlin winter (CET): open 08:00-16:00 UTC on weekdays, friday evening waits for monday', () => {
      const w = win(BERLIN_OFFICE);
      // Wednesday 2 December 2026.
      assert.deepEqual(state(w, '2026-12-02T07:59:59Z'), { open: false, opensAt: '2026-12-02T08:00:00.000Z' });
      assert.deepEqual(state(w, '2026-12-02T08:00:00Z'), { open: true, closesAt: '2026-12-02T16:00:00.000Z' });
      assert.deepEqual(state(w, '2026-12-02T15:59:59.999Z'), { open: true, closesAt: '2026-12-02T16:00:00.000Z' });
      assert.deepEqual(state(w, '2026-12-02T16:00:00Z'), { open: false, opensAt: '2026-12-03T08:00:00.000Z' });
      // Friday after hours, the weekend: monday 7 December.
      assert.deepEqual(state(w, '2026-12-04T16:00:00Z'), { open: false, opensAt: '2026-12-07T08:00:00.000Z' });
      assert.deepEqual(state(w, '2026-12-06T12:00:00Z'), { open: false, opensAt: '2026-12-07T08:00:00.000Z' });
      // Summer (CEST): 09:00 local is 07:00 UTC.
      assert.deepEqual(state(w, '2026-07-01T06:00:00Z'), { open: false, opensAt: '2026-07-01T07:00:00.000Z' });
      assert.deepEqual(state(w, '2026-07-01T14:59:00Z'), { open: true, closesAt: '2026-07-01T15:00:00.000Z' });
    });

    it('routing: across the spring-forward weekend (29 March 2026) friday closes at 16:00 UTC, monday opens at 07:00 UTC', () => {
      const w = win(BERLIN_OFFICE);
      assert.deepEqual(state(w, '2026-03-27T15:00:00Z'), { open: true, closesAt: '2026-03-27T16:00:00.000Z' });
      assert.deepEqual(state(w, '2026-03-27T16:00:00Z'), { open: false, opensAt: '2026-03-30T07:00:00.000Z' });
      assert.deepEqual(state(w, '2026-03-29T01:30:00Z'), { open: false, opensAt: '2026-03-30T07:00:00.000Z' });
    });

    it('routing: across the fall-back weekend (25 October 2026) friday closes at 15:00 UTC, monday opens at 08:00 UTC', () => {
      const w = win(BERLIN_OFFICE);
      assert.deepEqual(state(w, '2026-10-23T14:00:00Z'), { open: true, closesAt: '2026-10-23T15:00:00.000Z' });
      assert.deepEqual(state(w, '2026-10-23T15:00:00Z'), { open: false, opensAt: '2026-10-26T08:00:00.000Z' });
    });

    it('routing: a window opening in the hour the clocks skip opens when they jump (03:00 CEST), and closes on time', () => {
      const w = win({ days: 'sun', hours: '02:30-04:00', zone: 'Europe/Berlin' });
      // 02:30 does not exist on 29 March 2026: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
      assert.deepEqual(state(w, '2026-03-28T12:00:00Z'), { open: false, opensAt: '2026-03-29T01:00:00.000Z' });
      assert.deepEqual(state(w, '2026-03-29T01:00:00Z'), { open: true, closesAt: '2026-03-29T02:00:00.000Z' });
      // The sunday after, it is 02:30 CEST again.
      assert.deepEqual(state(w, '2026-03-29T02:00:00Z'), { open: false, opensAt: '2026-04-05T00:30:00.000Z' });
      // A window inside the skipped hour does not open that day at all.
      const skipped = win({ days: 'sun', hours: '02:10-02:50', zone: 'Europe/Berlin' });
      assert.deepEqual(state(skipped, '2026-03-28T12:00:00Z'), { open: false, opensAt: '2026-04-05T00:10:00.000Z' });
    });

    it('routing: a window in the hour the clocks repeat opens at its first 02:30 and closes at 03:30 CET (two hours that night)', () => {
      const w = win({ days: 'sun', hours: '02:30-03:30', zone: 'Europe/Berlin' });
      // 25 October 2026: 03:00 CEST goes back to 02:00 CET; 02:30 is 00:30 UTC (CEST) and again 01:30 UTC (CET).
      assert.deepEqual(state(w, '2026-10-24T12:00:00Z'), { open: false, opensAt: '2026-10-25T00:30:00.000Z' });
      assert.deepEqual(state(w, '2026-10-25T00:30:00Z'), { open: true, closesAt: '2026-10-25T02:30:00.000Z' });
      assert.equal(isWindowOpen(w, t('2026-10-25T01:45:00Z')), true, 'the repeated 02:45 is still inside');
      assert.equal(isWindowOpen(w, t('2026-10-25T02:30:00Z')), false);
    });

    it('routing: a night window (22:00-06:00) crosses midnight and belongs to the day it opens on', () => {
      const w = win({ days: 'mon-fri', hours: '22:00-06:00', zone: 'Europe/Berlin' });
      // Friday 4 December 2026, 22:00 CET = 21:00 UTC, until saturday 06:00 CET.
      assert.deepEqual(state(w, '2026-12-04T20:59:00Z'), { open: false, opensAt: '2026-12-04T21:00:00.000Z' });
      assert.deepEqual(state(w, '2026-12-04T23:30:00Z'), { open: true, closesAt: '2026-12-05T05:00:00.000Z' });
      // Monday 03:00 CET belongs to sunday's night, which is not listed.
      assert.deepEqual(state(w, '2026-12-07T02:00:00Z'), { open: false, opensAt: '2026-12-07T21:00:00.000Z' });
      // Tuesday 03:00 CET belongs to monday's night.
      assert.deepEqual(state(w, '2026-12-08T02:00:00Z'), { open: true, closesAt: '2026-12-08T05:00:00.000Z' });
    });

    it('routing: a night window over the spring-forward change lasts seven hours of real time', () => {
      const w = win({ days: 'sat', hours: '22:00-06:00', zone: 'Europe/Berlin' });
      assert.deepEqual(state(w, '2026-03-28T21:00:00Z'), { open: true, closesAt: '2026-03-29T04:00:00.000Z' });
    });

    it('routing: every day all day never closes; whole days run together until the first day off', () => {
      assert.deepEqual(state(win({ zone: 'UTC' }), '2026-12-02T12:00:00Z'), { open: true, closesAt: undefined });
      const weekdays = win({ days: 'mon-fri', zone: 'Europe/Berlin' });
      assert.deepEqual(state(weekdays, '2026-11-30T12:00:00Z'), { open: true, closesAt: '2026-12-04T23:00:00.000Z' });
      assert.deepEqual(state(weekdays, '2026-12-05T12:00:00Z'), { open: false, opensAt: '2026-12-06T23:00:00.000Z' });
      const evenings = win({ hours: '18:00-24:00', zone: 'UTC' });
      assert.deepEqual(state(evenings, '2026-12-02T23:59:00Z'), { open: true, closesAt: '2026-12-03T00:00:00.000Z' });
    });

    it('routing: a window opening at the next minute in UTC (how the integration test opens one)', () => {
      const w = win({ hours: '10:01-10:03', zone: 'UTC' });
      assert.deepEqual(state(w, '2026-12-02T10:00:58.500Z'), { open: false, opensAt: '2026-12-02T10:01:00.000Z' });
      assert.deepEqual(state(w, '2026-12-02T10:01:00.000Z'), { open: true, closesAt: '2026-12-02T10:03:00.000Z' });
    });

    it('routing: for a year of times in three zones, the next change is a real change (closed just before an opening, open just before a closing)', () => {
      const windows = [
        win(BERLIN_OFFICE),
        win({ days: 'fri-mon', hours: '22:00-02:30', zone: 'Europe/Berlin' }),
        win({ days: 'tue,thu', hours: '01:30-03:00', zone: 'America/New_York' }),
        win({ days: 'sun', hours: '00:00-24:00', zone: 'Australia/Lord_Howe' }),
      ];
      for (const w of windows) {
        for (let at = t('2026-01-01T00:00:00Z'); at < t('2027-01-01T00:00:00Z'); at += 7 * 3600_000 + 17 * 60_000) {
          const s = windowStateAt(w, at);
          const label = `${describeWindow(w)} at ${iso(at)}`;
          if (s.open) {
            assert.ok(s.closesAt !== undefined && s.closesAt > at, label);
            assert.equal(isWindowOpen(w, s.closesAt - 1), true, `${label}: open until it closes`);
            assert.equal(isWindowOpen(w, s.closesAt), false, `${label}: closed when it closes`);
          } else {
            assert.ok(s.opensAt > at, label);
            assert.equal(isWindowOpen(w, s.opensAt - 1), false, `${label}: closed until it opens`);
            assert.equal(isWindowOpen(w, s.opensAt), true, `${label}: open when it opens`);
            assert.ok(s.opensAt - at <= 7 * 24 * 3600_000, `${label}: opens within a week`);
          }
        }
      }
    });

    it('routing: open or closed agrees with the local clock away from DST changes (weekday and time read from Intl)', () => {
      const w = win({ days: 'mon,wed-thu,sat', hours: '20:15-07:45', zone: 'Asia/Kolkata' });
      const local = new Intl.DateTimeFormat('en-US', { timeZone: 'Asia/Kolkata', weekday: 'short', hour: 'numeric', minute: 'numeric', hourCycle: 'h23' });
      const days = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
      for (let at = t('2026-05-01T00:00:00Z'); at < t('2026-05-22T00:00:00Z'); at += 13 * 60_000) {
        const p = Object.fromEntries(local.formatToParts(new Date(at)).map((x) => [x.type, x.value]));
        const day = days.indexOf(p.weekday);
        const minutes = Number(p.hour) * 60 + Number(p.minute);
        const expected = (w.days[day] && minutes >= w.start) || (w.days[(day + 6) % 7] && minutes < w.end);
        assert.equal(isWindowOpen(w, at), expected, `${iso(at)} (${p.weekday} ${p.hour}:${p.minute} local)`);
      }
    });

    it('routing: local wall times resolve to instants: once, the first of two, the end of a gap', () => {
      const wall = (s: string) => t(`${s}Z`);
      assert.equal(iso(instantOfWall(wall('2026-12-02T09:00:00'), 'Europe/Berlin')), '2026-12-02T08:00:00.000Z');
      assert.equal(iso(instantOfWall(wall('2026-03-29T02:30:00'), 'Europe/Berlin')), '2026-03-29T01:00:00.000Z');
      assert.equal(iso(instantOfWall(wall('2026-10-25T02:30:00'), 'Europe/Berlin')), '2026-10-25T00:30:00.000Z');
      assert.equal(localTimeText(t('2026-12-07T08:00:00Z'), 'Europe/Berlin'), '2026-12-07 09:00');
    });
  });
});
