import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { normaliseAddress } from '../../src/address';
import { detectAudienceFormat, importAudienceFile, insertAudienceFile, parseAudience, scanAudienceFile } from '../../src/audience';
import type { AudienceRow } from '../../src/store/types';
import { InvalidCampaignError } from '../../src/errors';
import { openStore } from '../../src/store/open-store';
import type { Store } from '../../src/store/types';

describe('address normalisation', () => {
  it('trims, unwraps "Name <addr>" and lowercases', () => {
    assert.deepEqual(normaliseAddress('  Ann.Lee+news@Example.COM '), { ok: true, email: 'ann.lee+news@example.com' });
    assert.deepEqual(normaliseAddress('Ann Lee <Ann@Example.org>'), { ok: true, email: 'ann@example.org' });
    assert.deepEqual(normaliseAddress('"Lee, Ann" <ann@mail.example.co.uk>'), { ok: true, email: 'ann@mail.example.co.uk' });
  });

  it('rejects malformed addresses with a short reason', () => {
    const cases: Array<[string, RegExp]> = [
      ['', /empty/],
      ['   ', /empty/],
      ['ann.example.com', /missing @/],
      ['ann@@example.com', /more than one @/],
      ['a@b@example.com', /more than one @/],
      ['@example.com', /empty local part/],
      ['ann@', /empty domain/],
      ['ann@localhost', /domain has no dot/],
      ['ann lee@example.com', /spaces/],
      ['ann..lee@example.com', /consecutive dots/],
      ['ann@example..com', /consecutive dots/],
      ['.ann@example.com', /local part starts or ends with a dot/],
      ['ann@.example.com', /domain starts or ends with a dot/],
      ['ann(x)@example.com', /invalid characters/],
      ['ann@exa_mple.com', /invalid characters in domain/],
      ['ann@-example.com', /invalid characters in domain/],
      ['ännа@example.com', /non-ASCII/],
      [`${'a'.repeat(65)}@example.com`, /local part longer than 64/],
      [`ann@${Array(5).fill('d'.repeat(60)).join('.')}.com`, /longer than 254/],
      ['Ann <ann@example.com', /invalid characters/],
    ];
    for (const [input, reason] of cases) {
      const r = normaliseAddress(input);
      assert.equal(r.ok, false, `${JSON.stringify(input)} should be rejected`);
      if (!r.ok) assert.match(r.reason, reason, `${JSON.stringify(input)}: ${r.reason}`);
    }
  });
});

describe('audience format detection', () => {
  it('maps extensions to formats and names the file otherwise', () => {
    assert.equal(detectAudienceFormat('/x/list.csv'), 'csv');
    assert.equal(detectAudienceFormat('LIST.CSV'), 'csv');
    assert.equal(detectAudienceFormat('a.jsonl'), 'jsonl');
    assert.equal(detectAudienceFormat('a.ndjson'), 'jsonl');
    assert.throws(() => detectAudienceFormat('people.xlsx'), /people\.xlsx.*\.xlsx/);
    assert.throws(() => detectAudienceFormat('people'), /people/);
  });
});

