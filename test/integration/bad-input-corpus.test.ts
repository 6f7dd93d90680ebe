/**
 * The bad input corpus (issue 5): one fixture under test/fixtures/bad-input/ per case
 * (a few are generated), one test each. Every case ends in a clear error naming the
 * field, line or value, or in safe, documented handling; never a crash, nothing sent that
 * should not be, nothing lost (every row is imported, rejected with a reason, or a duplicate).
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { importAudienceFile, MAX_FIELD_CHARS, parseAudience, readAudienceFile } from '../../src/audience';
import { loadCampaignDefinition, parseCampaignDefinition, type CampaignDefinition } from '../../src/campaign-definition';
import { ConfigError, loadConfig } from '../../src/config';
import { InvalidCampaignError } from '../../src/errors';
import { launchCampaign } from '../../src/launch';
import { openStore } from '../../src/store/open-store';
import type { Store } from '../../src/store/types';
import { compileTemplate } from '../../src/template';
import { FAST, Harness, TEMPLATE as TEMPLATE_WITH_LINKS, uniqueId } from '../support/harness';
import { startDevServer } from '../support/temporal';

const sum = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);
const FIXTURES = path.join(__dirname, '..', '..', '..', 'test', 'fixtures', 'bad-input');
const fixture = (name: string) => path.join(FIXTURES, name);
const text = (name: string) => fs.readFileSync(fixture(name), 'utf8');
const PROVIDERS = ['smtp-primary', 'smtp-secondary'];
const TEMPLATE = { subject: 'Hello {{first_name}}', text: 'Hi {{first_name}}, our news.', html: '<p>Hi {{first_name}}</p>' };
/** A marketing campaign: TEMPLATE plus the unsubscribe link and postal address it must carry. */
const MARKETING = {
  subject: TEMPLATE.subject,
  text: `${TEMPLATE.text}\n\nUnsubscribe: {{unsubscribe_url}}\n{{postal_address}}`,
  html: `${TEMPLATE.html}<p><a href="{{unsubscribe_url}}">Unsubscribe</a> {{postal_address}}</p>`,
};
const definition = (id: string, over: Partial<CampaignDefinition> = {}): CampaignDefinition => ({
  id,
  from: 'News <news@example.org>',
  template: MARKETING,
  postalAddress: '1 Example Street, Exampleton',
  providers: PROVIDERS,
  batchSize: 100,
  ...over,
});

/** The error thrown by fn: must be one of ours (a clear error), never a TypeError or other crash. */
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

/** Every row of a parse is accounted for: imported, rejected or a duplicate. */
function accounted(r: ReturnType<typeof parseAudience>): number {
  return r.rows.length + r.rejected.length + r.duplicates.length;
}

/** launchCampaign fails its checks before it ever touches Temporal; this client must never be used. */
const NO_CLIENT = new Proxy({}, { get: () => assert.fail('the Temporal client must not be used') }) as unknown as Client;

