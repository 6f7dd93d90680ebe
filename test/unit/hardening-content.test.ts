/**
 * Hardening from outside (issue 16), what a campaign carries: links that merge values assemble
 * (checked as the attribute value renders, refresh `<meta>` included) and the sender (`from`:
 * exactly one mailbox whose display name is not an address). Cases from the bad input corpus
 * (test/fixtures/bad-input/); launch checks run against a real SQLite store and fail before
 * Temporal is touched.
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Client } from '@temporalio/client';
import { loadCampaignDefinition, parseCampaignDefinition, type CampaignDefinition } from '../../src/campaign-definition';
import { parseDrillSettings } from '../../src/drill-settings';
import { InvalidCampaignError } from '../../src/errors';
import { launchCampaign } from '../../src/launch';
import { openStore } from '../../src/store/open-store';
import type { Store } from '../../src/store/types';
import { compileTemplate, TemplateError } from '../../src/template';
import { uniqueId } from '../support/harness';

const FIXTURES = path.join(__dirname, '..', '..', '..', 'test', 'fixtures', 'bad-input');
const fixture = (name: string) => path.join(FIXTURES, name);
const PROVIDERS = ['smtp-primary', 'smtp-secondary'];
const MARKETING = {
  subject: 'Hello {{first_name}}',
  text: 'Hi {{first_name}}\n\nUnsubscribe: {{unsubscribe_url}}\n{{postal_address}}',
  html: '<p>Hi {{first_name}}</p><p><a href="{{unsubscribe_url}}">Unsubscribe</a> {{postal_address}}</p>',
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
const ALLOWED = String.raw` \(scheme 'javascript:'; allowed: http, https, mailto, tel\)`;

/** launchCampaign fails its checks before it ever touches Temporal; this client must never be used. */
const NO_CLIENT = new Proxy({}, { get: () => assert.fail('the Temporal client must not be used') }) as unknown as Client;

async function rejectionOf(p: Promise<unknown>): Promise<InvalidCampaignError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof InvalidCampaignError, `expected InvalidCampaignError, got ${(err as Error)?.stack ?? String(err)}`);
    return err;
  }
  assert.fail('expected a rejection');
}

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof InvalidCampaignError, `expected InvalidCampaignError, got ${(err as Error)?.stack ?? String(err)}`);
    return err.problems ?? [];
  }
  assert.fail('expected an error');
}

