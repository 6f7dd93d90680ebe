/**
 * SMTP sessions over nodemailer's SMTPConnection, pooled per provider, that know where in the
 * dialogue a failure happened.
 *
 * nodemailer's pooled transport reports a lost connection the same way before MAIL FROM and after
 * the message data (`ECONNECTION` / `ETIMEDOUT` at `CONN`). The difference is everything: before
 * the final dot the relay cannot have the message; after it, the relay may have taken it while
 * we never heard (the reply is lost), so the recipient is in doubt. Holding our own sessions
 * lets us see that moment: the message body is a stream SMTPConnection starts reading only after
 * the relay said 354 to DATA, and once it has read all of it the data and the dot are written.
 *
 * - `SmtpSession`: one connection: connect (greeting, EHLO, STARTTLS), login, then messages one
 *   at a time; a failed step throws an `SmtpStepError` naming its phase and the reply.
 * - `SmtpSessionPool`: at most `maxConnections` sessions per provider, shared by every batch on
 *   the worker; idle ones are reused (a session the relay closed while idle is replaced), closed
 *   after `maxMessages` or when idle too long.
 */
import { Readable } from 'stream';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { SmtpPhase } from './replies';

export interface SmtpSessionSettings {
  host: string;
  port: number;
  secure: boolean;
  requireTLS: boolean;
  auth?: { user: string; pass: string };
  connectionMs: number;
  greetingMs: number;
  socketMs: number;
  /** Messages per session before it is replaced. */
  maxMessages: number;
  /** Close a session left idle this long. */
  idleMs: number;
}

/** What went wrong in one step of the dialogue. */
export interface SmtpStepFailure {
  phase: SmtpPhase;
  /** The server's reply, when there was one ("550 5.7.1 Relay access denied"). */
  reply?: string;
  /** nodemailer's error code (EENVELOPE, EMESSAGE, ECONNECTION, ETIMEDOUT, ESOCKET, EAUTH, ETLS...). */
  code?: string;
  /** The Node system error behind it (ECONNREFUSED, ECONNRESET...), when there is one. */
  systemCode?: string;
  /** The connection was lost after the message data was written, with no reply: the relay may have it. */
  replyLost: boolean;
  /** nodemailer's message, for the error text. */
  message: string;
}

export class SmtpStepError extends Error {
  override readonly name = 'SmtpStepError';
  constructor(readonly failure: SmtpStepFailure) {
    super(failure.message);
  }
}

/** The message was not handed over: the caller decided against it right before the data (another attempt owns it). */
export class MessageWithdrawnError extends Error {
  override readonly name = 'MessageWithdrawnError';
}

interface NodemailerError {
  code?: unknown;
  originalCode?: unknown;
  errno?: unknown;
  response?: unknown;
  command?: unknown;
  message?: unknown;
  cause?: unknown;
}

const SYSTEM_CODES = /\b(ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|ECONNRESET|EPIPE|ETIMEDOUT|EAI_AGAIN)\b/;

function systemCodeOf(e: NodemailerError): string | undefined {
  const candidates: unknown[] = [e.originalCode, typeof e.errno === 'string' ? e.errno : undefined, e.code];
  if (typeof e.cause === 'object' && e.cause !== null) candidates.push((e.cause as NodemailerError).code);
  for (const c of candidates) if (typeof c === 'string' && SYSTEM_CODES.test(c)) return c;
  const match = SYSTEM_CODES.exec(typeof e.message === 'string' ? e.message : '');
  return match?.[1];
}

/** The phase nodemailer's `command` names (`fallback` when it names none or only the connection). */
export function phaseOfCommand(command: unknown, fallback: SmtpPhase): SmtpPhase {
  const c = typeof command === 'string' ? command.toUpperCase() : '';
  if (c === 'MAIL FROM') return 'mail';
  if (c === 'RCPT TO') return 'rcpt';
  if (c === 'EHLO' || c === 'HELO' || c === 'LHLO') return 'ehlo';
  if (c === 'STARTTLS') return 'starttls';
  if (c.startsWith('AUTH')) return 'auth';
  return fallback;
}

