/**
 * SMTP provider adapter: any SMTP relay, through one pooled nodemailer transport.
 *
 * - One pooled transport per provider instance, created on first use and reused across
 *   batches; it is thrown away (and recreated on the next batch) after a provider-level error.
 * - sendBatch runs at most `pool.maxConnections` messages at a time. A recipient-level
 *   rejection is reported and the batch goes on; a transient or unavailable error stops new
 *   messages from starting, lets the in-flight ones finish (and report), then is thrown.
 * - SMTP cannot look a message up, so there is no `lookup`.
 * - Each message's MIME is built once by ./mime-message and handed over as `raw` with its
 *   envelope (MAIL FROM = envelopeFrom when set); nodemailer composes only what that leaves out.
 *
 * Error messages name the provider, the SMTP command, the reply code and the server's text;
 * they never contain the password.
 */
import nodemailer from 'nodemailer';
import type { Transporter } from 'nodemailer';
import {
  ProviderUnavailableError,
  RecipientPermanentError,
  TransientProviderError,
  type ClassifiedError,
} from '../errors';
import { buildMime } from './mime-message';
import type { OutgoingMessage, Provider, SendResult } from './provider';

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
    /** Inactivity on an open connection. Default 60 s. */
    socketMs?: number;
  };
}

const DEFAULT_MAX_CONNECTIONS = 5;
const DEFAULT_MAX_MESSAGES = 1000;
const DEFAULT_CONNECTION_MS = 15_000;
const DEFAULT_GREETING_MS = 15_000;
const DEFAULT_SOCKET_MS = 60_000;

/** What nodemailer (and Node's net layer) put on their errors. */
interface SmtpErrorLike {
  message?: unknown;
  code?: unknown;
  originalCode?: unknown;
  errno?: unknown;
  syscall?: unknown;
  responseCode?: unknown;
  response?: unknown;
  command?: unknown;
  cause?: unknown;
}

/** Node system error codes that mean "nobody is there": switch provider rather than retry. */
const UNREACHABLE: Record<string, (host: string, where: string) => string> = {
  ECONNREFUSED: (_host, where) => `connection refused at ${where}`,
  ENOTFOUND: (host) => `host ${host} not found`,
  EHOSTUNREACH: (_host, where) => `host unreachable at ${where}`,
  ENETUNREACH: (_host, where) => `network unreachable at ${where}`,
};

/** Session-level commands: a 5xx here is about the provider, not about one message. */
const SESSION_COMMANDS = new Set(['CONN', 'GREETING', 'EHLO', 'HELO', 'LHLO', 'STARTTLS', 'RSET', 'NOOP', 'QUIT']);

export class SmtpProvider implements Provider {
  readonly name: string;
  readonly kind = 'smtp';

  private readonly config: SmtpProviderConfig;
  private transport: Transporter | null = null;
  /** Batches currently using `transport`. */
  private users = 0;
  /** Set after a provider-level error: the transport is replaced once no batch uses it. */
  private broken = false;

  constructor(config: SmtpProviderConfig) {
    this.config = config;
    this.name = config.name;
  }

  private get maxConnections(): number {
    return Math.max(1, Math.floor(this.config.pool?.maxConnections ?? DEFAULT_MAX_CONNECTIONS));
  }

  private acquireTransport(): Transporter {
    if (this.broken && this.users === 0) this.discardTransport();
    if (!this.transport) {
      const { host, port, secure, requireTLS, auth, pool, timeouts } = this.config;
      this.transport = nodemailer.createTransport({
        pool: true,
        host,
        port,
        secure: secure ?? false,
        requireTLS: requireTLS ?? false,
        auth: auth ? { user: auth.user, pass: auth.pass } : undefined,
        maxConnections: this.maxConnections,
        maxMessages: pool?.maxMessages ?? DEFAULT_MAX_MESSAGES,
        connectionTimeout: timeouts?.connectionMs ?? DEFAULT_CONNECTION_MS,
        greetingTimeout: timeouts?.greetingMs ?? DEFAULT_GREETING_MS,
        socketTimeout: timeouts?.socketMs ?? DEFAULT_SOCKET_MS,
        disableFileAccess: true,
        disableUrlAccess: true,
        logger: false,
        debug: false,
      });
    }
    this.users += 1;
    return this.transport;
  }

  private releaseTransport(): void {
    this.users -= 1;
    if (this.broken && this.users === 0) this.discardTransport();
  }

  private discardTransport(): void {
    const transport = this.transport;
    this.transport = null;
    this.broken = false;
    transport?.close();
  }

