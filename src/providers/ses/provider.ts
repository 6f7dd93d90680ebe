/**
 * Amazon SES provider, through the SES v2 API with AWS's own client (@aws-sdk/client-sesv2).
 *
 * - One SendEmail per recipient, with the message mailover renders as Raw content (built by
 *   ../mime-message like the SMTP provider's, so headers, List-Unsubscribe and encodings are the
 *   same through every provider), ConfigurationSetName when configured, and EmailTags
 *   `mailover-campaign` and `mailover-seq` (they come back in SES's event notifications).
 * - Concurrency and pace: the account's maximum send rate (GetAccount SendQuota.MaxSendRate) is
 *   read before the first send and every minute after; calls start at most that many per second,
 *   with at most min(`concurrency`, MaxSendRate) open at once.
 * - The client never retries by itself (maxAttempts 1): a retried SendEmail whose first answer
 *   was lost could mail the recipient twice. mailover's engine retries instead.
 * - Errors by ./errors.ts. A call that may have reached SES but got no answer (reset, timeout,
 *   5xx) leaves its message in doubt (the error's `inDoubt`). SES cannot be asked whether it took
 *   a message (its API has no look-up by message), so there is no `lookup`: the worker's
 *   `inFlight` policy (resend or hold) applies to them, as for SMTP.
 */
import type { SESv2Client } from '@aws-sdk/client-sesv2';
import MailComposer from 'nodemailer/lib/mail-composer';
import { ProviderUnavailableError, RecipientPermanentError, TransientProviderError, type ClassifiedError } from '../../errors';
import { buildMime } from '../mime-message';
import type { OutgoingMessage, Provider, SendResult } from '../provider';
import { sesClient, type SesSdk } from './client';
import { classifySesError } from './errors';

export interface SesProviderConfig {
  name: string;
  /** AWS region of the SES account, e.g. eu-west-1. */
  region: string;
  /** API endpoint other than AWS's for the region (the emulator, a VPC endpoint). */
  endpoint?: string;
  /** Credentials, as environment references; absent: the AWS SDK's default chain (environment, profile, instance role). */
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  /** Configuration set every message is sent with (its event destinations publish the events). */
  configurationSet?: string;
  /** SendEmail calls open at once, at most (default 10; never more than the account's MaxSendRate). */
  concurrency?: number;
  /** Per-call timeout (default 30 s). */
  timeoutMs?: number;
  /** The SNS topic SES publishes this provider's events to: `mailover webhooks` takes its notifications. */
  sns?: {
    topicArn: string;
    /**
     * Only for a local SES emulator (`mailover dev` sets it): loopback `host:port`s its signing
     * certificates are taken from instead of `sns.<region>.amazonaws.com`. Absent in production.
     */
    certificateHosts?: string[];
  };
}

/** How long an account read (its send rate) is used before it is read again. */
const ACCOUNT_TTL_MS = 60_000;
/** SES message tag values: ASCII letters, digits, '_', '-', '.', '@' at most 256 (SES v2 MessageTag). */
const TAG_VALUE = /[^A-Za-z0-9_.@-]/g;

export const sesTagValue = (value: string) => value.replace(TAG_VALUE, '_').slice(0, 256);

/** The raw message for SES (the same MIME the SMTP provider sends). */
async function rawMessage(message: OutgoingMessage): Promise<Buffer> {
  const built = buildMime(message);
  if (built) return built.raw;
  return new MailComposer({
    from: message.from,
    to: message.to,
    subject: message.subject,
    text: message.text,
    html: message.html,
    messageId: message.messageId,
    headers: message.headers,
  })
    .compile()
    .build();
}

interface Account {
  maxSendRate: number;
  sendingEnabled: boolean;
  readAt: number;
}

export class SesProvider implements Provider {
  readonly kind = 'ses';
  readonly name: string;
  readonly inDoubtWindowMs: number;
  private readonly timeoutMs: number;
  private readonly concurrency: number;
  private client?: Promise<{ client: SESv2Client; sdk: SesSdk }>;
  private account?: Account;
  private nextSlotAt = 0;

  constructor(private readonly config: SesProviderConfig) {
    this.name = config.name;
    this.timeoutMs = config.timeoutMs ?? 30_000;
    this.concurrency = Math.max(1, config.concurrency ?? 10);
    this.inDoubtWindowMs = this.timeoutMs + 2_000;
  }

  private ses(): Promise<{ client: SESv2Client; sdk: SesSdk }> {
    this.client ??= sesClient(this.config, 1);
    return this.client;
  }

