/**
 * SMTP provider adapter: any SMTP relay, through nodemailer's SMTPConnection in a pool of
 * sessions per provider (./session), classified by what the relay means (./replies).
 *
 * - sendBatch runs at most `pool.maxConnections` messages at a time, one per session. Each
 *   answer is read by its phase of the dialogue and its enhanced status code (RFC 3463):
 *   - the relay refuses US (5.7.x policy, relay or auth refusals, a refused sender, a 5xx at
 *     connect): a ProviderUnavailableError, the campaign switches provider; nobody is rejected;
 *   - a busy or briefly broken relay (421, 4.3.x, timeouts and resets before the data): a
 *     TransientProviderError, the batch is retried on the same provider;
 *   - one recipient later (4.2.2 full, 4.7.x greylisting, 4.4.x): reported `deferred`;
 *   - one recipient for good (5.1.x no such mailbox, 5.2.1 disabled, 5.2.2 full, a message
 *     the relay will not take): reported `rejected` (hard bounces are suppressed);
 *   - a connection lost after the message data was written, with no reply: the relay may have
 *     it: a TransientProviderError with that recipient in doubt (the in-flight policy decides).
 *   On a provider-level error no new message starts; those in flight finish and report.
 * - The message is marked dispatched (`dispatching`) after the relay said 354 to DATA, right
 *   before the data: rows that never got that far cannot have been accepted.
 * - SMTP cannot look a message up, so there is no `lookup`.
 * - Each message's MIME is built once by ./mime-message (nodemailer's MailComposer for the
 *   unusual message it leaves out).
 *
 * Error messages name the provider, the phase, what the reply means and the server's text with
 * addresses scrubbed; they never contain the password.
 */
import { combineFailures } from '../parallel-calls';
import MailComposer from 'nodemailer/lib/mail-composer';
import { ProviderUnavailableError, RecipientDeferredError, RecipientPermanentError, TransientProviderError, type ClassifiedError } from '../../errors';
import { buildMime, type RawMessage } from '../mime-message';
import type { OutgoingMessage, Provider, SendResult } from '../provider';
import { scrubAddresses } from '../refusals';
import { classifySmtpReply, parseSmtpReply, type SmtpPhase } from './replies';
import { MessageWithdrawnError, phaseOfCommand, SmtpSession, SmtpSessionPool, SmtpStepError, type SmtpStepFailure } from './session';

export interface SmtpProviderConfig {
  name: string;
  host: string;
  port: number;
  /** Implicit TLS (port 465 style). Default false. */
  secure?: boolean;
  /** Fail unless STARTTLS succeeds. Default false. */
  requireTLS?: boolean;
  auth?: { user: string; pass: string };
  pool?: {
    /** Connections (and messages in flight) at most. Default 5. */
    maxConnections?: number;
    /** Messages per connection before it is replaced. Default 1000. */
    maxMessages?: number;
  };
  timeouts?: {
    /** TCP connect. Default 15 s. */
    connectionMs?: number;
    /** Wait for the 220 greeting. Default 15 s. */
    greetingMs?: number;
    /** Inactivity on an open connection (also the longest wait for the reply to a message). Default 60 s. */
    socketMs?: number;
  };
}

const DEFAULT_MAX_CONNECTIONS = 5;
const DEFAULT_MAX_MESSAGES = 1000;
const DEFAULT_CONNECTION_MS = 15_000;
const DEFAULT_GREETING_MS = 15_000;
const DEFAULT_SOCKET_MS = 60_000;
/** Idle sessions are closed after this (relays close idle sessions themselves after a few minutes). */
const IDLE_MS = 30_000;

/** Node system error codes that mean "nobody is there": switch provider rather than retry. */
const UNREACHABLE: Record<string, (host: string, where: string) => string> = {
  ECONNREFUSED: (_host, where) => `connection refused at ${where}`,
  ENOTFOUND: (host) => `host ${host} not found`,
  EHOSTUNREACH: (_host, where) => `host unreachable at ${where}`,
  ENETUNREACH: (_host, where) => `network unreachable at ${where}`,
};

/** The phase as a person reads it in an error message. */
const PHASE_LABEL: Record<SmtpPhase, string> = {
  connect: 'connect',
  ehlo: 'EHLO',
  starttls: 'STARTTLS',
  auth: 'AUTH',
  mail: 'MAIL FROM',
  rcpt: 'RCPT TO',
  data: 'DATA',
  message: 'end of data',
};

