/** The circuit's trip rule and the `health:` / `rateLimit:` config, without a server. */
import { strict as assert } from 'assert';
import { ConfigError, parseConfig } from '../../src/config';
import { DEFAULT_HEALTH_SETTINGS } from '../../workflows/provider-health-api';
import { tripReason } from '../../workflows/provider-health';

const PROVIDERS = [{ name: 'relay', kind: 'smtp', host: 'relay.example', port: 25 }];

describe('provider health settings', () => {
  it('circuit: opens after consecutiveFailures provider-level failures in a row, not before', () => {
    const s = { ...DEFAULT_HEALTH_SETTINGS, consecutiveFailures: 3 };
    assert.equal(tripReason(s, 2, [false, false]), undefined);
    assert.equal(tripReason(s, 3, [false, false, false]), '3 provider-level failures in a row');
    assert.equal(tripReason(DEFAULT_HEALTH_SETTINGS, 1, [false]), 'a provider-level failure');
  });

  it('circuit: with failureRate it opens when enough of the window failed, once minReports outcomes are in', () => {
    const s = { ...DEFAULT_HEALTH_SETTINGS, consecutiveFailures: 10, failureRate: { threshold: 0.5, window: 6, minReports: 4 } };
    assert.equal(tripReason(s, 1, [true, false, false]), undefined, 'too few outcomes yet');
    assert.equal(tripReason(s, 1, [true, true, true, false]), undefined, '1 of 4 is under half');
    assert.equal(tripReason(s, 1, [true, false, true, false]), '2 of the last 4 batches failed at the provider level');
  });

  it('config: health settings are read with defaults, and bad ones are refused naming the field', () => {
    assert.deepEqual(parseConfig({ providers: PROVIDERS }, {}).health, DEFAULT_HEALTH_SETTINGS);
    const h = parseConfig(
      {
        providers: PROVIDERS,
        health: {
          consecutiveFailures: 2,
          failback: 'manual',
          failureRate: { threshold: 0.5, window: 20 },
          probe: { to: 'ops@example.org', from: 'mailover <probe@example.org>' },
        },
      },
      {},
    ).health;
    assert.equal(h.consecutiveFailures, 2);
    assert.equal(h.failback, 'manual');
    assert.deepEqual(h.failureRate, { threshold: 0.5, window: 20, minReports: 20 });
    assert.deepEqual(h.probe, { to: 'ops@example.org', from: 'mailover <probe@example.org>' });
    assert.throws(
      () => parseConfig({ providers: PROVIDERS, health: { consecutiveFailures: 0, failback: 'sometimes', cooldown: 5 } }, {}),
      (err: Error) =>
        err instanceof ConfigError &&
        /health\.cooldown: unknown setting/.test(err.message) &&
        /health\.consecutiveFailures: expected a whole number of at least 1, got 0/.test(err.message) &&
        /health\.failback: expected auto or manual, got "sometimes"/.test(err.message),
    );
  });

  it('config: a provider rateLimit needs whole numbers above 0 and names the field', () => {
    const ok = parseConfig({ providers: [{ ...PROVIDERS[0], rateLimit: { perSecond: 50, perWindow: { max: 1000, windowMs: 3_600_000 } } }] }, {});
    assert.deepEqual(ok.providers[0].rateLimit, { perSecond: 50, perWindow: { max: 1000, windowMs: 3_600_000 } });
    assert.throws(
      () => parseConfig({ providers: [{ ...PROVIDERS[0], rateLimit: { perSecond: 0 } }] }, {}),
      /providers\[0\]\.rateLimit\.perSecond: expected a whole number of messages above 0, got 0/,
    );
    assert.throws(() => parseConfig({ providers: [{ ...PROVIDERS[0], rateLimit: {} }] }, {}), /providers\[0\]\.rateLimit: set perSecond, perWindow or both/);
  });
});
