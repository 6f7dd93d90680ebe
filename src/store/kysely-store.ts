/**
 * The Store over Kysely: one implementation for SQLite (better-sqlite3) and PostgreSQL (pg).
 *
 * A facade: each concern is its own module over the one shared connection and transaction
 * runner (connection.ts), and this class hands every call to the module that owns it:
 * - campaigns.ts: campaign definitions;
 * - audience.ts: a campaign's recipient rows as imported;
 * - ledger.ts (+ ledger-claim.ts): claims, sweeps, dispatch marks, settles, deferrals, holds, tallies;
 * - suppressions.ts: the suppression list and per-list suppressions;
 * - events.ts: provider events and webhook tokens;
 * - rates.ts: rate grants;
 * - reputation.ts: the reputation breaker's windows of sends;
 * - quota.ts: providers' hourly, daily and warm-up counters;
 * - views.ts: operators' read views (recipient outcomes, an address's history, retry rows, report figures).
 */
import type { Database as SqliteDatabase } from 'better-sqlite3';
import type { Kysely } from 'kysely';
import { Audience } from './audience';
import { Campaigns } from './campaigns';
import { StoreConnection, type StoreFaults } from './connection';
import { Events } from './events';
import { Ledger } from './ledger';
import { QuotaCounters } from './quota';
import { RateGrants } from './rates';
import { Reputation } from './reputation';
import type { Database } from './schema';
import { migrate } from './schema';
import { Suppressions } from './suppressions';
import type { Store } from './types';
import { LedgerViews } from './views';

export { toRanges } from './ledger';

export interface KyselyStoreOptions {
  db: Kysely<Database>;
  dialect: 'sqlite' | 'postgres';
  /** The better-sqlite3 handle behind `db` (required for sqlite: transactions run on it synchronously). */
  sqlite?: SqliteDatabase;
  /** Human-readable location without secrets, e.g. `sqlite:./data/mailover.db`. */
  location?: string;
  /** Faults to inject, for the fault suite only (see StoreFaults). */
  faults?: StoreFaults;
}

export class KyselyStore implements Store {
  readonly dialect: 'sqlite' | 'postgres';
  readonly location: string;
  readonly db: Kysely<Database>;
  readonly #conn: StoreConnection;
  readonly #campaigns: Campaigns;
  readonly #audience: Audience;
  readonly #ledger: Ledger;
  readonly #suppressions: Suppressions;
  readonly #events: Events;
  readonly #rates: RateGrants;
  readonly #quota: QuotaCounters;
  readonly #views: LedgerViews;
  readonly #reputation: Reputation;

  constructor(opts: KyselyStoreOptions) {
    this.#conn = new StoreConnection({ db: opts.db, dialect: opts.dialect, sqlite: opts.sqlite, faults: opts.faults });
    this.db = opts.db;
    this.dialect = opts.dialect;
    this.location = opts.location ?? opts.dialect;
    this.#campaigns = new Campaigns(this.#conn);
    this.#audience = new Audience(this.#conn);
    this.#ledger = new Ledger(this.#conn);
    this.#suppressions = new Suppressions(this.#conn);
    this.#events = new Events(this.#conn);
    this.#rates = new RateGrants(this.#conn);
    this.#quota = new QuotaCounters(this.#conn);
    this.#views = new LedgerViews(this.#conn);
    this.#reputation = new Reputation(this.#conn);
  }

  migrate(): Promise<void> {
    return migrate(this.db, this.dialect);
  }

  close(): Promise<void> {
    return this.#conn.close();
  }

  // ---------------------------------------------------------------- campaigns

  createCampaign(...a: Parameters<Store['createCampaign']>) {
    return this.#campaigns.createCampaign(...a);
  }
  getCampaign(...a: Parameters<Store['getCampaign']>) {
    return this.#campaigns.getCampaign(...a);
  }
  listCampaignIds(...a: Parameters<Store['listCampaignIds']>) {
    return this.#campaigns.listCampaignIds(...a);
  }

  // ---------------------------------------------------------------- audience

  importAudience(...a: Parameters<Store['importAudience']>) {
    return this.#audience.importAudience(...a);
  }
  refreshPlannerStats() {
    return this.#audience.refreshPlannerStats();
  }
  countAudience(...a: Parameters<Store['countAudience']>) {
    return this.#audience.countAudience(...a);
  }
  maxSeq(...a: Parameters<Store['maxSeq']>) {
    return this.#audience.maxSeq(...a);
  }
  audienceFieldNames(...a: Parameters<Store['audienceFieldNames']>) {
    return this.#audience.audienceFieldNames(...a);
  }
  rowsMissingFields(...a: Parameters<Store['rowsMissingFields']>) {
    return this.#audience.rowsMissingFields(...a);
  }

  // ---------------------------------------------------------------- ledger