describe('bad input corpus', function () {
  this.timeout(120_000);
  let dir: string;
  let store: Store;
  let n = 0;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailover-corpus-'));
    store = await openStore({ databaseUrl: '', sqlitePath: path.join(dir, 'corpus.db') });
  });
  after(async () => {
    await store?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function newCampaign(): Promise<string> {
    const id = `corpus-${++n}`;
    await store.createCampaign(definition(id));
    return id;
  }

  async function importFails(name: string, message: RegExp): Promise<void> {
    const cid = await newCampaign();
    const err = await rejectionOf(importAudienceFile(store, cid, fixture(name)));
    assert.match(err.message, message);
    assert.equal(await store.countAudience(cid), 0, 'nothing inserted');
  }

  describe('CSV quoting and structure', () => {
    it('bad input corpus: an unclosed quote names the file and line; nothing is imported', async () => {
      await importFails('csv-unclosed-quote.csv', /^csv-unclosed-quote\.csv line 3: unclosed quote$/);
    });

    it('bad input corpus: a quote inside an unquoted field names the line', async () => {
      await importFails('csv-quote-inside-field.csv', /^csv-quote-inside-field\.csv line 3: quote inside an unquoted field/);
    });

    it('bad input corpus: text after a closing quote names the line', async () => {
      await importFails('csv-text-after-closing-quote.csv', /^csv-text-after-closing-quote\.csv line 4: unexpected character after a closing quote$/);
    });

    it('bad input corpus: an unclosed quote after a valid multi-line field names the line where the bad field starts', async () => {
      await importFails('csv-unclosed-quote-after-multiline.csv', /csv-unclosed-quote-after-multiline\.csv line 5: unclosed quote/);
    });

    it('bad input corpus: an empty file is refused as empty', async () => {
      await importFails('empty.csv', /^empty\.csv: empty file \(expected a header row with an 'email' column\)$/);
    });

    it('bad input corpus: a header-only file has no recipients, and launch refuses it before storing anything', async () => {
      const r = parseAudience(text('header-only.csv'), 'csv', 'header-only.csv');
      assert.deepEqual([r.rows.length, r.rejected.length, r.duplicates.length], [0, 0, 0]);
      const id = uniqueId('header-only');
      const err = await rejectionOf(launchCampaign({ client: NO_CLIENT, store, definition: definition(id), audienceFile: fixture('header-only.csv') }));
      assert.match(err.message, /^header-only\.csv: no valid recipients \(0 rejected\)$/);
      assert.equal(await store.getCampaign(id), undefined);
    });

    it('bad input corpus: no email column lists the columns found', async () => {
      await importFails('no-email-column.csv', /^no-email-column\.csv: no 'email' column in header \(columns: name, mail\)$/);
    });

    it('bad input corpus: rows with an empty email are rejected by line, the rest imported', async () => {
      const cid = await newCampaign();
      const report = await importAudienceFile(store, cid, fixture('email-empty-on-rows.csv'));
      assert.equal(report.inserted, 2);
      assert.deepEqual(
        report.rejected.map((x) => [x.line, x.reason]),
        [
          [3, 'empty address'],
          [4, 'empty address'],
        ],
      );
    });

    it('bad input corpus: duplicate column names are refused naming the header line and column', async () => {
      await importFails('duplicate-columns.csv', /^duplicate-columns\.csv line 1: duplicate column 'first_name' in header$/);
    });

    it('bad input corpus: rows with more columns than the header are rejected by line with the counts', async () => {
      const r = parseAudience(text('extra-columns.csv'), 'csv', 'extra-columns.csv');
      assert.deepEqual(
        r.rows.map((x) => x.email),
        ['a@example.com'],
      );
      assert.deepEqual(r.rejected, [
        { line: 3, value: 'b@example.com,Bob,extra', reason: 'expected 2 columns, found 3' },
        { line: 4, value: 'c@example.com,Cy,,', reason: 'expected 2 columns, found 4' },
      ]);
    });

    it('bad input corpus: a semicolon-separated file is refused: no email column, with a hint about the delimiter', async () => {
      await importFails(
        'semicolon-delimiter.csv',
        /^semicolon-delimiter\.csv: no 'email' column in header \(columns: email;first_name\) — the file looks ';'-separated; save it as comma-separated CSV$/,
      );
    });

    it('bad input corpus: Windows line endings parse, keep line numbers and leave no CR in values', () => {
      const r = parseAudience(text('windows-line-endings.csv'), 'csv');
      assert.deepEqual(r.rows, [
        { email: 'a@example.com', fields: { first_name: 'Ann' } },
        { email: 'c@example.com', fields: { first_name: 'Cy\r\nSecond line' } },
        { email: 'd@example.com', fields: { first_name: 'Dee' } },
      ]);
      assert.deepEqual(r.rejected, [{ line: 3, value: 'bad', reason: 'missing @' }]);
      assert.deepEqual(r.lines, [2, 5, 7]);
    });

    it('bad input corpus: whitespace (spaces, tabs, no-break spaces) around header, addresses and values is trimmed', () => {
      const r = parseAudience(text('whitespace-padding.csv'), 'csv');
      assert.deepEqual(r.rows, [
        { email: 'a@example.com', fields: { first_name: 'Ann' } },
        { email: 'b@example.com', fields: { first_name: 'Bob' } },
        { email: 'c@example.com', fields: { first_name: 'Cy' } },
      ]);
      assert.equal(accounted(r), 3);
    });
  });

  describe('encodings', () => {
    it('bad input corpus: a UTF-8 byte-order mark in a CSV is skipped (the email column is found, values intact)', async () => {
      const cid = await newCampaign();
      const report = await importAudienceFile(store, cid, fixture('utf8-bom.csv'));
      assert.equal(report.inserted, 1);
      const [row] = await store.listRecipients(cid);
      assert.deepEqual([row!.email, row!.fields], ['a@example.com', { first_name: 'Zoë' }]);
    });

    it('bad input corpus: a UTF-8 byte-order mark in a JSONL file is skipped', () => {
      const r = parseAudience(text('utf8-bom.jsonl'), 'jsonl');
      assert.deepEqual(
        r.rows.map((x) => x.email),
        ['a@example.com', 'b@example.com'],
      );
      assert.deepEqual(r.rejected, []);
    });

    it('bad input corpus: UTF-16 LE with a byte-order mark is decoded on import; read as UTF-8 it is refused as UTF-16', async () => {
      const cid = await newCampaign();
      const report = await importAudienceFile(store, cid, fixture('utf16le-bom.csv'));
      assert.deepEqual([report.inserted, report.rejected.length], [2, 0]);
      const rows = await store.listRecipients(cid);
      assert.deepEqual(
        rows.map((r) => [r.email, r.fields.first_name]),
        [
          ['zoe@example.com', 'Zoë'],
          ['bjorn@example.com', 'Bjørn'],
        ],
      );
      // launch.ts reads the file as UTF-8 itself: that path gets a clear refusal, not garbage.
      const err = errorOf(() => parseAudience(text('utf16le-bom.csv'), 'csv', 'utf16le-bom.csv'));
      assert.match(err.message, /^utf16le-bom\.csv: file is UTF-16; save it as UTF-8/);
    });

    it('bad input corpus: UTF-16 BE with a byte-order mark is decoded on import', async () => {
      assert.equal(await readAudienceFile(fixture('utf16be-bom.csv')), await readAudienceFile(fixture('utf16le-bom.csv')));
      const cid = await newCampaign();
      const report = await importAudienceFile(store, cid, fixture('utf16be-bom.csv'));
      assert.equal(report.inserted, 2);
      const rows = await store.listRecipients(cid);
      assert.deepEqual(
        rows.map((r) => r.fields.first_name),
        ['Zoë', 'Bjørn'],
      );
    });

    it('bad input corpus: UTF-16 without a byte-order mark is refused naming the line (NUL byte)', async () => {
      await importFails('utf16le-no-bom.csv', /^utf16le-no-bom\.csv line 1: NUL byte .*save it as UTF-8$/);
    });

    it('bad input corpus: invalid UTF-8 bytes (a Latin-1 file) are refused naming the line; nothing imported', async () => {
      await importFails(
        'invalid-utf8.csv',
        /^invalid-utf8\.csv line 3: invalid UTF-8 bytes \(the file is probably Latin-1 \/ Windows-1252\); save it as UTF-8$/,
      );
    });
  });

  describe('JSONL', () => {
    it('bad input corpus: JSONL arrays and nested objects reject their line; numbers, booleans and null become text', () => {
      const r = parseAudience(text('jsonl-nested-values.jsonl'), 'jsonl');
      assert.deepEqual(r.rows, [{ email: 'a@example.com', fields: { first_name: 'Ann', age: '41', score: '1.5', vip: 'true', note: '' } }]);
      assert.deepEqual(
        r.rejected.map((x) => [x.line, x.reason]),
        [
          [2, "field 'tags' is an array (only flat values are supported)"],
          [3, "field 'address' is an object (only flat values are supported)"],
          [4, 'not a JSON object'],
          [5, 'not a JSON object'],
          [6, 'not a JSON object'],
          [7, "'email' is not a string"],
          [8, "'email' is not a string"],
        ],
      );
    });

    it('bad input corpus: JSONL with trailing commas rejects those lines as invalid JSON, naming them', () => {
      const r = parseAudience(text('jsonl-trailing-comma.jsonl'), 'jsonl');
      assert.deepEqual(
        r.rows.map((x) => x.email),
        ['a@example.com', 'd@example.com'],
      );
      assert.deepEqual(
        r.rejected.map((x) => x.line),
        [2, 3],
      );
      for (const x of r.rejected) assert.match(x.reason, /^invalid JSON: /);
      assert.equal(accounted(r), 4);
    });
  });

  describe('addresses', () => {
    it('bad input corpus: mixed-case addresses are lowercased; IDN domains become punycode (and dedupe with their punycode form); non-ASCII local parts are refused', () => {
      const r = parseAudience(text('mixed-case-and-idn.csv'), 'csv');
      assert.deepEqual(
        r.rows.map((x) => x.email),
        ['ann@example.com', 'zoe@xn--bcher-kva.example', 'bob@xn--xample-9ua.org'],
      );
      assert.deepEqual(r.duplicates, [{ line: 4, email: 'zoe@xn--bcher-kva.example', firstLine: 3 }]);
      assert.equal(r.rejected.length, 1);
      assert.equal(r.rejected[0]!.line, 6);
      assert.match(r.rejected[0]!.reason, /^non-ASCII characters \(only ASCII local parts/);
    });

    it('bad input corpus: plus tags and apostrophes are kept; quoted local parts are refused with a reason', () => {
      const r = parseAudience(text('plus-tags-and-quotes.csv'), 'csv');
      assert.deepEqual(
        r.rows.map((x) => x.email),
        ['ann+news@example.com', "o'brien@example.com"],
      );
      assert.deepEqual(
        r.rejected.map((x) => [x.line, x.value, x.reason]),
        [
          [3, '"ann lee"@example.com', 'contains spaces'],
          [4, '"ann"@example.com', 'invalid characters in local part'],
        ],
      );
      assert.deepEqual(r.duplicates, [{ line: 6, email: 'ann+news@example.com', firstLine: 2 }]);
    });

    it('bad input corpus: a 300-character address is rejected (longer than 254), its value clipped in the report', () => {
      const r = parseAudience(text('address-300-chars.csv'), 'csv');
      assert.deepEqual(
        r.rows.map((x) => x.email),
        ['ok@example.com'],
      );
      assert.equal(r.rejected.length, 1);
      assert.equal(r.rejected[0]!.line, 2);
      assert.equal(r.rejected[0]!.reason, 'longer than 254 characters');
      assert.ok(r.rejected[0]!.value.length <= 200, 'the reported value is clipped');
    });

    it('bad input corpus: CR/LF in an audience display name is dropped with the name; CR/LF after an address is refused', () => {
      const r = parseAudience(text('crlf-display-names.csv'), 'csv');
      // "Name <addr>": only the address is kept, the (injected) display name is discarded.
      assert.deepEqual(
        r.rows.map((x) => x.email),
        ['bob@example.com'],
      );
      assert.deepEqual(
        r.rejected.map((x) => [x.line, x.reason]),
        [[4, 'contains spaces']],
      );
      assert.ok(!r.rows.some((x) => x.email.includes('evil')));
    });
  });

  describe('merge values and templates', () => {
    it('bad input corpus: CR/LF in a merge value is folded in the subject and kept in the text', () => {
      const [row] = parseAudience(text('crlf-merge-values.csv'), 'csv').rows;
      const out = compileTemplate(TEMPLATE).render(row!.fields);
      assert.equal(out.subject, 'Hello Bob Bcc: victim@evil.example X-Evil: 1');
      assert.ok(!/[\r\n]/.test(out.subject));
      assert.equal(out.text, 'Hi Bob\r\nBcc: victim@evil.example\r\nX-Evil: 1, our news.');
    });

    it('bad input corpus: a line break in the subject template itself is folded to one line', () => {
      const def = loadCampaignDefinition(fixture('subject-with-line-break.yaml'), PROVIDERS);
      const out = compileTemplate(def.template).render(
        { first_name: 'Ann' },
        { unsubscribe_url: 'https://mail.example.org/u/t', postal_address: def.postalAddress },
      );
      assert.equal(out.subject, 'Hello Ann Bcc: victim@evil.example');
    });

    it('bad input corpus: script and HTML in merge values are escaped in html and kept literal in text', () => {
      const [row] = parseAudience(text('script-merge-values.csv'), 'csv').rows;
      const out = compileTemplate(TEMPLATE).render(row!.fields);
      assert.equal(out.html, '<p>Hi &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;b&gt;Ann&lt;/b&gt; &quot;q&quot;</p>');
      assert.equal(out.text, `Hi <script>alert('x')</script> & <b>Ann</b> "q", our news.`);
      assert.ok(!out.html!.includes('<script'));
    });

    it('bad input corpus: a 1 MB merge value rejects its row naming the field and size; other rows import (generated)', async () => {
      const file = path.join(dir, 'huge-value.csv');
      fs.writeFileSync(file, `email,first_name,bio\na@example.com,Ann,short\nb@example.com,Bob,"${'x'.repeat(1024 * 1024)}"\nc@example.com,Cy,ok\n`);
      const cid = await newCampaign();
      const report = await importAudienceFile(store, cid, file);
      assert.equal(report.inserted, 2);
      assert.deepEqual(report.rejected, [{ line: 3, value: 'b@example.com', reason: `field 'bio' is 1048576 characters long (limit ${MAX_FIELD_CHARS})` }]);
      // A value at the limit is fine and renders in full.
      const big = 'y'.repeat(MAX_FIELD_CHARS);
      assert.equal(compileTemplate(TEMPLATE).render({ first_name: big }).text.length, big.length + 'Hi , our news.'.length);
    });

    it('bad input corpus: a 100 KB subject template is refused with its length (limit 998); a 1 MB text is accepted (generated)', () => {
      const err = errorOf(() =>
        parseCampaignDefinition({ ...definition('big-subject'), transactional: true, template: { subject: 'S'.repeat(100 * 1024), text: 'hi' } }, PROVIDERS),
      );
      assert.deepEqual((err as InvalidCampaignError).problems, ['template.subject: longer than 998 characters (got 102400); a subject is one header line']);
      assert.ok(err.message.length < 500, 'the value is not echoed');
      const ok = parseCampaignDefinition(
        { ...definition('big-text'), transactional: true, template: { subject: 'S', text: 't'.repeat(1_000_000) } },
        PROVIDERS,
      );
      assert.equal(ok.template.text.length, 1_000_000);
    });

    it('bad input corpus: a javascript: or data: link from an unquoted href or from two merge values is refused at launch naming line, fields and link; nothing stored', async () => {
      const id = uniqueId('js-links-split');
      const template = {
        ...MARKETING,
        html: `<p>Hi {{first_name}}, <a title="a > b" href={{link}}>offer</a> <a href="{{scheme}}{{rest}}">more</a></p>${MARKETING.html}`,
      };
      const err = await rejectionOf(
        launchCampaign({
          client: NO_CLIENT,
          store,
          definition: definition(id, { template }),
          audienceFile: fixture('javascript-links-unquoted-and-split.csv'),
        }),
      );
      assert.match(err.message, /^4 recipient\(s\) have merge values the template cannot use \(nothing was stored or sent\)/);
      const allowed = String.raw`; allowed: http, https, mailto, tel\)`;
      assert.match(
        err.message,
        new RegExp(
          String.raw`line 3: bob@example\.com has an unsafe link in merge field 'link': "javascript:alert\(document\.cookie\)" \(scheme 'javascript:'` +
            allowed,
        ),
      );
      assert.match(
        err.message,
        new RegExp(
          String.raw`line 4: cy@example\.com has an unsafe link in merge fields 'scheme', 'rest': "javascript:alert\(1\)" \(scheme 'javascript:'` + allowed,
        ),
      );
      assert.match(
        err.message,
        new RegExp(
          String.raw`line 6: eve@example\.com has an unsafe link in merge fields 'scheme', 'rest': "javascript:alert\(1\)" \(scheme 'javascript:'` + allowed,
        ),
      );
      assert.match(
        err.message,
        new RegExp(
          String.raw`line 7: fay@example\.com has an unsafe link in merge fields 'scheme', 'rest': "data:text/html;base64,PHNjcmlwdD4=" \(scheme 'data:'` +
            allowed,
        ),
      );
      assert.doesNotMatch(err.message, /ann@example\.com|dee@example\.com/);
      assert.equal(await store.getCampaign(id), undefined, 'nothing stored');
    });

    it('bad input corpus: a merge field named like an Object property ({{constructor}}) is refused, not a crash', async () => {
      const template = { subject: 'Hi {{constructor}}', text: 'Hi {{toString}}' };
      const err = errorOf(() => parseCampaignDefinition({ ...definition('reserved'), transactional: true, template }, PROVIDERS));
      assert.deepEqual((err as InvalidCampaignError).problems, [
        "template.subject: merge field name 'constructor' at position 4 is reserved (pick another column name)",
        "template.text: merge field name 'toString' at position 4 is reserved (pick another column name)",
      ]);
      // launchCampaign with an unparsed definition: an invalid-campaign error, before anything is stored.
      const id = uniqueId('reserved');
      const e2 = await rejectionOf(
        launchCampaign({ client: NO_CLIENT, store, definition: definition(id, { template }), audienceFile: fixture('reserved-merge-field.csv') }),
        InvalidCampaignError,
      );
      assert.match(e2.message, /merge field name 'constructor'/);
      assert.equal(await store.getCampaign(id), undefined);
      // And rendering never reads an inherited property as a value.
      assert.throws(() => compileTemplate(TEMPLATE).render(Object.create({ first_name: 'inherited' })), /missing merge field 'first_name'/);
    });
  });

  describe('campaign definition and configuration files', () => {
    it('bad input corpus: a from with CR/LF in the display name is refused', () => {
      const err = errorOf(() => loadCampaignDefinition(fixture('from-with-crlf.yaml'), PROVIDERS));
      assert.match(
        err.message,
        /from: must be one line without control characters \(a line break could inject headers\), got "News\\r\\nBcc: victim@evil\.example <news@example\.org>"/,
      );
    });

    it('bad input corpus: a from with a line break after the address is refused', () => {
      const err = errorOf(() => loadCampaignDefinition(fixture('from-display-name-crlf-after.yaml'), PROVIDERS));
      assert.match(err.message, /from: must be one line/);
    });

    it('bad input corpus: an unknown provider name is refused, listing the configured ones', () => {
      const err = errorOf(() => loadCampaignDefinition(fixture('unknown-provider.yaml'), PROVIDERS));
      assert.deepEqual((err as InvalidCampaignError).problems, ["providers[1]: unknown provider 'sendgrid' (configured: smtp-primary, smtp-secondary)"]);
    });

    it('bad input corpus: a provider secret from a missing environment variable is named, never a crash', () => {
      const err = errorOf(() => loadConfig(fixture('config-missing-secret.yaml'), {}), ConfigError);
      assert.match(err.message, /providers\[0\]\.apiKey: environment variable MAILOVER_TEST_UNSET_MAILGUN_KEY is not set/);
    });

    it('bad input corpus: batchSize 0 is refused naming the field and value', () => {
      const err = errorOf(() => loadCampaignDefinition(fixture('batch-size-zero.yaml'), PROVIDERS));
      assert.deepEqual((err as InvalidCampaignError).problems, ['batchSize: expected a whole number from 1 to 1000, got 0']);
    });

    it('bad input corpus: batchesInFlight above the most a campaign may have in flight is refused naming the field and value', () => {
      const err = errorOf(() => loadCampaignDefinition(fixture('batches-in-flight-too-many.yaml'), PROVIDERS));
      assert.deepEqual((err as InvalidCampaignError).problems, ['batchesInFlight: expected a whole number from 1 to 32 (batches in flight at once), got 64']);
    });

    it('bad input corpus: a campaign file with batchesInFlight sends with that window', () => {
      const def = parseCampaignDefinition(
        {
          id: 'window-eight',
          from: 'News <news@example.org>',
          template: { subject: 'Receipt', text: 'Thanks' },
          providers: [PROVIDERS[0]],
          transactional: true,
          batchesInFlight: 8,
        },
        PROVIDERS,
      );
      assert.equal(def.batchesInFlight, 8);
    });

    it('bad input corpus: a negative batchSize is refused', () => {
      const err = errorOf(() => loadCampaignDefinition(fixture('batch-size-negative.yaml'), PROVIDERS));
      assert.deepEqual((err as InvalidCampaignError).problems, ['batchSize: expected a whole number from 1 to 1000, got -5']);
    });

    it('bad input corpus: a fractional batchSize is refused', () => {
      const err = errorOf(() => loadCampaignDefinition(fixture('batch-size-fractional.yaml'), PROVIDERS));
      assert.deepEqual((err as InvalidCampaignError).problems, ['batchSize: expected a whole number from 1 to 1000, got 2.5']);
    });

    it('bad input corpus: a quoted (string) batchSize is refused, not coerced', () => {
      const err = errorOf(() => loadCampaignDefinition(fixture('batch-size-string.yaml'), PROVIDERS));
      assert.deepEqual((err as InvalidCampaignError).problems, ['batchSize: expected a whole number from 1 to 1000, got "100"']);
    });

    it('bad input corpus: a campaign YAML that is not a mapping is refused naming the file', () => {
      const err = errorOf(() => loadCampaignDefinition(fixture('campaign-not-a-mapping.yaml'), PROVIDERS));
      assert.match(err.message, /campaign-not-a-mapping\.yaml: expected a mapping with id, from, template, providers/);
    });

    it('bad input corpus: invalid YAML is refused naming the file and the parser position', () => {
      const err = errorOf(() => loadCampaignDefinition(fixture('campaign-invalid-yaml.yaml'), PROVIDERS));
      assert.match(err.message, /campaign-invalid-yaml\.yaml: invalid YAML: .*line \d+/s);
    });

    it('bad input corpus: a duplicate campaign id is refused by the store with a clear message; the first is untouched', async () => {
      const id = uniqueId('dup-store');
      await store.createCampaign(definition(id));
      await store.importAudience(id, [{ email: 'a@example.com', fields: { first_name: 'Ann' } }]);
      await assert.rejects(store.createCampaign(definition(id, { from: 'other@example.org' })), new RegExp(`^Error: campaign '${id}' already exists$`));
      assert.equal((await store.getCampaign(id))!.from, 'News <news@example.org>');
      assert.equal(await store.countAudience(id), 1);
    });
  });

  describe('scale', () => {
    it('bad input corpus: a 1,000,000-row CSV (generated in the temp dir) imports into SQLite in reasonable time and memory', async function () {
      this.timeout(300_000);
      const ROWS = 1_000_000;
      const file = path.join(os.tmpdir(), `mailover-million-${process.pid}-${Date.now()}.csv`);
      try {
        const out = fs.createWriteStream(file);
        out.write('email,first_name,city\n');
        for (let i = 0; i < ROWS; i += 10_000) {
          let chunk = '';
          for (let j = i; j < i + 10_000; j++) chunk += `user${j}@example.com,User${j},City${j % 97}\n`;
          if (!out.write(chunk)) await new Promise((r) => out.once('drain', () => r(undefined)));
        }
        await new Promise<void>((res, rej) => out.end((err?: Error | null) => (err ? rej(err) : res())));
        const cid = await newCampaign();
        const started = Date.now();
        const heapBefore = process.memoryUsage().rss;
        let calls = 0;
        const report = await importAudienceFile(store, cid, file, { onProgress: () => calls++ });
        const seconds = (Date.now() - started) / 1000;
        const rssGrowthMb = (process.memoryUsage().rss - heapBefore) / 1024 / 1024;
        assert.deepEqual([report.inserted, report.duplicates, report.rejected.length], [ROWS, 0, 0]);
        assert.equal(await store.countAudience(cid), ROWS);
        assert.equal(calls, ROWS / 1000);
        console.log(`      1,000,000 rows imported in ${seconds.toFixed(1)} s (rss +${rssGrowthMb.toFixed(0)} MB)`);
        assert.ok(seconds < 240, `took ${seconds} s`);
        // Read as a stream: what stays is one set of the addresses seen (+660 MB when the file was held whole).
        assert.ok(rssGrowthMb < 1024, `resident memory grew by ${rssGrowthMb} MB`);
      } finally {
        fs.rmSync(file, { force: true });
      }
    });
  });

  describe('launching (real Temporal dev server)', () => {
    let env: TestWorkflowEnvironment;
    let h: Harness;
    before(async () => {
      env = await startDevServer();
      h = await Harness.create({ env });
      await h.startWorker();
    });
    after(async () => {
      await h?.close();
      await env?.teardown();
    });

    it('bad input corpus: a template field the audience lacks is refused at launch naming line and field; nothing stored, started or sent', async () => {
      const id = uniqueId('lacks-field');
      const template = { subject: 'Hello {{first_name}}', text: 'See you in {{city}}' };
      const err = await rejectionOf(
        launchCampaign({
          client: h.client,
          store: h.store,
          definition: definition(id, { template }),
          audienceFile: fixture('missing-merge-field.csv'),
          taskQueue: h.taskQueue,
        }),
      );
      assert.match(err.message, /missing-merge-field\.csv line 2: a@example\.com has no value for merge field 'city'/);
      assert.match(err.message, /missing-merge-field\.csv line 3: b@example\.com has no value for merge field 'city'/);
      assert.equal(await h.store.getCampaign(id), undefined, 'nothing stored');
      await assert.rejects(h.client.workflow.getHandle(id).describe(), WorkflowNotFoundError, 'no workflow started');
      assert.equal(h.deliveries().size, 0, 'nothing sent');
    });

    it('bad input corpus: a merge value that would give a link a javascript: or data: URL is refused at launch naming line, field and value; nothing stored or sent', async () => {
      const id = uniqueId('js-links');
      const template = { ...MARKETING, html: `<p>Hi {{first_name}}, <a href="{{link}}">see the offer</a></p>${MARKETING.html}` };
      const err = await rejectionOf(
        launchCampaign({
          client: h.client,
          store: h.store,
          definition: definition(id, { template }),
          audienceFile: fixture('javascript-links.csv'),
          taskQueue: h.taskQueue,
        }),
      );
      assert.match(err.message, /^3 recipient\(s\) have merge values the template cannot use \(nothing was stored or sent\)/);
      assert.match(
        err.message,
        /javascript-links\.csv line 3: bob@example\.com has an unsafe link in merge field 'link': "javascript:alert\(document\.cookie\)" \(scheme 'javascript:'; allowed: http, https, mailto, tel\)/,
      );
      assert.match(err.message, /javascript-links\.csv line 4: cy@example\.com has an unsafe link in merge field 'link': .*\(scheme 'javascript:'/);
      assert.match(err.message, /javascript-links\.csv line 6: eve@example\.com has an unsafe link in merge field 'link': .*\(scheme 'data:'/);
      assert.doesNotMatch(err.message, /ann@example\.com|dee@example\.com/);
      assert.equal(await h.store.getCampaign(id), undefined, 'nothing stored');
      assert.equal(h.deliveries().size, 0, 'nothing sent');
    });

    it('bad input corpus: a javascript: link that reaches a send (a campaign started without the launch check) rejects that recipient with the reason; the others go out', async () => {
      const id = uniqueId('js-send');
      const template = { ...TEMPLATE_WITH_LINKS, html: `${TEMPLATE_WITH_LINKS.html}<a href="{{link}}">offer</a>` };
      const rows = [
        { email: 'fine@js-send.example', fields: { first_name: 'Fine', link: 'https://example.org/offer' } },
        { email: 'evil@js-send.example', fields: { first_name: 'Evil', link: ' JavaScript:alert(1)' } },
      ];
      const result = await (await h.launch(id, rows, { template })).result();
      assert.deepEqual([result.status, sum(result.acceptedByProvider), result.rejected], ['completed', 1, 1]);
      const evil = (await h.store.listRecipients(id)).find((r) => r.email === 'evil@js-send.example');
      assert.equal(evil?.state, 'rejected');
      assert.match(evil?.lastError ?? '', /unsafe link in merge field 'link': " JavaScript:alert\(1\)" \(scheme 'javascript:'/);
      assert.equal(h.deliveries().get('evil@js-send.example'), undefined, 'never sent');
      assert.equal(h.deliveries().get('fine@js-send.example'), 1);
    });

    it('bad input corpus: CR/LF header injection in a merge value, end to end: one recipient, one-line subject, no injected header', async () => {
      const id = uniqueId('crlf-e2e');
      const before = h.primary.messages.length + h.secondary.messages.length;
      const report = await launchCampaign({
        client: h.client,
        store: h.store,
        definition: definition(id),
        audienceFile: fixture('crlf-merge-values.csv'),
        taskQueue: h.taskQueue,
        options: FAST,
      });
      assert.equal(report.inserted, 1);
      const result = await h.client.workflow.getHandle(id).result();
      assert.equal(result.accepted, 1);
      const msgs = [...h.primary.messages, ...h.secondary.messages].slice(before);
      assert.equal(msgs.length, 1);
      assert.deepEqual(msgs[0]!.to, ['bob@example.com']);
      assert.equal(msgs[0]!.subject, 'Hello Bob Bcc: victim@evil.example X-Evil: 1');
      assert.equal(msgs[0]!.headers['x-evil'], undefined);
      assert.equal(msgs[0]!.headers['bcc'], undefined);
      assert.equal(h.deliveries().get('victim@evil.example'), undefined, 'the injected address got nothing');
    });

    it('bad input corpus: a duplicate campaign id is refused at launch; the first campaign is sent once, the second audience never', async () => {
      const id = uniqueId('dup-launch');
      const first = await launchCampaign({
        client: h.client,
        store: h.store,
        definition: definition(id),
        audienceFile: fixture('duplicate-campaign-id.csv'),
        taskQueue: h.taskQueue,
        options: FAST,
      });
      assert.equal(first.inserted, 2);
      await h.client.workflow.getHandle(id).result();
      const other = path.join(h.dir, 'second.csv');
      fs.writeFileSync(other, 'email,first_name\nzed@example.com,Zed\n');
      const err = await rejectionOf(
        launchCampaign({ client: h.client, store: h.store, definition: definition(id), audienceFile: other, taskQueue: h.taskQueue, options: FAST }),
        Error,
      );
      assert.equal(err.name, 'CampaignAlreadyStartedError');
      assert.match(err.message, new RegExp(`campaign '${id}' already exists in the store; a campaign runs once \\(pick a new id\\)`));
      assert.equal(await h.store.countAudience(id), 2);
      assert.equal(h.deliveries().get('zed@example.com'), undefined, 'the second audience was never sent');
      assert.equal(h.deliveries().get('a@example.com'), 1);
      assert.equal(h.deliveries().get('b@example.com'), 1);
    });
  });
});
