/** The operators' read views over the ledger and events, on PostgreSQL (see test/support/recipients-suite.ts). */
import { openStore } from '../../src/store/open-store';
import { createScratchDatabase, type ScratchDatabase } from '../support/postgres';
import { recipientsViewsSuite } from '../support/recipients-suite';

describe('recipients: read views (postgres)', function () {
  this.timeout(30_000);
  let db: ScratchDatabase | undefined;
  recipientsViewsSuite(
    async () => {
      db = await createScratchDatabase();
      return openStore({ databaseUrl: db.url });
    },
    async () => db?.drop(),
  );
});
