/**
 * Custom search attributes a campaign upserts as it moves, so campaigns can be found
 * and filtered in the Temporal Web UI (and `temporal workflow list --query`).
 * The dev server registers them at start; a production namespace needs
 * `temporal operator search-attribute create` once (docs/operations.md, Search attributes).
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const CampaignIdKey = defineSearchAttributeKey('CampaignId', SearchAttributeType.KEYWORD);
export const CampaignStatusKey = defineSearchAttributeKey('CampaignStatus', SearchAttributeType.KEYWORD);
export const ActiveProviderKey = defineSearchAttributeKey('ActiveProvider', SearchAttributeType.KEYWORD);
export const AcceptedCountKey = defineSearchAttributeKey('AcceptedCount', SearchAttributeType.INT);
/** Why a paused or holding campaign is not sending (operator, no-provider, message-refused, store-or-bug, review, reputation); `none` otherwise. */
export const HoldKindKey = defineSearchAttributeKey('HoldKind', SearchAttributeType.KEYWORD);

export const campaignSearchAttributes = [CampaignIdKey, CampaignStatusKey, ActiveProviderKey, AcceptedCountKey, HoldKindKey];