/** Errors a connection lost before any reply shows (nothing the relay said). */
const CONNECTION_LOST = new Set(['ECONNECTION', 'ETIMEDOUT', 'ESOCKET', 'ECONNRESET', 'EPIPE', 'EPROTOCOL']);

/** What one answer means for the message it was about. */
type Verdict =
  | { kind: 'rejected'; reason: string; hardBounce: boolean; signature: string }
  | { kind: 'deferred'; reason: string; signature: string }
  | { kind: 'error'; error: ClassifiedError };

export class SmtpProvider implements Provider {
  readonly name: string;
  readonly kind = 'smtp';
  /** A message's reply comes within the socket timeout of its data; a little slack for the ledger write. */
  readonly inDoubtWindowMs: number;

  private readonly config: SmtpProviderConfig;
  private pool?: SmtpSessionPool;

  constructor(config: SmtpProviderConfig) {
    this.config = config;
    this.name = config.name;
    this.inDoubtWindowMs = (config.timeouts?.socketMs ?? DEFAULT_SOCKET_MS) + 2_000;
  }

  private get maxConnections(): number {
    return Math.max(1, Math.floor(this.config.pool?.maxConnections ?? DEFAULT_MAX_CONNECTIONS));
  }

  private sessions(): SmtpSessionPool {
    if (!this.pool) {
      const { host, port, secure, requireTLS, auth, pool, timeouts } = this.config;
      this.pool = new SmtpSessionPool(
        {
          host,
          port,
          secure: secure ?? false,
          requireTLS: requireTLS ?? false,
          auth: auth ? { user: auth.user, pass: auth.pass } : undefined,
          connectionMs: timeouts?.connectionMs ?? DEFAULT_CONNECTION_MS,
          greetingMs: timeouts?.greetingMs ?? DEFAULT_GREETING_MS,
          socketMs: timeouts?.socketMs ?? DEFAULT_SOCKET_MS,
          maxMessages: pool?.maxMessages ?? DEFAULT_MAX_MESSAGES,
          idleMs: IDLE_MS,
        },
        this.maxConnections,
      );
    }
    return this.pool;
  }

  async sendBatch(
    messages: OutgoingMessage[],
    report: (message: OutgoingMessage, result: SendResult) => Promise<void>,
    dispatching?: (messages: OutgoingMessage[]) => Promise<OutgoingMessage[]>,
    signal?: AbortSignal,
  ): Promise<void> {
    if (messages.length === 0) return;
    const pool = this.sessions();
    let next = 0;
    /** Failures in order: a provider-level ClassifiedError, or whatever `report` or `dispatching` threw. */
    const failures: unknown[] = [];

    const worker = async (): Promise<void> => {
      // The previous message's report is written by the time the next message is handed over.
      let reporting: Promise<void> = Promise.resolve();
      try {
        while (failures.length === 0 && next < messages.length) {
          const message = messages[next++]!;
          const previous = reporting;
          let result: SendResult | 'withdrawn';
          try {
            result = await this.sendOne(pool, message, signal, async () => {
              if (failures.length) return false;
              // The previous report and this dispatch mark are asked for together, so the ledger writes
              // them in one transaction (one commit, one fsync, per message and connection).
              const [, mine] = await Promise.all([previous, dispatching ? dispatching([message]) : Promise.resolve([message])]);
              return mine.length > 0;
            });
          } catch (err) {
            failures.push(err);
            return;
          }
          if (result !== 'withdrawn') {
            reporting = report(message, result);
            // Awaited by the next message (or at the end); marked handled now, so a ledger failure
            // meanwhile is not an unhandled rejection (which a worker's runtime treats as fatal).
            reporting.catch(() => undefined);
          }
        }
      } finally {
        try {
          await reporting;
        } catch (err) {
          failures.push(err);
        }
      }
    };

    const workers: Promise<void>[] = [];
    for (let i = 0; i < Math.min(this.maxConnections, messages.length); i++) workers.push(worker());
    await Promise.all(workers);
    if (failures.length) {
      const error = combineFailures(failures);
      if (error instanceof TransientProviderError || error instanceof ProviderUnavailableError) pool.drain();
      throw error;
    }
  }