describe('audience CSV parsing', () => {
  it('parses a header with an email column (any case) into rows with merge fields', () => {
    const r = parseAudience('Email, first ,city\nann@example.com, Ann ,Paris\nBob@Example.com,Bob,Oslo\n', 'csv');
    assert.deepEqual(r.rows, [
      { email: 'ann@example.com', fields: { first: 'Ann', city: 'Paris' } },
      { email: 'bob@example.com', fields: { first: 'Bob', city: 'Oslo' } },
    ]);
    assert.deepEqual(r.rejected, []);
    assert.deepEqual(r.duplicates, []);
  });

  it('reports invalid addresses with their line number, value and reason', () => {
    const csv = ['email,name', 'ok@example.com,A', 'not-an-address,B', '', 'x@localhost,C', 'ok2@example.com,D'].join('\n');
    const r = parseAudience(csv, 'csv');
    assert.deepEqual(
      r.rows.map((x) => x.email),
      ['ok@example.com', 'ok2@example.com'],
    );
    assert.deepEqual(r.rejected, [
      { line: 3, value: 'not-an-address', reason: 'missing @' },
      { line: 5, value: 'x@localhost', reason: 'domain has no dot' },
    ]);
  });

  it('drops duplicates (after normalisation) and lists both line numbers', () => {
    const csv = 'email,n\na@example.com,1\nb@example.com,2\nA@EXAMPLE.com,3\nAnn <b@example.com>,4\na@example.com,5\n';
    const r = parseAudience(csv, 'csv');
    assert.deepEqual(r.rows, [
      { email: 'a@example.com', fields: { n: '1' } },
      { email: 'b@example.com', fields: { n: '2' } },
    ]);
    assert.deepEqual(r.duplicates, [
      { line: 4, email: 'a@example.com', firstLine: 2 },
      { line: 5, email: 'b@example.com', firstLine: 3 },
      { line: 6, email: 'a@example.com', firstLine: 2 },
    ]);
  });

  it('handles CRLF line endings and a byte-order mark', () => {
    const csv = '\ufeffemail,name\r\na@example.com,Ann\r\nbad,Bob\r\n\r\nc@example.com,Cy\r\n';
    const r = parseAudience(csv, 'csv');
    assert.deepEqual(r.rows, [
      { email: 'a@example.com', fields: { name: 'Ann' } },
      { email: 'c@example.com', fields: { name: 'Cy' } },
    ]);
    assert.deepEqual(r.rejected, [{ line: 3, value: 'bad', reason: 'missing @' }]);
  });

  it('keeps quoted fields with commas and newlines, and later line numbers stay right', () => {
    for (const nl of ['\n', '\r\n']) {
      const csv = [
        'email,address,note',
        'a@example.com,"1 Main St, Springfield","two',
        'lines"',
        'b@example.com,"He said ""hi""",plain',
        'c@example.com,"x,',
        'y,',
        'z",é',
        'bad@,"q",r',
        'd@example.com,only-two',
      ].join(nl);
      const r = parseAudience(csv, 'csv');
      assert.deepEqual(r.rows, [
        { email: 'a@example.com', fields: { address: '1 Main St, Springfield', note: `two${nl}lines` } },
        { email: 'b@example.com', fields: { address: 'He said "hi"', note: 'plain' } },
        { email: 'c@example.com', fields: { address: `x,${nl}y,${nl}z`, note: 'é' } },
      ]);
      assert.deepEqual(r.rejected, [
        { line: 8, value: 'bad@', reason: 'empty domain' },
        { line: 9, value: 'd@example.com,only-two', reason: 'expected 3 columns, found 2' },
      ]);
    }
  });

  it('rejects rows with the wrong number of columns, naming the line', () => {
    const r = parseAudience('email,a,b\nx@example.com,1,2\ny@example.com,1\nz@example.com,1,2,3\n', 'csv');
    assert.deepEqual(
      r.rows.map((x) => x.email),
      ['x@example.com'],
    );
    assert.deepEqual(
      r.rejected.map((x) => [x.line, x.reason]),
      [
        [3, 'expected 3 columns, found 2'],
        [4, 'expected 3 columns, found 4'],
      ],
    );
  });

  it('fails on a header without an email column, listing the columns', () => {
    assert.throws(
      () => parseAudience('name,city\nAnn,Paris\n', 'csv'),
      (err: Error) => err instanceof InvalidCampaignError && err.message === "audience: no 'email' column in header (columns: name, city)",
    );
    assert.throws(() => parseAudience('email,EMAIL\na@example.com,b@example.com\n', 'csv', 'list.csv'), /list\.csv line 1: more than one 'email' column/);
    assert.throws(() => parseAudience('email,x,x\na@example.com,1,2\n', 'csv'), /duplicate column 'x'/);
  });

  it('fails on an empty file', () => {
    for (const content of ['', '\n\n', '\r\n']) {
      assert.throws(
        () => parseAudience(content, 'csv', 'empty.csv'),
        (err: Error) => err instanceof InvalidCampaignError && /empty\.csv: empty file/.test(err.message),
      );
    }
  });

  it('fails on an unterminated quote with an error naming the file and line', () => {
    const csv = 'email,name\na@example.com,Ann\n"b@example.com,Bob\nc@example.com,Cy\n';
    assert.throws(
      () => parseAudience(csv, 'csv', 'audience.csv'),
      (err: Error) => err instanceof InvalidCampaignError && err.message === 'audience.csv line 3: unclosed quote',
    );
    const crlf = 'email,name\r\na@example.com,"multi\r\nline"\r\nb@example.com,Bob\r\nc@example.com,"Cy\r\n';
    assert.throws(() => parseAudience(crlf, 'csv', 'audience.csv'), /^InvalidCampaignError: audience\.csv line 5: unclosed quote$/);
  });

  it('fails on a stray quote with an error naming the line', () => {
    assert.throws(() => parseAudience('email,name\na@example.com,"Ann"x\n', 'csv', 'f.csv'), /f\.csv line 2: unexpected character after a closing quote/);
    assert.throws(() => parseAudience('email,name\na@example.com,ok\nb@example.com,An"n\n', 'csv', 'f.csv'), /f\.csv line 3: quote inside an unquoted field/);
  });
});