function stepError(err: unknown, phase: SmtpPhase, replyLost = false): SmtpStepError {
  const e: NodemailerError = typeof err === 'object' && err !== null ? (err as NodemailerError) : { message: String(err) };
  const reply = typeof e.response === 'string' && /^[2-5]\d\d/.test(e.response.trim()) ? e.response.trim() : undefined;
  return new SmtpStepError({
    phase,
    reply,
    code: typeof e.code === 'string' ? e.code : undefined,
    systemCode: systemCodeOf(e),
    replyLost: replyLost && reply === undefined,
    message: typeof e.message === 'string' ? e.message : String(err),
  });
}

/** One SMTP connection, used for one message at a time. */
export class SmtpSession {
  messages = 0;
  lastUsed = Date.now();
  private open = true;

  private constructor(private readonly conn: SMTPConnection) {
    // A connection that dies reports 'error' (already turned into the pending step's error) and 'end'.
    conn.on('error', () => undefined);
    conn.once('end', () => {
      this.open = false;
    });
  }

  get usable(): boolean {
    return this.open;
  }

  static async open(settings: SmtpSessionSettings): Promise<SmtpSession> {
    const conn = new SMTPConnection({
      host: settings.host,
      port: settings.port,
      secure: settings.secure,
      requireTLS: settings.requireTLS,
      connectionTimeout: settings.connectionMs,
      greetingTimeout: settings.greetingMs,
      socketTimeout: settings.socketMs,
      logger: false,
      debug: false,
    });
    const session = new SmtpSession(conn);
    try {
      await session.step('connect', (done) => conn.connect(done));
      const auth = settings.auth;
      if (auth) await session.step('auth', (done) => conn.login({ user: auth.user, pass: auth.pass }, done));
    } catch (err) {
      session.close();
      throw err;
    }
    return session;
  }

  /**
   * One message. `beforeData` is awaited after the relay said 354 to DATA, right before the
   * message data is written; returning false withdraws the message (nothing is written, the
   * session is closed: the relay drops the transaction). Resolves with the relay's reply.
   */
  async send(envelope: { from: string; to: string[] }, raw: Buffer, beforeData: () => Promise<boolean>): Promise<string> {
    this.messages += 1;
    this.lastUsed = Date.now();
    let dataWritten = false;
    let started = false;
    let withdrawn: unknown;
    const body = new Readable({
      read: () => {
        if (started) return;
        started = true;
        beforeData().then(
          (go) => {
            if (go) {
              body.push(raw);
              body.push(null);
            } else {
              withdrawn = new MessageWithdrawnError('withdrawn before the data');
              body.destroy(withdrawn as Error);
            }
          },
          (err: unknown) => {
            withdrawn = err;
            body.destroy(err instanceof Error ? err : new Error(String(err)));
          },
        );
      },
    });
    // All of the data went to the connection (and the final dot right after it).
    body.once('end', () => {
      dataWritten = true;
    });
    try {
      const info = await new Promise<{ response?: string }>((resolve, reject) =>
        this.conn.send(envelope, body, (err, result) => (err ? reject(err) : resolve(result as { response?: string }))),
      );
      this.lastUsed = Date.now();
      return typeof info.response === 'string' ? info.response : '250 OK';
    } catch (err) {
      if (withdrawn !== undefined) {
        this.close();
        throw withdrawn;
      }
      const e = err as NodemailerError;
      const code = typeof e.code === 'string' ? e.code : '';
      const command = typeof e.command === 'string' ? e.command.toUpperCase() : '';
      let phase: SmtpPhase;
      if (code === 'EMESSAGE' && command === 'DATA') phase = 'message';
      else if (code === 'EENVELOPE' && command === 'DATA') phase = 'data';
      else if (command === 'MAIL FROM' && code === 'EMESSAGE')
        phase = 'message'; // too large for the relay's SIZE
      else phase = phaseOfCommand(command, dataWritten ? 'message' : started ? 'data' : 'mail');
      // A connection lost with no reply after the data was written: the relay may have the message.
      const replyLost = dataWritten && phase === 'message' && (code === 'ECONNECTION' || code === 'ETIMEDOUT' || code === 'ESOCKET' || code === 'EPROTOCOL');
      if (code !== 'EENVELOPE' && code !== 'EMESSAGE') this.open = false;
      throw stepError(err, phase, replyLost);
    }
  }