  /** One message on one session: its result, 'withdrawn' when `beforeData` said no, or a thrown provider-level error. */
  private async sendOne(
    pool: SmtpSessionPool,
    message: OutgoingMessage,
    signal: AbortSignal | undefined,
    beforeData: () => Promise<boolean>,
  ): Promise<SendResult | 'withdrawn'> {
    const built = buildMime(message) ?? (await composeWithNodemailer(message));
    for (let attempt = 1; ; attempt++) {
      let acquired: { session: SmtpSession; reused: boolean };
      try {
        acquired = await pool.acquire(signal);
      } catch (err) {
        throw this.classify(err);
      }
      const { session, reused } = acquired;
      let healthy = false;
      try {
        await session.send(built.envelope, built.raw, beforeData);
        healthy = true;
        return { status: 'accepted', providerMessageId: message.messageId };
      } catch (err) {
        if (err instanceof MessageWithdrawnError) return 'withdrawn';
        if (!(err instanceof SmtpStepError)) throw err; // the ledger or a cancellation, right before the data
        const f = err.failure;
        // A session the relay closed while it sat idle fails before a byte of the message: try once on a fresh one.
        if (reused && attempt === 1 && !f.reply && !f.replyLost && f.code !== undefined && CONNECTION_LOST.has(f.code)) continue;
        const verdict = this.verdict(f);
        if (verdict.kind === 'error') {
          // The relay may have taken it: in doubt (left in flight for the next attempt), not unsent.
          if (f.replyLost) throw new TransientProviderError(verdict.error.message, undefined, [message.seq]);
          throw verdict.error;
        }
        healthy = await session.reset();
        return verdict.kind === 'rejected'
          ? { status: 'rejected', reason: verdict.reason, hardBounce: verdict.hardBounce, signature: verdict.signature }
          : { status: 'deferred', reason: verdict.reason, signature: verdict.signature };
      } finally {
        pool.release(session, healthy);
      }
    }
  }

  /** What a failed step means: the taxonomy of design.md by phase, reply and enhanced code. */
  private verdict(f: SmtpStepFailure): Verdict {
    const name = this.name;
    const where = `${this.config.host}:${this.config.port}`;
    const at = PHASE_LABEL[f.phase];
    const reply = f.reply ? parseSmtpReply(f.reply) : undefined;
    if (reply) {
      const v = classifySmtpReply(f.phase, reply);
      const text = `${name}: ${v.meaning.replace(` at ${at} `, ' ')} at ${at}: "${this.shown(reply.text)}"`;
      switch (v.action) {
        case 'rejected':
          return { kind: 'rejected', reason: text, hardBounce: v.hardBounce, signature: v.signature };
        case 'deferred':
          return { kind: 'deferred', reason: text, signature: v.signature };
        case 'provider':
          return { kind: 'error', error: new ProviderUnavailableError(text) };
        case 'transient':
          return { kind: 'error', error: new TransientProviderError(text) };
      }
    }
    const unreachable = f.systemCode ? UNREACHABLE[f.systemCode] : undefined;
    if (unreachable) return { kind: 'error', error: new ProviderUnavailableError(`${name}: ${unreachable(this.config.host, where)}`) };
    const detail = this.shown(f.message);
    if (f.replyLost) {
      return {
        kind: 'error',
        error: new TransientProviderError(
          `${name}: no reply after the message data (${f.code ?? 'connection lost'}: ${detail}); the relay may have it, so it is in doubt`,
        ),
      };
    }
    switch (f.code) {
      case 'EAUTH':
        return { kind: 'error', error: new ProviderUnavailableError(`${name}: authentication failed (${detail})`) };
      case 'ETLS':
        return { kind: 'error', error: new ProviderUnavailableError(`${name}: TLS with ${where} failed at ${at} (${detail})`) };
      case 'ECONFIG':
        return { kind: 'error', error: new ProviderUnavailableError(`${name}: invalid SMTP configuration (${detail})`) };
      case 'EENVELOPE':
      case 'EMESSAGE':
        // Refused by nodemailer before anything reached the relay: an address or message it will not send.
        return { kind: 'rejected', reason: `${name}: message not sendable (${detail})`, hardBounce: false, signature: f.code };
      case 'ETIMEDOUT':
        return { kind: 'error', error: new TransientProviderError(`${name}: timed out talking to ${where} at ${at} (${detail})`) };
      case 'ECONNECTION':
        return { kind: 'error', error: new TransientProviderError(`${name}: connection to ${where} closed unexpectedly at ${at}`) };
      default: {
        const code = f.systemCode && f.systemCode !== f.code ? `${f.code ?? 'error'}/${f.systemCode}` : f.code;
        return {
          kind: 'error',
          error: new TransientProviderError(`${name}: connection to ${where} failed at ${at}${code ? ` (${code}: ${detail})` : ` (${detail})`}`),
        };
      }
    }
  }

