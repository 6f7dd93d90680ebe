/**
 * A campaign's start time (`campaign start --at`, src/start-at.ts): ISO 8601 with its offset, in
 * the future; every refusal names the option and the value. Pure: `now` is given.
 */
import { strict as assert } from 'assert';
import { parseStartAt } from '../../src/start-at';

const NOW = Date.parse('2026-12-02T04:00:00Z');

const at = (value: unknown) => {
  const r = parseStartAt(value, NOW);
  assert.ok(r.at, `${String(value)} is accepted: ${r.problem}`);
  return r.at.toISOString();
};
const problem = (value: unknown, field?: string) => {
  const r = parseStartAt(value, NOW, field);
  assert.ok(r.problem, `${String(value)} is refused`);
  return r.problem;
};

describe('start time (src/start-at.ts)', () => {
  it('routing: --at takes ISO 8601 with an offset or Z, to the minute, second or fraction', () => {
    assert.equal(at('2026-12-02T09:00:00+01:00'), '2026-12-02T08:00:00.000Z');
    assert.equal(at('2026-12-02T09:00+01:00'), '2026-12-02T08:00:00.000Z');
    assert.equal(at('2026-12-02T08:00:00Z'), '2026-12-02T08:00:00.000Z');
    assert.equal(at('2026-12-02t08:00:00.250z'), '2026-12-02T08:00:00.250Z');
    assert.equal(at('2026-12-01T23:30:00-05:00'), '2026-12-02T04:30:00.000Z');
  });

  it('routing: a time without an offset, another format, or no date is refused naming --at and the value', () => {
    for (const v of ['2026-12-02T09:00:00', '2026-12-02 09:00:00+01:00', 'tomorrow 9am', '09:00', '', '1764662400']) {
      assert.equal(
        problem(v),
        `--at: expected a time in ISO 8601 with its offset, like 2026-12-02T09:00:00+01:00 or 2026-12-02T08:00:00Z, got ${JSON.stringify(v)}`,
      );
    }
    assert.match(problem(undefined), /got undefined$/);
  });

  it('routing: a date or time that does not exist is refused', () => {
    assert.match(problem('2026-02-30T09:00:00Z'), /^--at: "2026-02-30T09:00:00Z" is not a date and time of day/);
    assert.match(problem('2026-13-01T09:00:00Z'), /is not a date and time of day/);
    assert.match(problem('2026-12-02T24:00:00Z'), /is not a date and time of day/);
    assert.equal(at('2028-02-29T09:00:00Z'), '2028-02-29T09:00:00.000Z');
  });

  it('routing: a time in the past (or now) is refused with the current time; the field name is the caller’s', () => {
    assert.equal(
      problem('2026-12-02T04:00:00Z'),
      '--at: "2026-12-02T04:00:00Z" is in the past (it is now 2026-12-02T04:00:00Z); give a later time, or leave --at out to start at once',
    );
    assert.match(problem('2026-12-02T04:59:00+01:00', 'startAt'), /^startAt: "2026-12-02T04:59:00\+01:00" is in the past/);
  });
});