describe('audience JSONL parsing', () => {
  it('parses one object per line; non-string values become strings; blank lines skipped', () => {
    const jsonl = ['{"email":"Ann@Example.com","first":"Ann","age":41,"vip":true,"note":null}', '', '  ', '{"EMAIL":"bob@example.com"}'].join('\n');
    const r = parseAudience(jsonl, 'jsonl');
    assert.deepEqual(r.rows, [
      { email: 'ann@example.com', fields: { first: 'Ann', age: '41', vip: 'true', note: '' } },
      { email: 'bob@example.com', fields: {} },
    ]);
    assert.deepEqual(r.rejected, []);
  });

  it('reports bad JSON, non-objects, missing email, nested values and bad addresses by line', () => {
    const jsonl = [
      '{"email":"a@example.com"}',
      '{"email": "b@example.com",',
      '[1,2]',
      '{"name":"no email"}',
      '{"email":"c@example.com","address":{"city":"Paris"}}',
      '{"email":42}',
      '{"email":"nope"}',
      '{"email":"A@example.com"}',
    ].join('\r\n');
    const r = parseAudience(jsonl, 'jsonl');
    assert.deepEqual(
      r.rows.map((x) => x.email),
      ['a@example.com'],
    );
    assert.deepEqual(r.duplicates, [{ line: 8, email: 'a@example.com', firstLine: 1 }]);
    const got = r.rejected.map((x) => [x.line, x.reason]);
    assert.equal(got.length, 6);
    assert.equal(got[0]![0], 2);
    assert.match(String(got[0]![1]), /^invalid JSON: /);
    assert.equal(r.rejected[0]!.value, '{"email": "b@example.com",');
    assert.deepEqual(got.slice(1), [
      [3, 'not a JSON object'],
      [4, "no 'email' key"],
      [5, "field 'address' is an object (only flat values are supported)"],
      [6, "'email' is not a string"],
      [7, 'missing @'],
    ]);
  });

  it('fails on an empty file', () => {
    assert.throws(() => parseAudience('\n \n', 'jsonl', 'a.jsonl'), /a\.jsonl: empty file/);
  });
});