  /** Ends a failed transaction so the session can carry the next message. */
  async reset(): Promise<boolean> {
    try {
      await this.step('mail', (done) => this.conn.reset(done));
      return true;
    } catch {
      this.close();
      return false;
    }
  }

  /**
   * One step whose failure nodemailer may report through its callback, or only as an 'error' (or
   * 'end') event of the connection (a refused connection, a socket lost while logging in).
   */
  private step(phase: SmtpPhase, run: (done: (err?: unknown) => void) => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const finish = (err?: unknown) => {
        if (settled) return;
        settled = true;
        this.conn.off('error', onError);
        this.conn.off('end', onEnd);
        if (err) reject(stepError(err, phaseOfCommand((err as NodemailerError).command, phase)));
        else resolve();
      };
      const onError = (err: unknown) => finish(err);
      const onEnd = () => finish(Object.assign(new Error('Connection closed unexpectedly'), { code: 'ECONNECTION', command: 'CONN' }));
      this.conn.on('error', onError);
      this.conn.once('end', onEnd);
      try {
        run((err) => finish(err ?? undefined));
      } catch (err) {
        finish(err);
      }
    });
  }

  close(): void {
    this.open = false;
    try {
      this.conn.close();
    } catch {
      // already closed
    }
  }

  quit(): void {
    this.open = false;
    try {
      this.conn.quit();
    } catch {
      this.close();
    }
  }
}

/** Sessions of one provider, shared by every batch on the worker. */
export class SmtpSessionPool {
  private readonly idle: SmtpSession[] = [];
  private busy = 0;
  private opening = 0;
  private readonly waiting: Array<() => void> = [];
  private idleTimer?: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly settings: SmtpSessionSettings,
    readonly maxConnections: number,
  ) {}

  /** An idle session, or a new one when fewer than maxConnections exist; else waits for one. */
  async acquire(signal?: AbortSignal): Promise<{ session: SmtpSession; reused: boolean }> {
    for (;;) {
      signal?.throwIfAborted();
      if (this.closed) throw new Error('the SMTP session pool is closed');
      while (this.idle.length) {
        const session = this.idle.pop()!;
        if (session.usable) {
          this.busy++;
          return { session, reused: true };
        }
      }
      if (this.busy + this.opening < this.maxConnections) {
        this.opening++;
        try {
          const session = await SmtpSession.open(this.settings);
          this.busy++;
          return { session, reused: false };
        } finally {
          this.opening--;
          this.wakeOne();
        }
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  /** Gives a session back: kept for the next message when it is healthy, else closed. */
  release(session: SmtpSession, healthy: boolean): void {
    this.busy--;
    if (!healthy || !session.usable || this.closed || session.messages >= this.settings.maxMessages) {
      if (healthy && session.usable) session.quit();
      else session.close();
    } else {
      session.lastUsed = Date.now();
      this.idle.push(session);
      this.scheduleIdleSweep();
    }
    this.wakeOne();
  }

  /** Closes idle sessions now and sessions in use when they come back (after a provider-level failure). */
  drain(): void {
    for (const s of this.idle.splice(0)) s.close();
  }

  close(): void {
    this.closed = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    for (const s of this.idle.splice(0)) s.quit();
    for (const wake of this.waiting.splice(0)) wake();
  }

  private wakeOne(): void {
    this.waiting.shift()?.();
  }

  private scheduleIdleSweep(): void {
    if (this.idleTimer || this.closed) return;
    this.idleTimer = setTimeout(
      () => {
        this.idleTimer = undefined;
        const cutoff = Date.now() - this.settings.idleMs;
        for (let i = this.idle.length - 1; i >= 0; i--) {
          const s = this.idle[i]!;
          if (!s.usable || s.lastUsed <= cutoff) {
            this.idle.splice(i, 1);
            if (s.usable) s.quit();
          }
        }
        if (this.idle.length) this.scheduleIdleSweep();
      },
      Math.max(50, this.settings.idleMs),
    );
    this.idleTimer.unref();
  }
}
