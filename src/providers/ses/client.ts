/**
 * AWS's SES v2 client, loaded when first used: a CLI command that only reads the provider file
 * never loads the AWS SDK (about a quarter of a second).
 */
import type * as SesV2 from '@aws-sdk/client-sesv2';
import type { SESv2Client } from '@aws-sdk/client-sesv2';
import type { SesProviderConfig } from './provider';

export type SesSdk = typeof SesV2;

let sdk: Promise<SesSdk> | undefined;

export function loadSesSdk(): Promise<SesSdk> {
  sdk ??= import('@aws-sdk/client-sesv2');
  return sdk;
}

/**
 * A client for a provider's account: its region, endpoint and credentials (else the SDK's default
 * chain); calls time out after `timeoutMs` (default 30 s). `maxAttempts` 1 for sends: the SDK must
 * not retry a SendEmail whose answer was lost.
 */
export async function sesClient(config: SesProviderConfig, maxAttempts: number): Promise<{ client: SESv2Client; sdk: SesSdk }> {
  const loaded = await loadSesSdk();
  const { region, endpoint, accessKeyId, secretAccessKey, sessionToken } = config;
  const timeoutMs = config.timeoutMs ?? 30_000;
  const client = new loaded.SESv2Client({
    region,
    maxAttempts,
    requestHandler: { requestTimeout: timeoutMs, connectionTimeout: Math.min(timeoutMs, 10_000), throwOnRequestTimeout: true },
    ...(endpoint ? { endpoint } : {}),
    ...(accessKeyId && secretAccessKey ? { credentials: { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) } } : {}),
  });
  return { client, sdk: loaded };
}