  claimRange(...a: Parameters<Store['claimRange']>) {
    return this.#ledger.claimRange(...a);
  }
  claimSweep(...a: Parameters<Store['claimSweep']>) {
    return this.#ledger.claimSweep(...a);
  }
  settleAccepted(...a: Parameters<Store['settleAccepted']>) {
    return this.#ledger.settleAccepted(...a);
  }
  recordSends(...a: Parameters<Store['recordSends']>) {
    return this.#ledger.recordSends(...a);
  }
  settleRejected(...a: Parameters<Store['settleRejected']>) {
    return this.#ledger.settleRejected(...a);
  }
  markDispatched(...a: Parameters<Store['markDispatched']>) {
    return this.#ledger.markDispatched(...a);
  }
  release(...a: Parameters<Store['release']>) {
    return this.#ledger.release(...a);
  }
  settleDeferred(...a: Parameters<Store['settleDeferred']>) {
    return this.#ledger.settleDeferred(...a);
  }
  holdRows(...a: Parameters<Store['holdRows']>) {
    return this.#ledger.holdRows(...a);
  }
  listHeld(...a: Parameters<Store['listHeld']>) {
    return this.#ledger.listHeld(...a);
  }
  releaseHeld(...a: Parameters<Store['releaseHeld']>) {
    return this.#ledger.releaseHeld(...a);
  }
  nextDeferral(...a: Parameters<Store['nextDeferral']>) {
    return this.#ledger.nextDeferral(...a);
  }
  getRecipients(...a: Parameters<Store['getRecipients']>) {
    return this.#ledger.getRecipients(...a);
  }
  getRecipient(...a: Parameters<Store['getRecipient']>) {
    return this.#ledger.getRecipient(...a);
  }
  tallyRange(...a: Parameters<Store['tallyRange']>) {
    return this.#ledger.tallyRange(...a);
  }
  tallyRows(...a: Parameters<Store['tallyRows']>) {
    return this.#ledger.tallyRows(...a);
  }
  countInFlight(...a: Parameters<Store['countInFlight']>) {
    return this.#ledger.countInFlight(...a);
  }
  listRecipients(...a: Parameters<Store['listRecipients']>) {
    return this.#ledger.listRecipients(...a);
  }

  // ---------------------------------------------------------------- suppressions

  addSuppression(...a: Parameters<Store['addSuppression']>) {
    return this.#suppressions.addSuppression(...a);
  }
  addSuppressions(...a: Parameters<Store['addSuppressions']>) {
    return this.#suppressions.addSuppressions(...a);
  }
  removeSuppression(...a: Parameters<Store['removeSuppression']>) {
    return this.#suppressions.removeSuppression(...a);
  }
  isSuppressed(...a: Parameters<Store['isSuppressed']>) {
    return this.#suppressions.isSuppressed(...a);
  }
  listSuppressions(...a: Parameters<Store['listSuppressions']>) {
    return this.#suppressions.listSuppressions(...a);
  }
  addListSuppression(...a: Parameters<Store['addListSuppression']>) {
    return this.#suppressions.addListSuppression(...a);
  }
  listListSuppressions(...a: Parameters<Store['listListSuppressions']>) {
    return this.#suppressions.listListSuppressions(...a);
  }

  // ---------------------------------------------------------------- provider events, webhook tokens

  recordEvent(...a: Parameters<Store['recordEvent']>) {
    return this.#events.recordEvent(...a);
  }
  listEvents(...a: Parameters<Store['listEvents']>) {
    return this.#events.listEvents(...a);
  }
  rememberWebhookToken(...a: Parameters<Store['rememberWebhookToken']>) {
    return this.#events.rememberWebhookToken(...a);
  }
  forgetWebhookToken(...a: Parameters<Store['forgetWebhookToken']>) {
    return this.#events.forgetWebhookToken(...a);
  }

  // ---------------------------------------------------------------- rate grants

  reserveSends(...a: Parameters<Store['reserveSends']>) {
    return this.#rates.reserveSends(...a);
  }

  // ---------------------------------------------------------------- the reputation breaker's windows

  sendWindows(...a: Parameters<Store['sendWindows']>) {
    return this.#reputation.sendWindows(...a);
  }

  // ---------------------------------------------------------------- quota counters

  takeQuota(...a: Parameters<Store['takeQuota']>) {
    return this.#quota.takeQuota(...a);
  }
  quotaUsage(...a: Parameters<Store['quotaUsage']>) {
    return this.#quota.quotaUsage(...a);
  }

  // ---------------------------------------------------------------- operators' read views

  pageOutcomes(...a: Parameters<Store['pageOutcomes']>) {
    return this.#views.pageOutcomes(...a);
  }
  addressHistory(...a: Parameters<Store['addressHistory']>) {
    return this.#views.addressHistory(...a);
  }
  pageRetryRows(...a: Parameters<Store['pageRetryRows']>) {
    return this.#views.pageRetryRows(...a);
  }
  countRetryKinds(...a: Parameters<Store['countRetryKinds']>) {
    return this.#views.countRetryKinds(...a);
  }
  sendsPerMinute(...a: Parameters<Store['sendsPerMinute']>) {
    return this.#views.sendsPerMinute(...a);
  }
  stateCounts(...a: Parameters<Store['stateCounts']>) {
    return this.#views.stateCounts(...a);
  }
  eventCounts(...a: Parameters<Store['eventCounts']>) {
    return this.#views.eventCounts(...a);
  }
  retriesOf(...a: Parameters<Store['retriesOf']>) {
    return this.#views.retriesOf(...a);
  }
}
