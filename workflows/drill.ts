/**
 * A failover drill: proves, on a schedule or on demand, that every provider accepts mail and
 * that a campaign really moves to the secondary when the primary goes down, exactly once.
 *
 * 1. probe: one message per seed address (addresses the team owns, from the worker config)
 *    straight through each provider;
 * 2. failover: a small synthetic campaign (plus-addressed seeds, never a real audience) runs
 *    as a child campaign workflow on [primary, secondary] with the primary forced down from
 *    about half-way;
 * 3. verify: the campaign completed, switched primary → secondary at the forced recipient, and
 *    its ledger has every row accepted once, on the right side of the switch.
 * The report (a pass/fail table) is returned and raised as a `drill-finished` event (an alert
 * when it failed). A failed drill is a result, not a workflow failure.
 *
 * History holds the drill id, provider names, counts, seqs and reasons: never the seed addresses.
 */
import * as wf from '@temporalio/workflow';
import { ActivityFailure, ChildWorkflowFailure } from '@temporalio/workflow';
import { ERROR_TYPES, type CampaignActivities, type DrillLedgerCheck, type DrillPlan, type ProbeResult } from '../activities/contracts';
import { campaignWorkflow } from './campaign';
import { cancelSignal, type CampaignResult } from './campaign-api';
import {
  DRILL_CAMPAIGN_SIGNAL_PATCH,
  DRILL_FORCED_REASON,
  DRILL_WORKFLOW_PREFIX,
  drillCampaignSignal,
  drillProgressQuery,
  type DrillCampaignNotice,
  type DrillCheck,
  type DrillInput,
  type DrillReport,
} from './drill-api';
import { weightedSwitchSeq, type WeightedDrill } from './weighted-drill';
import { providersText } from './weighted-routing';

/** A drill id made from its workflow id (schedules append a timestamp): letters, digits, '-' and '_' only, short enough to plus-address. */
export function drillIdFrom(workflowId: string, runId: string): string {
  const tail = workflowId.startsWith(`${DRILL_WORKFLOW_PREFIX}-`) ? workflowId.slice(DRILL_WORKFLOW_PREFIX.length + 1) : workflowId;
  const cleaned = tail.replace(/[^A-Za-z0-9_-]/g, '').slice(-32);
  return cleaned || runId.slice(0, 8);
}

/** The first seq of the batch at or after half-way: where the primary is forced down. */
export function forcedSwitchSeq(recipients: number, batchSize: number): number {
  return Math.max(1, Math.floor(Math.floor(recipients / 2) / batchSize)) * batchSize + 1;
}

