/** `npm start`: the demo runs end to end and tells the user what happened. */
import { strict as assert } from 'assert';
import { spawn } from 'child_process';
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';

describe('demo (npm start)', function () {
  this.timeout(180_000);
  const dir = mkdtempSync(join(tmpdir(), 'mailover-demo-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('demo: imports the sample audience, fails over part-way, and ends with a summary table and the Web UI link', async () => {
    const child = spawn(process.execPath, [join(__dirname, '..', '..', 'src', 'demo.js')], {
      env: { ...process.env, MAILOVER_DATA_DIR: dir, MAILOVER_TEMPORAL_PORT: '0', MAILOVER_UI_PORT: '0', DATABASE_URL: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const code = await new Promise<number | null>((res) => child.on('exit', res));
    assert.equal(code, 0, out);
    assert.match(out, /imported 300 recipients from samples\/audience\.csv \(1 duplicate, 2 rejected: line 121 missing @, line 201 domain has no dot\)/);
    assert.match(out, /⚠ switched smtp-primary → mailgun at recipient #\d+: smtp-primary: connection refused/);
    assert.match(out, /│ accepted via smtp-primary\s+│\s+120 │/);
    assert.match(out, /│ accepted via mailgun\s+│\s+177 │/);
    assert.match(out, /│ rejected\s+│\s+1 │/);
    assert.match(out, /│ suppressed\s+│\s+2 │/);
    assert.match(out, /100% 300\/300/);
    assert.match(
      out,
      /every message carried List-Unsubscribe \(one-click\) and a signed per-recipient Return-Path, e\.g\. bounces\+[0-9a-z]+-[0-9a-f]{8}-[0-9a-f]{16}@bounces\.mailover\.dev/,
    );
    assert.match(out, /pressed "Unsubscribe" in their mail client \(RFC 8058 one-click POST\): 200 unsubscribed; suppressed: yes/);
    assert.match(out, /Mailgun reported a spam complaint from \S+ by signed webhook \(200\); suppressed on every provider: yes/);
    assert.match(out, /http:\/\/127\.0\.0\.1:\d+\/namespaces\/default\/workflows\/autumn-newsletter-/);
    assert.match(out, /^Prometheus metrics of the worker \(messages by provider and outcome, the switch\): http:\/\/127\.0\.0\.1:\d+\/metrics$/m);
  });
});