describe('hardening: campaign content (bad input corpus, SQLite store, no Temporal)', function () {
  this.timeout(30_000);
  let dir: string;
  let store: Store;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailover-hardening-content-'));
    store = await openStore({ databaseUrl: '', sqlitePath: path.join(dir, 'content.db') });
  });
  after(async () => {
    await store?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Links whose scheme merge values decide, each from another column of javascript-links-assembled.csv. */
  const ASSEMBLED_LINKS =
    '<meta http-equiv="refresh" content="0;url={{next}}">' +
    '<p><a href="{{scheme}}{{rest}}">offer</a> <a href="{{protocol}}://{{host}}/offer">more</a> <a href="&#32;{{link}}">one more</a></p>';

  it('hardening: a link assembled from merge values (two values, template text before a value, a refresh meta) is checked as it renders: launch refuses naming line, fields and value; nothing stored', async () => {
    const id = uniqueId('assembled-links');
    const template = { ...MARKETING, html: ASSEMBLED_LINKS + MARKETING.html };
    const err = await rejectionOf(
      launchCampaign({ client: NO_CLIENT, store, definition: definition(id, { template }), audienceFile: fixture('javascript-links-assembled.csv') }),
    );
    assert.match(err.message, /^4 recipient\(s\) have merge values the template cannot use \(nothing was stored or sent\)/);
    const line = (n: number, who: string, fields: string, link: string) =>
      new RegExp(String.raw`javascript-links-assembled\.csv line ${n}: ${who}@example\.com has an unsafe link in ${fields}: ${link}` + ALLOWED);
    assert.match(err.message, line(3, 'bob', "merge fields 'scheme', 'rest'", String.raw`"javascript:alert\(1\)"`));
    assert.match(err.message, line(4, 'cy', "merge field 'protocol'", String.raw`"javascript://%0Aalert\(1\)/offer"`));
    assert.match(err.message, line(5, 'dee', "merge field 'link'", String.raw`" javascript:alert\(1\)"`));
    assert.match(err.message, line(6, 'eve', "merge field 'next'", String.raw`"0;url=javascript:alert\(1\)"`));
    assert.doesNotMatch(err.message, /ann@example\.com|fay@example\.com/);
    assert.equal(await store.getCampaign(id), undefined, 'nothing stored');
  });

  it('hardening: the same assembled links are refused at render time (the per-recipient check the send makes), with the reason the launch check gives', () => {
    const t = compileTemplate({ ...MARKETING, html: ASSEMBLED_LINKS + MARKETING.html });
    assert.deepEqual(t.urlFields, ['link', 'next', 'protocol', 'rest', 'scheme']);
    const engine = { unsubscribe_url: 'https://mail.example.org/u/t', postal_address: '1 Example Street' };
    const safe = {
      first_name: 'Ann',
      scheme: 'https',
      rest: '://example.org/a',
      protocol: 'https',
      host: 'example.org',
      link: 'https://example.org/b',
      next: 'https://example.org/c',
    };
    assert.match(t.render(safe, engine).html!, /<meta http-equiv="refresh" content="0;url=https:\/\/example\.org\/c">/);
    const cases: Array<[Record<string, string>, string]> = [
      [{ scheme: 'javascript', rest: ':alert(1)' }, `merge fields 'scheme', 'rest': "javascript:alert(1)"`],
      [{ protocol: 'javascript', host: '%0Aalert(1)' }, `merge field 'protocol': "javascript://%0Aalert(1)/offer"`],
      [{ link: 'javascript:alert(1)' }, `merge field 'link': " javascript:alert(1)"`],
      [{ next: 'javascript:alert(1)' }, `merge field 'next': "0;url=javascript:alert(1)"`],
      [{ next: "'JavaScript:alert(1)'" }, `merge field 'next': "0;url='JavaScript:alert(1)'"`],
    ];
    for (const [over, reason] of cases) {
      const message = `unsafe link in ${reason} (scheme 'javascript:'; allowed: http, https, mailto, tel)`;
      assert.throws(
        () => t.render({ ...safe, ...over }, engine),
        (err: Error) => err instanceof TemplateError && err.message === message,
        JSON.stringify(over),
      );
      assert.deepEqual(t.problemsWith({ ...safe, ...over }, engine), [`has an ${message}`], JSON.stringify(over));
    }
    // A refresh meta in any spelling an HTML parser accepts is a link; other metas' content is not.
    const refused = (html: string) =>
      assert.throws(
        () => compileTemplate({ subject: 'Hi', text: 'Hi', html }).render({ next: 'javascript:alert(1)' }),
        /unsafe link in merge field 'next'/,
        html,
      );
    refused('<META HTTP-EQUIV=Refresh CONTENT=5;URL={{next}}>');
    refused(`<meta content="0; url = '{{next}}'" http-equiv="refresh">`);
    refused('<meta http-equiv="refresh" content="{{next}}">');
    const description = compileTemplate({
      subject: 'Hi',
      text: 'Hi',
      html: '<meta name="description" content="{{next}}"><meta http-equiv="refresh" content="0;url=https://example.org/?u={{next}}">',
    });
    assert.deepEqual(description.urlFields, []);
    assert.deepEqual(description.problemsWith({ next: '3 reasons: javascript:alert(1)' }), []);
  });

  it('hardening: a from with two mailboxes or a display name that is an address is refused naming the field and value; launch from code refuses it before storing anything', async () => {
    assert.deepEqual(
      problemsOf(() => loadCampaignDefinition(fixture('from-two-mailboxes.yaml'), PROVIDERS)),
      [
        `from: invalid sender address "news@example.org, <ceo@bank.example>" (more than one address: expected one mailbox, "Name <local@domain>" (a display name with ',' or ';' goes in double quotes))`,
      ],
    );
    assert.deepEqual(
      problemsOf(() => loadCampaignDefinition(fixture('from-display-name-is-address.yaml'), PROVIDERS)),
      [
        `from: invalid sender address "\\"ceo@bank.example\\" <news@example.org>" (the display name "ceo@bank.example" holds an address (a display name must not look like one))`,
      ],
    );
    const refused = (from: string) => problemsOf(() => parseCampaignDefinition({ ...definition('from-check'), from }, PROVIDERS));
    for (const from of ['a@example.org, b@example.org', 'a@example.org; b@example.org', '<a@example.org> <b@example.org>', 'Acme, Inc. <news@example.org>']) {
      assert.match(refused(from)[0] ?? '', /^from: invalid sender address .* \(more than one address: expected one mailbox/, from);
    }
    assert.match(refused('ceo@bank.example <news@example.org>')[0] ?? '', /display name "ceo@bank\.example" holds an address/);
    assert.match(refused('=?utf-8?b?Y2VvQGJhbmsuZXhhbXBsZQ==?= <news@example.org>')[0] ?? '', /holds an encoded word/);
    assert.match(
      refused('News: Weekly <news@example.org>')[0] ?? '',
      /display name "News: Weekly" has ':', which mail software reads as a separator; put the name in double quotes/,
    );
    // One mailbox, with a plain, quoted or non-ASCII display name, is accepted.
    const accepted = (from: string) => parseCampaignDefinition({ ...definition('from-ok'), from }, PROVIDERS).from;
    assert.equal(accepted('News <News@Example.org>'), 'News <news@example.org>');
    assert.equal(accepted('"Acme, Inc." <news@acme.example>'), '"Acme, Inc." <news@acme.example>');
    assert.equal(accepted('J. Smith <j@example.org>'), 'J. Smith <j@example.org>');
    assert.equal(accepted('Zoë <z@example.org>'), 'Zoë <z@example.org>');
    assert.equal(accepted('news@example.org'), 'news@example.org');

    // A definition from code skips the parser: launch checks the sender itself.
    const id = uniqueId('from-two');
    const err = await rejectionOf(
      launchCampaign({
        client: NO_CLIENT,
        store,
        definition: definition(id, { from: 'news@example.org, <ceo@bank.example>' }),
        audienceFile: fixture('javascript-links.csv'),
      }),
    );
    assert.deepEqual(err.problems, [
      `from: invalid sender address "news@example.org, <ceo@bank.example>" (more than one address: expected one mailbox, "Name <local@domain>" (a display name with ',' or ';' goes in double quotes))`,
    ]);
    assert.equal(await store.getCampaign(id), undefined, 'nothing stored');

    // Drill messages have a sender too.
    const problems: string[] = [];
    parseDrillSettings({ from: 'news@example.org, <ceo@bank.example>', seeds: ['ops@example.org'] }, PROVIDERS, problems);
    assert.deepEqual(problems, [
      `drills.from: invalid sender address "news@example.org, <ceo@bank.example>" (more than one address: expected one mailbox, "Name <local@domain>" (a display name with ',' or ';' goes in double quotes))`,
    ]);
  });
});