describe('importAudienceFile', function () {
  this.timeout(10_000);
  let dir: string;
  let store: Store;
  const cid = 'import-test';

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailover-audience-'));
    store = await openStore({ databaseUrl: '', sqlitePath: path.join(dir, 'db.sqlite') });
    await store.createCampaign({ id: cid, from: 'x@example.com', template: { subject: 's', text: 't' }, providers: ['a'], batchSize: 100 });
  });
  after(async () => {
    await store?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('inserts nothing when the file is malformed', async () => {
    const file = path.join(dir, 'broken.csv');
    fs.writeFileSync(file, 'email,name\na@example.com,Ann\nb@example.com,"Bob\n');
    await assert.rejects(importAudienceFile(store, cid, file), /broken\.csv line 3: unclosed quote/);
    assert.equal(await store.countAudience(cid), 0);
    await assert.rejects(importAudienceFile(store, cid, path.join(dir, 'list.txt')), /list\.txt/);
    assert.equal(await store.countAudience(cid), 0);
  });

  it('inserts valid rows in chunks, reporting progress, duplicates and rejections', async () => {
    const file = path.join(dir, 'people.csv');
    const lines = ['email,first'];
    for (let i = 1; i <= 2500; i++) lines.push(`user${i}@example.com,U${i}`);
    lines.push('user7@example.com,again', 'broken,x');
    fs.writeFileSync(file, lines.join('\n') + '\n');
    const progress: Array<[number, number]> = [];
    const report = await importAudienceFile(store, cid, file, { onProgress: (d, t) => progress.push([d, t]) });
    assert.deepEqual(report, { inserted: 2500, duplicates: 1, rejected: [{ line: 2503, value: 'broken', reason: 'missing @' }] });
    assert.deepEqual(progress, [
      [1000, 2500],
      [2000, 2500],
      [2500, 2500],
    ]);
    assert.equal(await store.countAudience(cid), 2500);
    const rows = await store.listRecipients(cid);
    assert.deepEqual([rows[0]!.seq, rows[0]!.email, rows[0]!.fields], [1, 'user1@example.com', { first: 'U1' }]);

    // importing again: everything is already there
    const jsonl = path.join(dir, 'more.jsonl');
    fs.writeFileSync(jsonl, '{"email":"user1@example.com"}\n{"email":"new@example.com","first":"N"}\n');
    assert.deepEqual(await importAudienceFile(store, cid, jsonl), { inserted: 1, duplicates: 1, rejected: [] });
    assert.equal(await store.maxSeq(cid), 2501);
  });
});