function failureMessage(err: unknown): string {
  let e: unknown = err;
  while ((e instanceof ActivityFailure || e instanceof ChildWorkflowFailure) && e.cause) e = e.cause;
  return e instanceof Error ? e.message : String(err);
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

export async function drillWorkflow(input: DrillInput = {}): Promise<DrillReport> {
  const info = wf.workflowInfo();
  const drillId = input.drillId ?? drillIdFrom(info.workflowId, info.runId);
  const report: DrillReport = { drillId, passed: false, phase: 'planning', checks: [], summary: 'running', startedAt: new Date().toISOString() };
  wf.setHandler(drillProgressQuery, () => report);
  /** What the synthetic campaign last told the drill (it signals when it starts holding and when it ends). */
  let campaignNotice: DrillCampaignNotice | undefined;
  wf.setHandler(drillCampaignSignal, (n: DrillCampaignNotice) => {
    campaignNotice = n;
  });

  const { drillPlan, prepareDrillCampaign, verifyDrillLedger } = wf.proxyActivities<CampaignActivities>({
    startToCloseTimeout: '1 minute',
    retry: { maximumAttempts: 5, nonRetryableErrorTypes: [ERROR_TYPES.drillNotConfigured] },
  });
  const probeAs = (summary: string) =>
    wf.proxyActivities<CampaignActivities>({ startToCloseTimeout: '2 minutes', retry: { maximumAttempts: 2 }, summary }).probeDrillSeeds;
  /** Drills recorded before the campaign signalled its drill: an activity polls its progress query. */
  const awaitCampaignHoldFor = (timeoutMs: number) =>
    wf.proxyActivities<CampaignActivities>({
      startToCloseTimeout: timeoutMs + 60_000,
      heartbeatTimeout: '10 seconds',
      retry: { maximumAttempts: 3 },
      cancellationType: wf.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
      summary: 'watch the synthetic campaign for a hold',
    }).awaitCampaignHold;
  // An alert that cannot be delivered never fails the drill: a few attempts, then the report stands.
  const { notify } = wf.proxyActivities<CampaignActivities>({ startToCloseTimeout: '30 seconds', retry: { maximumAttempts: 3, initialInterval: '1 second' } });

  const add = (c: DrillCheck) => {
    report.checks = [...report.checks, c];
    wf.setCurrentDetails(detailsOf(report));
  };

  await runDrill();

  report.passed = report.checks.length > 0 && report.checks.every((c) => c.passed);
  const failed = report.checks.filter((c) => !c.passed);
  report.summary = report.passed
    ? `${plural(report.checks.length, 'check')} passed: ${report.checks.map((c) => `${c.check} ${c.provider}`).join(', ')}`
    : `${failed.length} of ${plural(report.checks.length, 'check')} failed: ${failed.map((c) => `${c.check} ${c.provider}: ${c.detail}`).join('; ')}`;
  report.phase = 'done';
  report.finishedAt = new Date().toISOString();
  wf.setCurrentDetails(detailsOf(report));
  try {
    await notify({ kind: 'drill-finished', drillId, passed: report.passed, summary: report.summary });
  } catch (err) {
    wf.log.warn('drill-finished event could not be delivered', { drillId, error: failureMessage(err) });
  }
  return report;

  async function runDrill(): Promise<void> {
    let plan: DrillPlan;
    try {
      plan = await drillPlan();
    } catch (err) {
      add({ check: 'setup', provider: '-', passed: false, detail: failureMessage(err) });
      return;
    }

    // 1. Every provider accepts a message to every seed.
    report.phase = 'probing';
    const probes: ProbeResult[] = [];
    for (const provider of plan.providers) {
      let probe: ProbeResult;
      try {
        probe = await probeAs(`drill ${drillId}: probe ${plan.seedCount} seed(s) via ${provider}`)({ drillId, provider });
      } catch (err) {
        probe = { provider, accepted: 0, rejected: plan.seedCount, errors: [failureMessage(err)] };
      }
      probes.push(probe);
      const ok = probe.accepted === plan.seedCount && probe.rejected === 0;
      add({
        check: 'probe',
        provider,
        passed: ok,
        detail: `${probe.accepted}/${plan.seedCount} seeds accepted${probe.errors.length ? `: ${probe.errors.join('; ')}` : ''}`,
      });
    }

    // 2. A synthetic campaign with the primary forced down half-way.
    const [primary, secondary] = plan.providers;
    const pair = `${primary} → ${secondary}`;
    const broken = probes.slice(0, 2).filter((p) => p.accepted < plan.seedCount || p.rejected > 0);
    if (broken.length) {
      const why = `not run: ${broken.map((p) => p.provider).join(' and ')} failed ${broken.length > 1 ? 'their probes' : 'its probe'}`;
      add({ check: 'failover switch', provider: pair, passed: false, detail: why });
      return;
    }
    report.phase = 'failover';
    const campaignId = `drill-${drillId}`;
    report.campaignId = campaignId;
    let total: number;
    try {
      ({ total } = await prepareDrillCampaign({ drillId, campaignId, providers: [primary, secondary] }));
    } catch (err) {
      add({ check: 'failover switch', provider: pair, passed: false, detail: `synthetic campaign not prepared: ${failureMessage(err)}` });
      return;
    }
    // Weighted: the pair splits the batches by weight until the primary is forced down at one of its own batches.
    const weighted: WeightedDrill | undefined = plan.weights
      ? { primary, secondary, weights: { [primary]: plan.weights[primary], [secondary]: plan.weights[secondary] }, batchSize: plan.batchSize }
      : undefined;
    const halfway = forcedSwitchSeq(total, plan.batchSize);
    const switchSeq = weighted ? weightedSwitchSeq(weighted, halfway, total) : halfway;
    if (switchSeq === undefined) {
      const detail = `not run: the weights (${providersText([primary, secondary], weighted?.weights)}) give ${primary} no batch of ${total} recipients to force down`;
      add({ check: 'failover switch', provider: pair, passed: false, detail });
      return;
    }
    const split = weighted ? ` split by weight (${providersText([primary, secondary], weighted.weights)})` : '';
    let result: CampaignResult | undefined;
    let childError: unknown;
    let settled = false;
    try {
      const signalled = wf.patched(DRILL_CAMPAIGN_SIGNAL_PATCH);
      const child = await wf.startChild(campaignWorkflow, {
        workflowId: campaignId,
        args: [
          {
            campaignId,
            providers: [primary, secondary],
            ...(weighted ? { weights: weighted.weights } : {}),
            batchSize: plan.batchSize,
            forcedDown: { provider: primary, fromSeq: switchSeq, reason: DRILL_FORCED_REASON },
            ...(signalled ? { notifyParent: true } : {}),
          },
        ],
        parentClosePolicy: 'TERMINATE',
        staticSummary: `Failover drill ${drillId}: ${total} synthetic recipients via ${pair}${split}, ${primary} forced down from #${switchSeq}`,
      });
      child.result().then(
        (r) => {
          result = r;
          settled = true;
        },
        (err) => {
          childError = err;
          settled = true;
        },
      );
      // Wait for the campaign to end, or to start holding (no provider left): it would wait for an operator forever.
      if (signalled) {
        await wf.condition(() => settled || (campaignNotice?.campaignId === campaignId && campaignNotice.status === 'holding'), plan.timeoutMs);
      } else {
        let holding = false;
        const watch = new wf.CancellationScope();
        const watching = watch
          .run(() => awaitCampaignHoldFor(plan.timeoutMs)({ campaignId }))
          .then(
            (r) => (holding = r.holding),
            () => undefined, // cancelled, or the watch failed: the timeout still applies
          );
        await wf.condition(() => settled || holding, plan.timeoutMs);
        watch.cancel();
        await watching; // the watch has stopped before the drill moves on (no activity outlives the drill)
      }
      if (!settled) {
        // Holding, or still running at the timeout: stop it and report what it did.
        await child.signal(cancelSignal);
        if (!(await wf.condition(() => settled, '1 minute'))) {
          add({
            check: 'failover switch',
            provider: pair,
            passed: false,
            detail: `synthetic campaign ${campaignId} did not finish within ${Math.round(plan.timeoutMs / 1000)} s and did not stop when cancelled`,
          });
          return;
        }
      }
    } catch (err) {
      childError = err;
    }
    if (childError !== undefined || result === undefined) {
      add({ check: 'failover switch', provider: pair, passed: false, detail: `synthetic campaign ${campaignId} failed: ${failureMessage(childError)}` });
      return;
    }

    // 3. Verify the switch, the delivery and the ledger.
    report.phase = 'verifying';
    const sw = result.switches;
    const expected = sw.length === 1 && sw[0].from === primary && sw[0].to === secondary && sw[0].atSeq === switchSeq;
    const switchesText = sw.length ? sw.map((s) => `${s.from} → ${s.to ?? 'none (holding)'} at #${s.atSeq} (${s.reason})`).join('; ') : 'no switch';
    add({
      check: 'failover switch',
      provider: pair,
      passed: expected,
      detail: expected
        ? `switched at recipient #${switchSeq} as forced (${sw[0].reason})`
        : `expected one switch ${pair} at #${switchSeq}, got: ${switchesText}`,
    });
    const order = result.providers;
    const byProvider =
      // In provider order: batches in flight settle in any order, the counters' keys with them.
      Object.entries(result.acceptedByProvider)
        .sort(([a], [b]) => rank(order, a) - rank(order, b))
        .map(([p, n]) => `${n} via ${p}`)
        .join(', ') || 'none via any provider';
    const delivered = result.status === 'completed' && result.accepted === total && result.rejected === 0 && result.suppressed === 0;
    const notDone =
      result.status !== 'completed'
        ? `campaign ${result.status}${result.providersDown[secondary] ? ` (${secondary} down: ${result.providersDown[secondary]})` : ''}; `
        : '';
    add({
      check: 'failover delivery',
      provider: secondary,
      passed: delivered,
      detail: `${notDone}${result.accepted}/${total} accepted (${byProvider})${result.rejected ? `, ${result.rejected} rejected` : ''}${result.suppressed ? `, ${result.suppressed} suppressed` : ''}`,
    });
    let ledger: DrillLedgerCheck;
    try {
      ledger = await verifyDrillLedger({
        campaignId,
        primary,
        secondary,
        switchSeq,
        ...(weighted ? { weights: weighted.weights, batchSize: plan.batchSize } : {}),
      });
    } catch (err) {
      add({ check: 'exactly once', provider: pair, passed: false, detail: `ledger not readable: ${failureMessage(err)}` });
      return;
    }
    const once = ledger.rows === total && ledger.inPlace === total && ledger.distinctMessageIds === total && ledger.inFlightRecovered === 0;
    const problems = [
      ledger.inPlace < ledger.rows
        ? `${ledger.rows - ledger.inPlace} row(s) not accepted on the expected side of the switch (seq ${ledger.misplacedSeqs.join(', ')})`
        : '',
      ledger.distinctMessageIds < ledger.accepted ? `${ledger.accepted - ledger.distinctMessageIds} repeated provider message id(s)` : '',
      ledger.inFlightRecovered ? `${ledger.inFlightRecovered} row(s) found in flight after a crash (may have gone out twice)` : '',
    ].filter(Boolean);
    add({
      check: 'exactly once',
      provider: pair,
      passed: once,
      detail: once
        ? `ledger: ${total} rows accepted once each (#1–#${switchSeq - 1} via ${weighted ? `${primary} and ${secondary} by weight` : primary}, #${switchSeq}–#${total} via ${secondary}), ${ledger.distinctMessageIds} distinct message ids`
        : `ledger: ${problems.join('; ') || `${ledger.rows} rows for ${total} recipients`}`,
    });
  }
}

/** The report as the markdown the Web UI shows in the workflow's current details. */
function detailsOf(r: DrillReport): string {
  return [
    `**failover drill ${r.drillId}**: ${r.phase === 'done' ? (r.passed ? 'PASSED' : 'FAILED') : r.phase}`,
    '',
    '| check | provider | result | detail |',
    '| --- | --- | --- | --- |',
    ...r.checks.map((c) => `| ${c.check} | ${c.provider} | ${c.passed ? 'pass' : 'FAIL'} | ${c.detail.replace(/\|/g, '/')} |`),
  ].join('\n');
}

/** Where a provider is in the order (those not in it last). */
function rank(order: string[], provider: string): number {
  const i = order.indexOf(provider);
  return i < 0 ? order.length : i;
}
