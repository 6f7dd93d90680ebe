/** The operators' read views over the ledger and events, on SQLite (see test/support/recipients-suite.ts). */
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { csvField, eventLabel } from '../../src/ledger-views';
import { openStore } from '../../src/store/open-store';
import { strict as assert } from 'assert';
import { recipientsViewsSuite } from '../support/recipients-suite';

describe('recipients: read views (sqlite)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mailover-views-'));
  recipientsViewsSuite(
    () => openStore({ databaseUrl: '', sqlitePath: join(dir, 'mailover.db') }),
    async () => rmSync(dir, { recursive: true, force: true }),
  );

  it('recipients: CSV fields are quoted only when they hold a comma, a quote or a line break; ESP events are named as people say them', () => {
    assert.equal(csvField('plain'), 'plain');
    assert.equal(csvField('a,b'), '"a,b"');
    assert.equal(csvField('say "hi"'), '"say ""hi"""');
    assert.equal(csvField('two\nlines'), '"two\nlines"');
    assert.equal(eventLabel('failed-permanent'), 'bounced');
    assert.equal(eventLabel('failed-temporary'), 'soft-bounced');
    assert.equal(eventLabel('delivered'), 'delivered');
  });
});