  /** The account's sending limits, read again once a minute. Throws a classified error. */
  async readAccount(force = false): Promise<Account> {
    if (!force && this.account && Date.now() - this.account.readAt < ACCOUNT_TTL_MS) return this.account;
    let out;
    try {
      const { client, sdk } = await this.ses();
      out = await client.send(new sdk.GetAccountCommand({}));
    } catch (err) {
      throw this.classify(err);
    }
    const rate = out.SendQuota?.MaxSendRate;
    this.account = { maxSendRate: typeof rate === 'number' && rate > 0 ? rate : 1, sendingEnabled: out.SendingEnabled !== false, readAt: Date.now() };
    return this.account;
  }

  /** Calls open at once: the configured concurrency, never above the account's send rate. */
  async effectiveConcurrency(): Promise<number> {
    const { maxSendRate } = await this.readAccount();
    return Math.max(1, Math.min(this.concurrency, Math.floor(maxSendRate)));
  }

  /** Waits for this call's turn: calls start at most MaxSendRate per second (shared by every batch of this provider). */
  private async pace(maxSendRate: number, signal?: AbortSignal): Promise<void> {
    const now = Date.now();
    const at = Math.max(now, this.nextSlotAt);
    this.nextSlotAt = at + 1000 / maxSendRate;
    if (at > now) {
      signal?.throwIfAborted();
      await new Promise((resolve) => setTimeout(resolve, at - now));
    }
  }

  async sendBatch(
    messages: OutgoingMessage[],
    report: (message: OutgoingMessage, result: SendResult) => Promise<void>,
    dispatching?: (messages: OutgoingMessage[]) => Promise<OutgoingMessage[]>,
    signal?: AbortSignal,
  ): Promise<void> {
    const { maxSendRate } = await this.readAccount();
    const width = Math.min(await this.effectiveConcurrency(), messages.length);
    const inDoubt: number[] = [];
    let failure: { error: unknown } | null = null;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (failure === null && next < messages.length) {
        const message = messages[next++];
        try {
          await this.pace(maxSendRate, signal);
          if (failure !== null) return;
          const mine = dispatching ? await dispatching([message]) : [message];
          if (!mine.length) continue;
          const result = await this.sendOne(message, signal, inDoubt);
          await report(message, result);
        } catch (err) {
          failure ??= { error: err };
        }
      }
    };
    await Promise.all(Array.from({ length: width }, worker));
    if (failure === null) return;
    const error = (failure as { error: unknown }).error;
    if (!inDoubt.length) throw error;
    // Some calls may have reached SES: whatever else went wrong, their messages stay in flight.
    const reason = error instanceof Error ? error.message : String(error);
    const retryAfterMs = error instanceof TransientProviderError ? error.retryAfterMs : undefined;
    throw new TransientProviderError(
      `${reason}${inDoubt.length > 1 || !reason.includes('in doubt') ? ` (${inDoubt.length} message(s) in doubt)` : ''}`,
      retryAfterMs,
      inDoubt,
    );
  }

  /** One SendEmail: accepted or rejected for this recipient, else throws a classified error (noting in `inDoubt` a call that may have reached SES). */
  private async sendOne(message: OutgoingMessage, signal: AbortSignal | undefined, inDoubt: number[]): Promise<SendResult> {
    const raw = await rawMessage(message);
    const { client, sdk } = await this.ses();
    const command = new sdk.SendEmailCommand({
      Destination: { ToAddresses: [message.to] },
      Content: { Raw: { Data: raw } },
      ...(this.config.configurationSet ? { ConfigurationSetName: this.config.configurationSet } : {}),
      EmailTags: [
        { Name: 'mailover-campaign', Value: sesTagValue(message.campaignId) },
        { Name: 'mailover-seq', Value: String(message.seq) },
      ],
    });
    try {
      const out = await client.send(command, { abortSignal: signal });
      return { status: 'accepted', providerMessageId: out.MessageId || message.messageId };
    } catch (err) {
      const verdict = classifySesError(err, this.name, true);
      if (verdict.kind === 'rejected') return { status: 'rejected', reason: verdict.reason, hardBounce: verdict.hardBounce, signature: verdict.signature };
      if (verdict.inDoubt) inDoubt.push(message.seq);
      throw verdict.error;
    }
  }

  classify(err: unknown): ClassifiedError {
    if (err instanceof TransientProviderError || err instanceof ProviderUnavailableError || err instanceof RecipientPermanentError) return err;
    const verdict = classifySesError(err, this.name, false);
    return verdict.kind === 'error' ? verdict.error : new RecipientPermanentError(verdict.reason, verdict.hardBounce);
  }

  /** GetAccount: reachable, credentials taken, sending enabled. */
  async verify(): Promise<void> {
    const account = await this.readAccount(true);
    if (!account.sendingEnabled) throw new ProviderUnavailableError(`${this.name}: sending is paused for the SES account (GetAccount SendingEnabled false)`);
  }

  async close(): Promise<void> {
    const pending = this.client;
    this.client = undefined;
    if (pending) (await pending).client.destroy();
  }
}