  async sendBatch(
    messages: OutgoingMessage[],
    report: (message: OutgoingMessage, result: SendResult) => Promise<void>,
    dispatching?: (messages: OutgoingMessage[]) => Promise<OutgoingMessage[]>,
  ): Promise<void> {
    if (messages.length === 0) return;
    const transport = this.acquireTransport();
    let next = 0;
    /** First failure: a provider-level ClassifiedError, or whatever `report` threw. */
    let failure: { error: unknown } | null = null;

    const worker = async (): Promise<void> => {
      // The previous message's report is awaited together with the next message's dispatch
      // mark, so the ledger can write both in one transaction; both are done before the next send.
      let reporting: Promise<void> = Promise.resolve();
      try {
        while (failure === null && next < messages.length) {
          const message = messages[next++]!;
          let mine: OutgoingMessage[];
          try {
            [, mine] = await Promise.all([reporting, dispatching ? dispatching([message]) : Promise.resolve([message])]);
            reporting = Promise.resolve();
          } catch (err) {
            failure ??= { error: err };
            return;
          }
          if (mine.length === 0) continue; // another attempt holds it
          let result: SendResult;
          try {
            // Built here once (see ./mime-message); null for the unusual message nodemailer composes itself.
            const built = buildMime(message);
            const info: { messageId?: string } = await transport.sendMail(
              built
                ? { envelope: built.envelope, raw: built.raw, messageId: message.messageId }
                : {
                    from: message.from,
                    to: message.to,
                    subject: message.subject,
                    text: message.text,
                    html: message.html,
                    messageId: message.messageId,
                    headers: message.headers,
                    ...(message.envelopeFrom ? { envelope: { from: message.envelopeFrom, to: [message.to] } } : {}),
                  },
            );
            result = { status: 'accepted', providerMessageId: info.messageId || message.messageId };
          } catch (err) {
            const classified = this.classify(err);
            if (!(classified instanceof RecipientPermanentError)) {
              this.broken = true;
              failure ??= { error: classified };
              return;
            }
            result = { status: 'rejected', reason: classified.message, hardBounce: classified.hardBounce };
          }
          reporting = report(message, result);
        }
      } finally {
        try {
          await reporting;
        } catch (err) {
          failure ??= { error: err };
        }
      }
    };

    try {
      const workers: Promise<void>[] = [];
      for (let i = 0; i < Math.min(this.maxConnections, messages.length); i++) workers.push(worker());
      await Promise.all(workers);
    } finally {
      this.releaseTransport();
    }
    if (failure !== null) throw (failure as { error: unknown }).error;
  }

  classify(err: unknown): ClassifiedError {
    if (err instanceof TransientProviderError || err instanceof RecipientPermanentError || err instanceof ProviderUnavailableError) {
      return err;
    }
    const e: SmtpErrorLike = typeof err === 'object' && err !== null ? (err as SmtpErrorLike) : { message: String(err) };
    const name = this.name;
    const where = `${this.config.host}:${this.config.port}`;
    const code = typeof e.code === 'string' ? e.code : undefined;
    const responseCode = typeof e.responseCode === 'number' ? e.responseCode : undefined;
    const command = typeof e.command === 'string' ? e.command.toUpperCase() : undefined;
    const systemCode = this.systemCode(e);
    const server = this.redact(this.serverText(e));
    const at = command && command !== 'API' ? ` at ${command}` : '';

    // Authentication: wrong or missing credentials do not get better with retries.
    if (responseCode === 530 || responseCode === 534 || responseCode === 535) {
      return new ProviderUnavailableError(`${name}: authentication failed (${server})`);
    }
    if (code === 'EAUTH' || code === 'ENOAUTH' || code === 'EOAUTH2') {
      if (responseCode !== undefined && responseCode >= 400 && responseCode < 500) {
        return new TransientProviderError(`${name}: temporary authentication failure (${server})`);
      }
      return new ProviderUnavailableError(`${name}: authentication failed (${server})`);
    }

    // Nobody listening / no such host.
    const unreachable = systemCode ? UNREACHABLE[systemCode] : undefined;
    if (unreachable) {
      return new ProviderUnavailableError(`${name}: ${unreachable(this.config.host, where)}`);
    }

    if (responseCode !== undefined && responseCode >= 400 && responseCode < 500) {
      return new TransientProviderError(`${name}: temporary failure${at} (${server})`);
    }
    if (responseCode === 503) {
      // Bad sequence of commands: the session was in the wrong state, a new one can succeed.
      return new TransientProviderError(`${name}: server reported a protocol error${at} (${server})`);
    }
    if (responseCode !== undefined && responseCode >= 500 && responseCode < 600) {
      if (command && (SESSION_COMMANDS.has(command) || command.startsWith('AUTH'))) {
        return new ProviderUnavailableError(`${name}: server refused the session${at} (${server})`);
      }
      const onRecipient = command === undefined || command === 'RCPT TO';
      if (onRecipient && (responseCode === 550 || responseCode === 551 || responseCode === 553)) {
        return new RecipientPermanentError(`${name}: recipient rejected${at} (${server})`, true);
      }
      return new RecipientPermanentError(`${name}: message rejected${at} (${server})`, false);
    }

    // Errors without a reply code.
    switch (code) {
      case 'ETIMEDOUT':
        return new TransientProviderError(`${name}: timed out talking to ${where}${at} (${server})`);
      case 'ECONNECTION':
        return new TransientProviderError(`${name}: connection to ${where} closed unexpectedly${at}`);
      case 'ESOCKET':
      case 'ECONNRESET':
      case 'EPIPE':
        return new TransientProviderError(
          `${name}: connection to ${where} failed${at} (${systemCode && systemCode !== code ? `${code}/${systemCode}` : code}: ${server})`,
        );
      case 'EENVELOPE':
      case 'EMESSAGE':
        // Raised before anything reached the server: an address or message nodemailer will not send.
        return new RecipientPermanentError(`${name}: message not sendable (${server})`, false);
      case 'ECONFIG':
        return new ProviderUnavailableError(`${name}: invalid SMTP configuration (${server})`);
      default:
        break;
    }
    return new TransientProviderError(`${name}: ${code ? `${code}: ` : ''}${server}`);
  }