describe('audience files read as a stream', function () {
  this.timeout(60_000);
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailover-stream-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** A CSV of `n` rows far larger than one read: multi-byte names, quoted commas and line breaks, bad and duplicate rows. */
  function bigCsv(n: number, eol: string): string {
    const lines = [`email,name,note`];
    for (let i = 1; i <= n; i++) {
      if (i % 997 === 0) lines.push(`broken${i},x,y`);
      else if (i % 1009 === 0) lines.push(`user${i - 1}@example.com,dup,again`);
      else if (i % 101 === 0) lines.push(`user${i}@example.com,"Zoë, ${i}","two${eol}lines ✉"`);
      else lines.push(`user${i}@example.com,Åsa ${i} 名前,note ${'é'.repeat(i % 7)}`);
    }
    return lines.join(eol) + eol;
  }

  async function scanned(file: string): Promise<{ rows: AudienceRow[]; lines: number[]; rejected: unknown; duplicates: unknown }> {
    const rows: AudienceRow[] = [];
    const lines: number[] = [];
    const scan = await scanAudienceFile(file, (row, line) => {
      rows.push(row);
      lines.push(line);
    });
    return { rows, lines, rejected: scan.rejected, duplicates: scan.duplicates };
  }

  for (const [name, eol] of [
    ['LF', '\n'],
    ['CRLF', '\r\n'],
  ] as const) {
    it(`a ${name} file of many reads gives exactly the rows, lines, rejections and duplicates of the same text parsed whole`, async () => {
      const text = bigCsv(30_000, eol);
      assert.ok(Buffer.byteLength(text) > 4 * 256 * 1024, 'spans several reads');
      const file = path.join(dir, `big-${name}.csv`);
      fs.writeFileSync(file, text);
      const whole = parseAudience(text, 'csv', `big-${name}.csv`);
      const streamed = await scanned(file);
      assert.ok(whole.rejected.length > 20 && whole.duplicates.length > 20);
      assert.deepEqual(streamed, whole);
      // Line numbers count the line breaks inside quoted fields.
      const i = whole.rows.findIndex((r) => r.email === 'user202@example.com');
      assert.equal(whole.lines[i], 202 + 1 + 1, 'the header is line 1 and row 101 holds one line break');
    });
  }

  it('a JSONL file of many reads (multi-byte text split across reads, bad lines, duplicates) gives exactly what the same text parsed whole gives', async () => {
    const lines: string[] = [];
    for (let i = 1; i <= 30_000; i++) {
      if (i % 997 === 0) lines.push('{"email": "broken');
      else if (i % 1009 === 0) lines.push(JSON.stringify({ email: `user${i - 1}@example.com`, name: 'dup' }));
      else lines.push(JSON.stringify({ email: `user${i}@example.com`, name: `Åsa ${i} 名前 ✉`, n: i }));
    }
    const text = lines.join('\r\n') + '\r\n';
    assert.ok(Buffer.byteLength(text) > 4 * 256 * 1024, 'spans several reads');
    const file = path.join(dir, 'big.jsonl');
    fs.writeFileSync(file, text);
    const whole = parseAudience(text, 'jsonl', 'big.jsonl');
    assert.ok(whole.rejected.length > 20 && whole.duplicates.length > 20);
    assert.deepEqual(await scanned(file), whole);
  });

  it('a UTF-16 file of many reads (LE and BE) gives the same rows as its UTF-8 text', async () => {
    const text = bigCsv(20_000, '\r\n');
    const utf8 = parseAudience(text, 'csv', 'x.csv');
    const le = path.join(dir, 'le.csv');
    fs.writeFileSync(le, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]));
    const be = path.join(dir, 'be.csv');
    fs.writeFileSync(be, Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(text, 'utf16le').swap16()]));
    assert.deepEqual((await scanned(le)).rows, utf8.rows);
    assert.deepEqual((await scanned(be)).rows, utf8.rows);
  });

  it('an invalid UTF-8 byte deep in a large file is refused naming its line, however the reads fall', async () => {
    const text = bigCsv(20_000, '\n');
    const lines = text.split('\n');
    const target = lines.findIndex((l) => l.startsWith('user15000@')) + 1;
    const file = path.join(dir, 'latin1.csv');
    const [before, after] = [lines.slice(0, target - 1).join('\n') + '\n', '\n' + lines.slice(target).join('\n')];
    fs.writeFileSync(file, Buffer.concat([Buffer.from(before), Buffer.from('user15000@example.com,Ren\xe9,x', 'latin1'), Buffer.from(after)]));
    await assert.rejects(scanAudienceFile(file), new RegExp(`^InvalidCampaignError: latin1\\.csv line ${target}: invalid UTF-8 bytes`));
  });

  it('an unclosed quote near the end of a large file is refused naming its line; nothing is inserted', async () => {
    const store = await openStore({ databaseUrl: '', sqlitePath: path.join(dir, 'db.sqlite') });
    try {
      await store.createCampaign({ id: 'late-error', from: 'x@example.com', template: { subject: 's', text: 't' }, providers: ['a'], batchSize: 100 });
      const text = bigCsv(20_000, '\n') + 'last@example.com,"never closed,x\n';
      const file = path.join(dir, 'late.csv');
      fs.writeFileSync(file, text);
      const line = text.split('\n').length - 1;
      await assert.rejects(importAudienceFile(store, 'late-error', file), new RegExp(`late\\.csv line ${line}: unclosed quote`));
      assert.equal(await store.countAudience('late-error'), 0);
    } finally {
      await store.close();
    }
  });

  it('a file that changed between its check and its import is an error saying so', async () => {
    const store = await openStore({ databaseUrl: '', sqlitePath: path.join(dir, 'db2.sqlite') });
    try {
      await store.createCampaign({ id: 'changed', from: 'x@example.com', template: { subject: 's', text: 't' }, providers: ['a'], batchSize: 100 });
      const file = path.join(dir, 'changing.csv');
      fs.writeFileSync(file, 'email\na@example.com\nb@example.com\n');
      const scan = await scanAudienceFile(file);
      fs.writeFileSync(file, 'email\na@example.com\n');
      await assert.rejects(
        insertAudienceFile(store, 'changed', file, scan),
        /^InvalidCampaignError: changing\.csv changed while it was being imported \(2 valid rows when checked, 1 now\); 0 row\(s\) of campaign 'changed' were inserted$/,
      );
      // The same number of rows, but not the rows that were checked.
      fs.writeFileSync(file, 'email\na@example.com\nb@example.com\n');
      const again = await scanAudienceFile(file);
      fs.writeFileSync(file, 'email\nx@example.com\ny@example.com\n');
      await assert.rejects(
        insertAudienceFile(store, 'changed', file, again),
        /^InvalidCampaignError: changing\.csv changed while it was being imported \(its content differs from what was checked\); 0 row\(s\) of campaign 'changed' were inserted$/,
      );
      assert.equal(await store.countAudience('changed'), 0);
    } finally {
      await store.close();
    }
  });
});
