import { strict as assert } from 'assert';
import { parseBenchArgs } from '../../src/bench/args';
import { parseBenchAddress, RecipientCounter, recipientsOfForm } from '../../src/bench/mailgun-sink';
import { multipartBody } from '../../src/providers/mailgun/provider';
import { workerFlags } from '../../src/bench/worker-proc';

describe('bench Mailgun sink: recipients of a send form', () => {
  it('finds every to field of the form the Mailgun provider posts, and nothing from recipient-variables', () => {
    const vars = { 'r1.mg@example.com': { subject: 'name="to"', text: 'x\r\n' } };
    const { boundary, body } = multipartBody([
      ['from', 'Bench <bench@example.org>'],
      ['to', 'r1.mg@example.com'],
      ['to', 'r2.mg@example.com'],
      ['subject', '%recipient.subject%'],
      ['recipient-variables', JSON.stringify(vars)],
    ]);
    assert.deepEqual(recipientsOfForm(body, `multipart/form-data; boundary=${boundary}`), ['r1.mg@example.com', 'r2.mg@example.com']);
  });

  it('reads a multipart form as FormData serialises it (mailgun.js), comma lists and urlencoded forms', async () => {
    const form = new FormData();
    form.append('from', 'bench@example.org');
    form.append('to', 'r1.raw@example.com');
    form.append('to', '"Lee, Ann" <r2.raw@example.com>, r3.raw@example.com');
    form.append('text', 'hello');
    const request = new Request('http://127.0.0.1/', { method: 'POST', body: form });
    const body = Buffer.from(await request.arrayBuffer());
    assert.deepEqual(recipientsOfForm(body, request.headers.get('content-type')!), [
      'r1.raw@example.com',
      '"Lee, Ann" <r2.raw@example.com>',
      'r3.raw@example.com',
    ]);
    const urlencoded = Buffer.from(
      new URLSearchParams([
        ['to', 'a@example.com'],
        ['to', 'b@example.com'],
      ]).toString(),
    );
    assert.deepEqual(recipientsOfForm(urlencoded, 'application/x-www-form-urlencoded'), ['a@example.com', 'b@example.com']);
    assert.deepEqual(recipientsOfForm(body, 'text/plain'), []);
  });
});

describe('bench Mailgun sink: counting recipients per seq', () => {
  it('parses the bench audience addresses (r<seq>.<tag>@...) and nothing else', () => {
    assert.deepEqual(parseBenchAddress('r42.MG@example.com'), { seq: 42, tag: 'mg' });
    assert.deepEqual(parseBenchAddress('Reader <r7.scale@example.com>'), { seq: 7, tag: 'scale' });
    assert.equal(parseBenchAddress('ann@example.com'), undefined);
    assert.equal(parseBenchAddress('xr1.mg@example.com'), undefined);
  });

  it('tells lost and duplicated recipients of an audience, past its first allocation', () => {
    const counter = new RecipientCounter();
    for (let seq = 1; seq <= 5000; seq++) if (seq !== 17 && seq !== 4999) counter.add(`r${seq}.mg@example.com`);
    counter.add('r3000.mg@example.com');
    counter.add('r3000.mg@example.com');
    counter.add('r12.other@example.com');
    counter.add('someone@example.com');
    assert.deepEqual(counter.tally('mg', 5000), { accepted: 4998, lost: 2, duplicated: 1, extraCopies: 2 });
    assert.deepEqual(counter.tally('mg', 5001), { accepted: 4998, lost: 3, duplicated: 1, extraCopies: 2 });
    assert.equal(counter.accepted, 5002);
    assert.equal(counter.distinct('mg'), 4998);
    assert.deepEqual(counter.tally('none', 3), { accepted: 0, lost: 3, duplicated: 0, extraCopies: 0 });
  });
});

describe('bench command line', () => {
  it('defaults: 10,000 recipients, SQLite, no latency, the workflow default window; --scale: 1,000,000 and 2 workers', () => {
    assert.deepEqual(parseBenchArgs([]), { n: 10_000, store: 'sqlite', latencyMs: 0, window: undefined, only: undefined, scale: false, workers: 2 });
    assert.equal(parseBenchArgs(['--large']).n, 100_000);
    assert.deepEqual(parseBenchArgs(['--scale', '--n', '50000', '--workers', '3', '--window', '1', '--latency-ms', '200']), {
      n: 50_000,
      store: 'sqlite',
      latencyMs: 200,
      window: 1,
      only: undefined,
      scale: true,
      workers: 3,
    });
    assert.equal(parseBenchArgs(['--scale']).n, 1_000_000);
    assert.equal(parseBenchArgs(['--only', 'mailgun', '--store', 'postgres']).only, 'mailgun');
  });

  it('refuses bad flags naming the flag and the value', () => {
    assert.throws(() => parseBenchArgs(['--window', '0']), /--window: expected a whole number of at least 1, got '0'/);
    assert.throws(() => parseBenchArgs(['--window', '--scale']), /--window: expected a value after it/);
    assert.throws(() => parseBenchArgs(['--latency-ms', '-5']), /--latency-ms: expected a whole number of at least 0, got '-5'/);
    assert.throws(() => parseBenchArgs(['--latency-ms', '1.5']), /--latency-ms: expected a whole number of at least 0, got '1.5'/);
    assert.throws(() => parseBenchArgs(['--n', '10']), /--n: expected a whole number of at least 1000, got '10'/);
    assert.throws(() => parseBenchArgs(['--only', 'ses']), /--only: expected 'smtp' or 'mailgun', got 'ses'/);
    assert.throws(() => parseBenchArgs(['--workers', '2']), /--workers: only with --scale/);
    assert.throws(() => parseBenchArgs(['--scale', '--store', 'sqlite']), /--scale: .*--store and --only do not apply/);
    assert.throws(() => parseBenchArgs(['--fast']), /unknown argument '--fast'/);
  });

  it("bench workers run with the image's heap cap unless MAILOVER_BENCH_WORKER_FLAGS replaces it ('' for Node's defaults)", () => {
    const saved = process.env.MAILOVER_BENCH_WORKER_FLAGS;
    try {
      delete process.env.MAILOVER_BENCH_WORKER_FLAGS;
      assert.deepEqual(workerFlags(), ['--max-old-space-size=256']);
      process.env.MAILOVER_BENCH_WORKER_FLAGS = ' --max-old-space-size=128  --expose-gc ';
      assert.deepEqual(workerFlags(), ['--max-old-space-size=128', '--expose-gc']);
      process.env.MAILOVER_BENCH_WORKER_FLAGS = '';
      assert.deepEqual(workerFlags(), []);
    } finally {
      if (saved === undefined) delete process.env.MAILOVER_BENCH_WORKER_FLAGS;
      else process.env.MAILOVER_BENCH_WORKER_FLAGS = saved;
    }
  });
});