  async verify(): Promise<void> {
    const { host, port, secure, requireTLS, auth, timeouts } = this.config;
    const probe = nodemailer.createTransport({
      host,
      port,
      secure: secure ?? false,
      requireTLS: requireTLS ?? false,
      auth: auth ? { user: auth.user, pass: auth.pass } : undefined,
      connectionTimeout: timeouts?.connectionMs ?? DEFAULT_CONNECTION_MS,
      greetingTimeout: timeouts?.greetingMs ?? DEFAULT_GREETING_MS,
      socketTimeout: timeouts?.socketMs ?? DEFAULT_SOCKET_MS,
      logger: false,
      debug: false,
    });
    try {
      await probe.verify();
    } catch (err) {
      throw this.classify(err);
    } finally {
      probe.close();
    }
  }

  async close(): Promise<void> {
    const transport = this.transport;
    this.transport = null;
    this.broken = false;
    transport?.close();
  }

  /** The Node system error code behind a nodemailer error (ECONNREFUSED is wrapped as ESOCKET). */
  private systemCode(e: SmtpErrorLike): string | undefined {
    const candidates: unknown[] = [e.originalCode, e.code, typeof e.errno === 'string' ? e.errno : undefined];
    if (typeof e.cause === 'object' && e.cause !== null) candidates.push((e.cause as SmtpErrorLike).code);
    for (const c of candidates) if (typeof c === 'string' && c in UNREACHABLE) return c;
    const message = typeof e.message === 'string' ? e.message : '';
    const match = /\b(ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|ECONNRESET|EPIPE|ETIMEDOUT)\b/.exec(message);
    if (match) return match[1];
    const first = candidates.find((c): c is string => typeof c === 'string');
    return first;
  }

  /** The server's reply ("550 5.1.1 mailbox unavailable") when there is one, else the error text. */
  private serverText(e: SmtpErrorLike): string {
    if (typeof e.response === 'string' && e.response.trim()) return e.response.trim().replace(/\s+/g, ' ');
    const message = typeof e.message === 'string' ? e.message : String(e.message ?? 'unknown error');
    return message.trim().replace(/\s+/g, ' ') || 'unknown error';
  }

  /** Removes the password (plain or base64, as in AUTH PLAIN/LOGIN) from text shown to users. */
  private redact(text: string): string {
    const auth = this.config.auth;
    if (!auth?.pass) return text;
    const secrets = [
      auth.pass,
      Buffer.from(auth.pass).toString('base64'),
      Buffer.from(`\u0000${auth.user}\u0000${auth.pass}`).toString('base64'),
    ].filter((s) => s.length >= 3);
    let out = text;
    for (const secret of secrets) out = out.split(secret).join('***');
    return out;
  }
}
