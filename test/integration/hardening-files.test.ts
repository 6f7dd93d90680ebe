/**
 * Hardening from outside (issue 16), the input files: long lines, long values in error
 * messages, old Mac line endings, duplicate JSONL keys, suppression imports with no valid
 * row, and progress output when stderr is not a terminal.
 * Large inputs are generated into a temp dir here, never committed.
 */
import { strict as assert } from 'assert';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Writable } from 'stream';
import { AudienceReader, MAX_LINE_LENGTH, parseAudience, scanAudienceFile } from '../../src/audience';
import { parseCampaignDefinition } from '../../src/campaign-definition';
import { LiveLine } from '../../src/cli/live-line';
import { ConfigError, parseConfig } from '../../src/config';
import { InvalidCampaignError } from '../../src/errors';
import { LineSplitter } from '../../src/line-splitter';
import { clip, MAX_QUOTED_CHARS, quote } from '../../src/quote-value';
import { openStore } from '../../src/store/open-store';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'bad-input');
const CLI = path.join(ROOT, 'build', 'src', 'cli', 'main.js');

const fixture = (name: string) => path.join(FIXTURES, name);
const text = (name: string) => fs.readFileSync(fixture(name), 'utf8');

/** The error thrown by fn, which must be `type` (a clear error, not a crash). */
function errorOf(fn: () => unknown, type: new (...a: never[]) => Error = InvalidCampaignError): Error {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof type, `expected ${type.name}, got ${(err as Error)?.stack ?? String(err)}`);
    return err as Error;
  }
  assert.fail('expected an error');
}

