/**
 * The claim of a scope of ledger rows, shared by claimRange (a seq range) and claimSweep (the
 * rows behind the cursor): a transaction body, run by the caller's transaction.
 */
import { sql, type Expression, type ExpressionBuilder, type Kysely, type SqlBool } from 'kysely';
import { listOf } from './campaigns';
import { bySeq, now, toRecipient } from './columns';
import { exec, rows, type TxBody } from './connection';
import type { Database } from './schema';
import type { ClaimResult } from './types';

export type RecipientScope = (eb: ExpressionBuilder<Database, 'recipients'>) => Expression<SqlBool>;

/**
 * The claim of a scope of rows (a seq range, or a sweep's seqs), inside one transaction:
 * 1. pending rows whose address is suppressed (for all mail, or for this campaign's list) -> suppressed;
 * 2. rows in `sending` that were dispatched -> returned as in flight (inFlightRecoveries + 1, provider kept);
 * 3. pending rows, and rows in `sending` never dispatched -> sending, claimed by `claimToken`.
 */
export function* claimBody(db: Kysely<Database>, campaignId: string, provider: string, claimToken: string, scope: RecipientScope): TxBody<ClaimResult> {
  const ts = now();
  const [campaign] = yield* rows(db.selectFrom('campaigns').select('compliance_json').where('id', '=', campaignId));
  const list = listOf(campaignId, campaign?.compliance_json ?? null);
  const suppressed = yield* exec(
    db
      .updateTable('recipients')
      .set({
        state: 'suppressed',
        updated_at: ts,
        last_error: (eb) =>
          eb.fn.coalesce(
            eb
              .selectFrom('suppressions')
              .select(sql<string>`'suppressed: ' || suppressions.reason`.as('r'))
              .where('suppressions.email', '=', sql<string>`lower(recipients.email)`)
              .limit(1),
            eb
              .selectFrom('list_suppressions')
              .select(sql<string>`'suppressed for list ' || list_suppressions.list || ': ' || list_suppressions.reason`.as('r'))
              .where('list_suppressions.list', '=', list)
              .where('list_suppressions.email', '=', sql<string>`lower(recipients.email)`)
              .limit(1),
          ),
      })
      .where('campaign_id', '=', campaignId)
      .where(scope)
      .where('state', '=', 'pending')
      .where((eb) =>
        eb.or([
          eb.exists(
            eb
              .selectFrom('suppressions')
              .select(sql<number>`1`.as('one'))
              .where('suppressions.email', '=', sql<string>`lower(recipients.email)`),
          ),
          eb.exists(
            eb
              .selectFrom('list_suppressions')
              .select(sql<number>`1`.as('one'))
              .where('list_suppressions.list', '=', list)
              .where('list_suppressions.email', '=', sql<string>`lower(recipients.email)`),
          ),
        ]),
      ),
  );
  const inFlight = yield* rows(
    db
      .updateTable('recipients')
      .set((eb) => ({
        in_flight_recoveries: eb('in_flight_recoveries', '+', 1),
        claim_token: claimToken,
        updated_at: ts,
      }))
      .where('campaign_id', '=', campaignId)
      .where(scope)
      .where('state', '=', 'sending')
      .where('dispatched_at', 'is not', null)
      .returningAll(),
  );
  const claimed = yield* rows(
    db
      .updateTable('recipients')
      .set((eb) => ({
        state: 'sending',
        attempts: eb('attempts', '+', 1),
        provider,
        dispatched_at: null,
        claim_token: claimToken,
        updated_at: ts,
      }))
      .where('campaign_id', '=', campaignId)
      .where(scope)
      .where((eb) => eb.or([eb('state', '=', 'pending'), eb.and([eb('state', '=', 'sending'), eb('dispatched_at', 'is', null)])]))
      .returningAll(),
  );
  return {
    claimed: claimed.map(toRecipient).sort(bySeq),
    inFlight: inFlight.map(toRecipient).sort(bySeq),
    suppressed,
  };
}