  classify(err: unknown): ClassifiedError {
    if (
      err instanceof TransientProviderError ||
      err instanceof RecipientPermanentError ||
      err instanceof RecipientDeferredError ||
      err instanceof ProviderUnavailableError
    ) {
      return err;
    }
    const v = this.verdict(err instanceof SmtpStepError ? err.failure : failureOf(err));
    if (v.kind === 'error') return v.error;
    if (v.kind === 'deferred') return new RecipientDeferredError(v.reason);
    return new RecipientPermanentError(v.reason, v.hardBounce);
  }

  async verify(): Promise<void> {
    const { host, port, secure, requireTLS, auth, timeouts } = this.config;
    let session: SmtpSession;
    try {
      session = await SmtpSession.open({
        host,
        port,
        secure: secure ?? false,
        requireTLS: requireTLS ?? false,
        auth,
        connectionMs: timeouts?.connectionMs ?? DEFAULT_CONNECTION_MS,
        greetingMs: timeouts?.greetingMs ?? DEFAULT_GREETING_MS,
        socketMs: timeouts?.socketMs ?? DEFAULT_SOCKET_MS,
        maxMessages: 1,
        idleMs: IDLE_MS,
      });
    } catch (err) {
      throw this.classify(err);
    }
    session.quit();
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    pool?.close();
  }

  /** Server text as shown to people: no password, no address. */
  private shown(text: string): string {
    return scrubAddresses(this.redact(text.trim().replace(/\s+/g, ' ') || 'unknown error'));
  }

  /** Removes the password (plain or base64, as in AUTH PLAIN/LOGIN) from text shown to users. */
  private redact(text: string): string {
    const auth = this.config.auth;
    if (!auth?.pass) return text;
    const secrets = [auth.pass, Buffer.from(auth.pass).toString('base64'), Buffer.from(`\u0000${auth.user}\u0000${auth.pass}`).toString('base64')].filter(
      (s) => s.length >= 3,
    );
    let out = text;
    for (const secret of secrets) out = out.split(secret).join('***');
    return out;
  }
}

/** A nodemailer (or Node) error as a failed step: its phase from the command nodemailer names. */
function failureOf(err: unknown): SmtpStepFailure {
  const e = (typeof err === 'object' && err !== null ? err : { message: String(err) }) as Record<string, unknown>;
  const code = typeof e.code === 'string' ? e.code : undefined;
  const command = typeof e.command === 'string' ? e.command.toUpperCase() : undefined;
  const phase: SmtpPhase =
    code === 'EMESSAGE' && command === 'DATA' ? 'message' : code === 'EENVELOPE' && command === 'DATA' ? 'data' : phaseOfCommand(command, 'connect');
  const response = typeof e.response === 'string' && /^[2-5]\d\d/.test(e.response.trim()) ? e.response.trim() : undefined;
  const systemCandidates = [e.originalCode, e.errno, code, (e.cause as Record<string, unknown> | undefined)?.code];
  let systemCode = systemCandidates.find((c): c is string => typeof c === 'string' && c in UNREACHABLE);
  if (!systemCode) {
    const m = /\b(ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|ECONNRESET|EPIPE)\b/.exec(typeof e.message === 'string' ? e.message : '');
    systemCode = m?.[1] ?? (typeof e.originalCode === 'string' ? e.originalCode : undefined);
  }
  return {
    phase,
    reply: response,
    code,
    systemCode,
    replyLost: false,
    message: typeof e.message === 'string' ? e.message : String(e.message ?? 'unknown error'),
  };
}

/** The unusual message ./mime-message leaves out (non-ASCII addresses...): nodemailer composes it. */
async function composeWithNodemailer(message: OutgoingMessage): Promise<RawMessage> {
  const node = new MailComposer({
    from: message.from,
    to: message.to,
    subject: message.subject,
    text: message.text,
    html: message.html,
    messageId: message.messageId,
    headers: message.headers,
    ...(message.envelopeFrom ? { envelope: { from: message.envelopeFrom, to: [message.to] } } : {}),
  }).compile();
  const raw = await node.build();
  const envelope = node.getEnvelope();
  return { envelope: { from: envelope.from || message.envelopeFrom || '', to: envelope.to }, raw };
}