async function rejectionOf(p: Promise<unknown>, type: new (...a: never[]) => Error = InvalidCampaignError): Promise<Error> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof type, `expected ${type.name}, got ${(err as Error)?.stack ?? String(err)}`);
    return err as Error;
  }
  assert.fail('expected a rejection');
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The CLI as a process, stdout and stderr piped (not a terminal). */
function cli(args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A stream that keeps what is written to it, a terminal or not. */
class Capture extends Writable {
  written = '';
  constructor(readonly isTTY: boolean) {
    super();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.written += chunk.toString();
    done();
  }
}

describe('hardening: input files', function () {
  this.timeout(120_000);
  let dir: string;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailover-hardening-files-'));
  });
  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('long lines (item 3)', () => {
    const CHUNK = 'x'.repeat(64 * 1024);

    /** Pushes CHUNK after CHUNK (up to three times the limit) until the reader refuses; how much it took. */
    function pushUntilRefused(reader: AudienceReader): { err: Error; read: number } {
      let read = 0;
      const err = errorOf(() => {
        while (read < 3 * MAX_LINE_LENGTH) {
          read += CHUNK.length;
          reader.push(CHUNK);
        }
      });
      return { err, read };
    }

    it('hardening: a JSONL line longer than the limit is refused naming file, line and limit, after reading at most the limit and one chunk', () => {
      const reader = new AudienceReader('jsonl', 'long.jsonl', () => undefined);
      const start = '{"email":"b@example.com","note":"';
      reader.push(`{"email":"a@example.com"}\n${start}`);
      const { err, read } = pushUntilRefused(reader);
      assert.equal(err.message, `long.jsonl line 2: line longer than ${MAX_LINE_LENGTH} characters (the limit for one row)`);
      assert.ok(start.length + read <= MAX_LINE_LENGTH + CHUNK.length, `read ${read} characters of the line`);
    });

    it('hardening: a CSV record longer than the limit (a quote never closed) is refused naming file, line and limit, after reading at most the limit and one chunk', () => {
      const reader = new AudienceReader('csv', 'long.csv', () => undefined);
      const start = 'b@example.com,"';
      reader.push(`email,bio\na@example.com,ok\n${start}`);
      const { err, read } = pushUntilRefused(reader);
      assert.equal(
        err.message,
        `long.csv line 3: record longer than ${MAX_LINE_LENGTH} bytes (the limit for one row; a quote that is never closed makes the rest of the file one record)`,
      );
      assert.ok(start.length + read <= MAX_LINE_LENGTH + CHUNK.length, `read ${read} bytes of the record`);
    });

    it('hardening: splitting a 50 MB line that comes in 64 KiB chunks searches each character once (linear, not re-split on every chunk)', () => {
      const splitter = new LineSplitter(Number.MAX_SAFE_INTEGER, () => new Error('no limit here'));
      const lines: Array<[number, number]> = [];
      const onLine = (line: string, n: number) => lines.push([n, line.length]);
      const chunks = 800; // 800 × 64 KiB = 52,428,800 characters
      for (let i = 0; i < chunks; i++) splitter.push(CHUNK, onLine);
      splitter.push('\nnext\n', onLine);
      splitter.end(onLine);
      assert.deepEqual(lines, [
        [1, chunks * CHUNK.length],
        [2, 4],
        [3, 0],
      ]);
      assert.equal(splitter.scanned, chunks * CHUNK.length + 6);
    });

    it('hardening: the line splitter gives what split gives, however the text is cut into chunks', () => {
      const text = 'a\n\nbc\r\ndef\n' + 'g'.repeat(1000) + '\nh\n\ni';
      for (let cut = 1; cut <= 17; cut += 4) {
        const splitter = new LineSplitter(10_000, () => new Error('too long'));
        const lines: string[] = [];
        for (let i = 0; i < text.length; i += cut) splitter.push(text.slice(i, i + cut), (l) => lines.push(l));
        splitter.end((l) => lines.push(l));
        assert.deepEqual(lines, text.split('\n'), `chunks of ${cut}`);
        assert.equal(splitter.scanned, text.length);
      }
    });
  });

  describe('long values in error messages (item 4)', () => {
    it('hardening: a CSV whose long header has no email column is refused with the columns clipped, not the whole header', async () => {
      const columns = Array.from({ length: 30_000 }, (_, i) => `column_${i}`);
      const file = path.join(dir, 'wide-header.csv');
      fs.writeFileSync(file, `${columns.join(',')}\nx,y\n`);
      const err = await rejectionOf(scanAudienceFile(file));
      const all = columns.join(', ');
      assert.ok(err.message.length <= 400, `the message is ${err.message.length} characters long`);
      assert.match(err.message, /^wide-header\.csv: no 'email' column in header \(columns: column_0, column_1, column_2, .*… \(\d+ characters\)\)$/);
      assert.ok(err.message.includes(`… (${all.length} characters)`), err.message);
    });

    it('hardening: long values in campaign and config errors are quoted clipped, with their length', () => {
      const id = 'x'.repeat(100_000);
      const camp = errorOf(() =>
        parseCampaignDefinition({ id, from: 'a@example.org', template: { subject: 's', text: 't' }, providers: ['p'], transactional: true }),
      );
      assert.ok(camp.message.length < 400, `campaign error is ${camp.message.length} characters long`);
      assert.match(camp.message, /id: expected .*, got "x{50,}…" \(100000 characters\)/);
      const kind = 'k'.repeat(1_000_000);
      const config = errorOf(() => parseConfig({ providers: [{ name: 'p', kind }] }, {}), ConfigError);
      assert.ok(config.message.length < 600, `config error is ${config.message.length} characters long`);
      assert.match(config.message, /providers\[0\]\.kind: expected one of .*, got "k{50,}…" \(1000000 characters\)/);
    });

    it('hardening: the quoting helper keeps short values whole, cuts long ones to the limit with their length, never splitting an escape or a surrogate pair', () => {
      assert.equal(quote('short'), '"short"');
      assert.equal(quote(undefined), 'nothing');
      assert.equal(quote(42), '42');
      assert.equal(clip('short'), 'short');
      const long = quote('a'.repeat(1_000_000));
      assert.equal(long, `"${'a'.repeat(MAX_QUOTED_CHARS - ' (1000000 characters)'.length - 3)}…" (1000000 characters)`);
      assert.equal(long.length, MAX_QUOTED_CHARS);
      const controls = quote('\u0001'.repeat(1000));
      assert.ok(controls.length <= MAX_QUOTED_CHARS, controls);
      assert.match(controls, /^"(\\u0001)+…" \(1000 characters\)$/);
      const emoji = clip('😀'.repeat(500));
      assert.ok(emoji.length <= MAX_QUOTED_CHARS);
      assert.match(emoji, /^(😀)+… \(1000 characters\)$/u);
      assert.equal(quote({ list: Array.from({ length: 1000 }, (_, i) => i) }).length, MAX_QUOTED_CHARS);
    });

    it('hardening: a long JSONL key named in a rejection reason is clipped', () => {
      const key = 'k'.repeat(10_000);
      const r = parseAudience(`{"email":"a@example.com","${key}":[1]}\n`, 'jsonl');
      assert.equal(r.rejected.length, 1);
      assert.ok(r.rejected[0]!.reason.length <= 300, `the reason is ${r.rejected[0]!.reason.length} characters long`);
      assert.match(r.rejected[0]!.reason, /^field 'k+… \(10000 characters\)' is an array/);
    });
  });

  describe('old Mac (CR-only) line endings (item 5)', () => {
    it('hardening: in a CR-only CSV, rows after quoted multi-line fields keep their own line numbers', () => {
      const r = parseAudience(text('cr-only-multiline.csv'), 'csv', 'cr-only-multiline.csv');
      assert.deepEqual(
        r.rows.map((x) => x.email),
        ['a@example.com', 'c@example.com', 'd@example.com', 'e@example.com'],
      );
      assert.deepEqual(r.lines, [2, 5, 6, 9]);
      assert.deepEqual(r.rejected, [{ line: 4, value: 'bad', reason: 'expected 2 columns, found 1' }]);
      assert.equal(r.rows[2]!.fields.first_name, 'Dee\r\rThird line');
      // The same, read one character at a time (a CR at the end of a read says nothing yet).
      const lines: number[] = [];
      const reader = new AudienceReader('csv', 'cr-only-multiline.csv', (_row, line) => lines.push(line));
      for (const ch of text('cr-only-multiline.csv')) reader.push(ch);
      const scan = reader.end();
      assert.deepEqual(lines, [2, 5, 6, 9]);
      assert.deepEqual(
        scan.rejected.map((x) => x.line),
        [4],
      );
    });

    it('hardening: invalid UTF-8 in a CR-only CSV is refused naming its own line, not line 1', async () => {
      const err = await rejectionOf(scanAudienceFile(fixture('cr-only-latin1.csv')));
      assert.match(err.message, /^cr-only-latin1\.csv line 4: invalid UTF-8 bytes/);
    });
  });

  describe('duplicate JSONL keys (item 6)', () => {
    it('hardening: a JSONL object with a key twice ("email" or any other) is rejected naming the line and key, never keeping one of them', () => {
      const r = parseAudience(text('jsonl-duplicate-keys.jsonl'), 'jsonl', 'jsonl-duplicate-keys.jsonl');
      assert.deepEqual(
        r.rows.map((x) => x.email),
        ['a@example.com', 'f@example.com', 'g@example.com'],
      );
      assert.deepEqual(r.lines, [1, 6, 7]);
      // Quotes, backslashes and brackets inside keys and values are not keys.
      assert.deepEqual(r.rows[2]!.fields, { 'q"uote\\': 'va\\"l\\\\', first_name: 'G {"email": 1}', tags: '["x"]' });
      assert.deepEqual(
        r.rejected.map((x) => [x.line, x.reason]),
        [
          [2, "duplicate key 'email' (a JSON object names each key once)"],
          [3, "duplicate key 'first_name' (a JSON object names each key once)"],
          [4, "duplicate key 'first_name' (a JSON object names each key once)"],
          [5, "field 'note' is an object (only flat values are supported)"],
        ],
      );
    });
  });

  describe('progress when stderr is not a terminal (item 11)', () => {
    it('hardening: a live line off a terminal prints no progress, only its last line as a summary; on a terminal it redraws', () => {
      const piped = new Capture(false);
      const line = new LiveLine(piped as unknown as NodeJS.WriteStream);
      for (let done = 1000; done <= 1_000_000; done += 1000) line.update(`importing ${done}/1000000`);
      line.done();
      assert.equal(piped.written, 'importing 1000000/1000000\n');
      const tty = new Capture(true);
      const live = new LiveLine(tty as unknown as NodeJS.WriteStream);
      for (let done = 1; done <= 3; done++) live.update(`importing ${done}/3`);
      live.done();
      assert.equal(tty.written, '\r\x1b[2Kimporting 1/3\r\x1b[2Kimporting 2/3\r\x1b[2Kimporting 3/3\n');
    });

    it('hardening: off a terminal a live line prints a state change (paused, completed) and the lines printed above it, not each count', () => {
      const piped = new Capture(false);
      const line = new LiveLine(piped as unknown as NodeJS.WriteStream);
      line.update('[██░] 10% 10/100 · accepted 10 · running', 'running');
      line.update('[██░] 20% 20/100 · accepted 20 · running', 'running');
      line.print('⚠ switched a → b at recipient #21');
      line.update('[██░] 30% 30/100 · accepted 30 · running', 'running');
      line.update('[██░] 30% 30/100 · accepted 30 · paused: by operator', 'paused');
      line.update('[███] 100% 100/100 · accepted 100 · completed', 'completed');
      line.done();
      assert.deepEqual(piped.written.split('\n'), [
        '[██░] 10% 10/100 · accepted 10 · running',
        '⚠ switched a → b at recipient #21',
        '[██░] 30% 30/100 · accepted 30 · paused: by operator',
        '[███] 100% 100/100 · accepted 100 · completed',
        '',
      ]);
    });
  });

  describe('mailover suppress import (items 3, 4, 8, 11), as a process', () => {
    let env: NodeJS.ProcessEnv;
    let db: string;
    before(() => {
      db = path.join(dir, 'suppress.db');
      env = { MAILOVER_DB: db, DATABASE_URL: '', MAILOVER_CONFIG: path.join(dir, 'none.yaml') };
    });

    async function suppressedCount(): Promise<number> {
      const store = await openStore({ databaseUrl: '', sqlitePath: db });
      try {
        return (await store.listSuppressions()).length;
      } finally {
        await store.close();
      }
    }

    it('hardening: suppress import of a file with a 20 MB line exits 1 naming file, line and limit; nothing is added', async () => {
      const file = path.join(dir, 'long-line.jsonl');
      const out = fs.openSync(file, 'w');
      fs.writeSync(out, '{"email":"a@example.com"}\n{"email":"b@example.com","note":"');
      for (let i = 0; i < 20; i++) fs.writeSync(out, 'x'.repeat(1_000_000));
      fs.writeSync(out, '"}\n');
      fs.closeSync(out);
      const r = await cli(['suppress', 'import', file], env);
      assert.equal(r.code, 1, r.stdout);
      assert.equal(r.stderr, `mailover suppress import: long-line.jsonl line 2: line longer than ${MAX_LINE_LENGTH} characters (the limit for one row)\n`);
      assert.equal(await suppressedCount(), 0);
    });

    it('hardening: suppress import of a header-only file exits 1 with the reason; nothing is added', async () => {
      const r = await cli(['suppress', 'import', fixture('header-only.csv')], env);
      assert.equal(r.code, 1, r.stdout);
      assert.equal(r.stderr.trim(), 'mailover suppress import: header-only.csv: no valid addresses (0 rejected); nothing was added to the suppression list');
      assert.doesNotMatch(r.stdout, /suppressed/);
    });

    it('hardening: suppress import of a file whose every row is invalid exits 1 naming the first bad line; nothing is added', async () => {
      const r = await cli(['suppress', 'import', fixture('suppress-no-valid-rows.csv')], env);
      assert.equal(r.code, 1, r.stdout);
      assert.equal(
        r.stderr.trim(),
        'mailover suppress import: suppress-no-valid-rows.csv: no valid addresses (3 rejected, first: line 2: missing @); nothing was added to the suppression list',
      );
      const many = path.join(dir, 'many-invalid.csv');
      fs.writeFileSync(many, 'email\n' + 'not-an-address\n'.repeat(200_000));
      const m = await cli(['suppress', 'import', many], env);
      assert.equal(m.code, 1, m.stdout);
      assert.match(
        m.stderr,
        /^mailover suppress import: many-invalid\.csv: no valid addresses \(200000 rejected, first: line 2: missing @\); nothing was added to the suppression list\n$/,
      );
      assert.equal(await suppressedCount(), 0);
    });

    it('hardening: suppress import with stderr not a terminal prints one summary line, not a progress line per chunk', async () => {
      const file = path.join(dir, 'many.csv');
      fs.writeFileSync(file, 'email\n' + Array.from({ length: 30_000 }, (_, i) => `user${i}@example.com\n`).join(''));
      const r = await cli(['suppress', 'import', file], env);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^suppressed 30000 addresses from .*many\.csv \(0 already listed, 0 duplicates, 0 rejected\)$/m);
      assert.equal(r.stderr, 'suppressing 30000/30000\n');
      assert.equal(await suppressedCount(), 30_000);
    });

    it('hardening: suppress import of a file with a long header and no email column prints a short error, not the header', async () => {
      const file = path.join(dir, 'long-header.csv');
      fs.writeFileSync(file, `${'h'.repeat(500_000)},name\n`);
      const r = await cli(['suppress', 'import', file], env);
      assert.equal(r.code, 1);
      assert.ok(r.stderr.length < 400, `stderr is ${r.stderr.length} bytes`);
      assert.match(r.stderr, /^mailover suppress import: long-header\.csv: no 'email' column in header \(columns: h+… \(500006 characters\)\)\n$/);
    });
  });
});
