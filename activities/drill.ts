/**
 * Activities of a failover drill. The seed addresses come from the worker's `drills:` config and
 * never cross into workflow history: inputs and results are the drill id, provider names,
 * counts, seqs and reasons.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { progressQuery, type CampaignProgress } from '../workflows/campaign-api';
import { normaliseAddress } from '../src/address';
import type { DrillSettings } from '../src/drill-settings';
import type { AudienceRow } from '../src/store/types';
import {
  ERROR_TYPES,
  type AwaitCampaignHoldInput,
  type AwaitCampaignHoldResult,
  type DrillLedgerCheck,
  type DrillPlan,
  type PrepareDrillInput,
  type ProbeDrillSeedsInput,
  type ProbeResult,
  type VerifyDrillInput,
} from './contracts';
import type { ActivityDeps } from './index';
import { probeProvider } from './probe';
import { weightedDrillProvider } from '../workflows/weighted-drill';

export const DRILL_NOT_CONFIGURED = ERROR_TYPES.drillNotConfigured;

function settingsOf(deps: ActivityDeps): DrillSettings {
  if (!deps.drills) {
    throw ApplicationFailure.nonRetryable(
      'failover drills are not configured on this worker: add a `drills:` section (from, seeds) to its provider file (see docs/operations.md: Failover drills)',
      DRILL_NOT_CONFIGURED,
    );
  }
  return deps.drills;
}

/** A seed plus-addressed for one synthetic recipient: ops@example.org -> ops+drill-<drillId>-<n>@example.org. */
export function drillAddress(seed: string, drillId: string, n: number): string {
  const at = seed.lastIndexOf('@');
  return `${seed.slice(0, at)}+drill-${drillId}-${n}${seed.slice(at)}`;
}

/** The synthetic audience: `recipients` plus-addressed seeds, round robin. Never a real audience. */
export function drillAudience(settings: DrillSettings, drillId: string): AudienceRow[] {
  return Array.from({ length: settings.recipients }, (_, i) => {
    const email = drillAddress(settings.seeds[i % settings.seeds.length], drillId, i + 1);
    const ok = normaliseAddress(email);
    if (!ok.ok) {
      throw ApplicationFailure.nonRetryable(
        `drill ${drillId}: the plus-addressed form of drills.seeds[${i % settings.seeds.length}] is not a valid address (${ok.reason}); use a shorter seed address`,
        DRILL_NOT_CONFIGURED,
      );
    }
    return { email: ok.email, fields: { drill: drillId, n: String(i + 1) } };
  });
}

export const DRILL_TEMPLATE = {
  subject: 'mailover failover drill {{drill}} #{{n}}',
  text: "This is a mailover failover drill (synthetic campaign for drill {{drill}}, message {{n}}). It only ever goes to the team's seed addresses. No action is needed.",
};

export function drillActivities(deps: ActivityDeps) {
  return {
    /** What to drill, from the worker config (counts and names only). */
    async drillPlan(): Promise<DrillPlan> {
      const s = settingsOf(deps);
      return {
        providers: s.providers,
        seedCount: s.seeds.length,
        recipients: s.recipients,
        batchSize: s.batchSize,
        timeoutMs: s.timeoutMs,
        ...(s.weights ? { weights: s.weights } : {}),
      };
    },

    /** One message per seed through one provider. */
    async probeDrillSeeds(input: ProbeDrillSeedsInput): Promise<ProbeResult> {
      const s = settingsOf(deps);
      return probeProvider(deps, {
        provider: input.provider,
        to: s.seeds,
        from: s.from,
        subject: `mailover failover drill ${input.drillId}: probe via ${input.provider}`,
      });
    },

    /** Stores the synthetic campaign and its plus-addressed audience (idempotent: a retry finds it stored). */
    async prepareDrillCampaign(input: PrepareDrillInput): Promise<{ total: number }> {
      const s = settingsOf(deps);
      const existing = await deps.store.getCampaign(input.campaignId);
      if (!existing) {
        await deps.store.createCampaign({
          id: input.campaignId,
          name: `failover drill ${input.drillId}`,
          from: s.from,
          template: DRILL_TEMPLATE,
          providers: input.providers,
          batchSize: s.batchSize,
        });
      } else if (!existing.name?.startsWith('failover drill')) {
        throw ApplicationFailure.nonRetryable(
          `campaign '${input.campaignId}' already exists and is not a drill campaign; pick another drill id`,
          DRILL_NOT_CONFIGURED,
        );
      }
      // importAudience skips addresses already there, so a retry after a crash adds nothing twice.
      await deps.store.importAudience(input.campaignId, drillAudience(s, input.drillId));
      return { total: await deps.store.countAudience(input.campaignId) };
    },

    /**
     * Watches the synthetic campaign (its progress query) until it holds (no provider left) or
     * ends. The drill cancels this when the campaign finishes first. Only drills that started
     * before the campaign signalled its drill (DRILL_CAMPAIGN_SIGNAL_PATCH) still schedule it.
     */
    async awaitCampaignHold(input: AwaitCampaignHoldInput): Promise<AwaitCampaignHoldResult> {
      const ctx = Context.current();
      const handle = ctx.client.workflow.getHandle(input.campaignId);
      for (;;) {
        let p: CampaignProgress | undefined;
        try {
          p = await handle.query(progressQuery);
        } catch {
          // not answering yet (starting) or closed: ask again
        }
        if (p?.status === 'holding') return { holding: true, reason: p.pauseReason };
        if (p?.status === 'completed' || p?.status === 'cancelled') return { holding: false };
        ctx.heartbeat();
        await ctx.sleep(input.pollMs ?? 500); // rejects when the drill cancels the watch
      }
    },

    /** Reads the synthetic campaign's ledger: every row accepted once, on the right side of the switch. */
    async verifyDrillLedger(input: VerifyDrillInput): Promise<DrillLedgerCheck> {
      const rows = await deps.store.listRecipients(input.campaignId);
      const check: DrillLedgerCheck = {
        rows: rows.length,
        accepted: 0,
        inPlace: 0,
        misplacedSeqs: [],
        inFlightRecovered: 0,
        distinctMessageIds: 0,
        acceptedByProvider: {},
      };
      const ids = new Set<string>();
      const weighted =
        input.weights && input.batchSize
          ? { primary: input.primary, secondary: input.secondary, weights: input.weights, batchSize: input.batchSize }
          : undefined;
      for (const r of rows) {
        check.inFlightRecovered += r.inFlightRecoveries > 0 ? 1 : 0;
        const expected = weighted ? weightedDrillProvider(weighted, input.switchSeq, r.seq) : r.seq < input.switchSeq ? input.primary : input.secondary;
        if (r.state === 'accepted') {
          check.accepted++;
          if (r.provider) check.acceptedByProvider[r.provider] = (check.acceptedByProvider[r.provider] ?? 0) + 1;
          // Per recipient: a batch ESP's one id per call covers several rows.
          if (r.providerMessageId) ids.add(`${r.provider}:${r.providerMessageId}:${r.email}`);
        }
        if (r.state === 'accepted' && r.provider === expected) check.inPlace++;
        else if (check.misplacedSeqs.length < 10) check.misplacedSeqs.push(r.seq);
      }
      check.distinctMessageIds = ids.size;
      return check;
    },
  };
}
