/**
 * SmtpSink: a real SMTP server on loopback that records what it accepts and can be told
 * to misbehave.
 *
 * Used by the tests (the SMTP provider is exercised over real TCP), by the demo and by
 * `mailover dev`. Everything is in memory; nothing is logged.
 *
 *   const sink = await SmtpSink.start({ name: 'smtp-a' });     // free port on 127.0.0.1
 *   sink.rejectRecipients(['gone@example.com']);               // 550 at RCPT TO
 *   sink.failAfter(10, 'refuse');                              // accept 10, then refuse connections
 *   await sink.waitForCount(10);
 *   await sink.heal();                                         // listens again on the same port
 *   await sink.stop();
 *
 * Fault model (each is independent; `heal()` clears all of them):
 * - rejectRecipients: RCPT TO for the listed addresses fails (default 550 5.1.1); a 4xx code defers
 *   them instead (e.g. 452 4.2.2 mailbox full); `acceptRecipients` lifts it for some of them.
 * - failAllRecipients(code, text): every RCPT TO fails with that reply (a relay refusing to relay
 *   for us answers `550 5.7.1 <addr>: Relay access denied`) until `failAllRecipients(null)`.
 * - loseRepliesAfterData(n, how): the next n messages are received whole and KEPT (the relay has
 *   them and will deliver them: they are recorded, with `replyLost`), but the client never hears
 *   the reply: the connection is closed ('close'), reset ('reset'), or left silent until the
 *   client gives up ('silence').
 * - failNextMessages(n, code): the next n transactions fail with a transient code, at MAIL FROM
 *   (default) or at the end of DATA.
 * - failAll(code): every transaction fails at MAIL FROM (and at the end of DATA for those already
 *   past MAIL FROM) until `failAll(null)`.
 * - modes ('auth-fail' | 'refuse' | 'drop'), set now with `setMode` or after n more accepted
 *   messages with `failAfter`:
 *     'auth-fail': AUTH answers 535, and MAIL FROM answers 535 (also on sessions that logged
 *                  in earlier, and when the sink has no auth configured);
 *     'refuse':    the listening socket is closed (new connections get ECONNREFUSED) and every
 *                  open client socket is destroyed;
 *     'drop':      any command received on any session destroys that session's socket.
 * - setAcceptDelay(ms): wait before the 250 reply to DATA.
 *
 * A message is recorded only when the sink is about to send its 250 reply to DATA on a live
 * socket, so `messages` is exactly what a client could have been told was accepted.
 */
import { EventEmitter } from 'node:events';
import { waitForEvents } from '../../dev/wait-for-event';
import type { EspEmulator, ReceivedMessage } from '../provider-module';
import type net from 'node:net';
import { SMTPServer } from 'smtp-server';
import type { SMTPServerAddress, SMTPServerAuthentication, SMTPServerDataStream, SMTPServerSession } from 'smtp-server';

export interface SmtpSinkOptions {
  /** Shown in the SMTP greeting and used in error messages. Default 'smtp-sink'. */
  name?: string;
  /** TCP port; 0 (default) picks a free port. */
  port?: number;
  /** Loopback only. */
  host?: '127.0.0.1';
  /** When given, clients must AUTH PLAIN/LOGIN with these credentials (no TLS; loopback only). */
  auth?: { user: string; pass: string } | undefined;
}

/** One message the sink accepted. */
export interface SinkMessage {
  /** Envelope recipients that were accepted at RCPT TO. */
  to: string[];
  /** Envelope sender (MAIL FROM). */
  from: string;
  /** The Message-ID header as sent, angle brackets included ('' when absent). */
  messageId: string;
  /** Decoded Subject header. */
  subject: string;
  /** Decoded text/plain body (line endings normalised to \n). */
  text: string;
  /** Decoded text/html body, when the message has one (line endings normalised to \n). */
  html?: string;
  /** Top-level headers, lower-case names, unfolded and decoded. Repeated headers are joined with ', '. */
  headers: Record<string, string>;
  acceptedAt: Date;
  /** The relay kept the message but its reply was lost on the way back (loseRepliesAfterData). */
  replyLost?: LostReply;
}

/** How a reply after the message data is lost: the connection closed, reset, or silent until the client times out. */
export type LostReply = 'close' | 'reset' | 'silence';

export type SinkMode = 'ok' | 'auth-fail' | 'refuse' | 'drop';
export type FailAfterMode = 'auth' | 'refuse' | 'drop' | { code: number; message?: string };

interface SmtpError extends Error {
  responseCode: number;
}

const DEFAULT_TEXT: Record<number, string> = {
  421: '4.3.2 service not available, closing transmission channel',
  450: '4.2.0 mailbox temporarily unavailable',
  451: '4.3.0 local error in processing, try again later',
  452: '4.3.1 insufficient system storage',
  530: '5.7.0 authentication required',
  535: '5.7.8 authentication credentials invalid',
  550: '5.1.1 mailbox unavailable',
  552: '5.3.4 message size exceeds fixed limit',
  554: '5.7.1 transaction failed',
};

function smtpError(code: number, message?: string): SmtpError {
  const text = message ?? DEFAULT_TEXT[code] ?? (code >= 500 ? '5.0.0 permanent failure' : '4.0.0 temporary failure');
  const err = new Error(text) as SmtpError;
  err.responseCode = code;
  return err;
}

function normalizeAddress(address: string | undefined): string {
  return (address ?? '').replace(/^::ffff:/i, '');
}

/**
 * Loopback SMTP server for tests and `mailover dev`. Emits 'message' (a SinkMessage) for each
 * accepted message. Create with `SmtpSink.start()`; always `stop()` it.
 */
export class SmtpSink extends EventEmitter implements EspEmulator {
  readonly name: string;
  readonly host: string;
  private _port: number;
  private readonly auth: { user: string; pass: string } | undefined;
  private readonly smtp: SMTPServer;

  private readonly recorded: SinkMessage[] = [];
  /** Every client socket the listener accepted and that is not closed yet. */
  private readonly sockets = new Set<net.Socket>();
  /** `remoteAddress:remotePort` -> socket, to find the socket of an SMTP session. */
  private readonly socketsByPeer = new Map<string, net.Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private _maxConcurrentSessions = 0;
  private _sessionsOpened = 0;

  // Faults
  private rejected = new Map<string, { code: number; message: string }>();
  private failNext: { remaining: number; code: number; stage: 'mail' | 'data' } | null = null;
  private failAllCode: { code: number; message?: string } | null = null;
  private failAllRcpt: { code: number; message?: string } | null = null;
  private loseReplies: { remaining: number; how: LostReply } | null = null;
  private pendingFault: { remaining: number; mode: FailAfterMode } | null = null;
  private _mode: SinkMode = 'ok';
  private acceptDelayMs = 0;

  private listening = false;
  private stopped = false;
  private stopping: Promise<void> | null = null;

  private constructor(opts: SmtpSinkOptions) {
    super();
    this.name = opts.name ?? 'smtp-sink';
    this.host = opts.host ?? '127.0.0.1';
    this._port = opts.port ?? 0;
    this.auth = opts.auth;

    this.smtp = new SMTPServer({
      name: this.name,
      logger: false,
      secure: false,
      disabledCommands: this.auth ? ['STARTTLS'] : ['STARTTLS', 'AUTH'],
      hideSTARTTLS: true,
      authOptional: !this.auth,
      authMethods: ['PLAIN', 'LOGIN'],
      allowInsecureAuth: true,
      disableReverseLookup: true,
      closeTimeout: 500,
      onAuth: (auth, session, callback) => this.onAuth(auth, session, callback),
      onMailFrom: (address, session, callback) => this.onMailFrom(address, session, callback),
      onRcptTo: (address, session, callback) => this.onRcptTo(address, session, callback),
      onData: (stream, session, callback) => this.onData(stream, session, callback),
    });
    // Socket errors (resets from clients, destroyed sockets) surface here; they are expected.
    this.smtp.on('error', () => undefined);
    this.smtp.server.on('connection', (socket: net.Socket) => this.onSocket(socket));
  }

  /** Starts a sink listening on loopback. Resolves once it accepts connections. */
  static async start(opts: SmtpSinkOptions = {}): Promise<SmtpSink> {
    const sink = new SmtpSink(opts);
    await sink.listen();
    return sink;
  }

  /** The port the sink listens on (stays the same across refuse/heal). */
  get port(): number {
    return this._port;
  }

  /** `127.0.0.1:PORT`: where an SMTP provider is pointed (host and port). */
  get endpoint(): string {
    return `${this.host}:${this._port}`;
  }

  /** The credentials clients must AUTH with, if any. */
  get credentials(): { user: string; pass: string } | undefined {
    return this.auth;
  }

  /** Messages accepted so far, in acceptance order. */
  get messages(): readonly SinkMessage[] {
    return this.recorded;
  }

  /** Accepted messages one per envelope recipient, with the envelope sender (EspEmulator). */
  received(): ReceivedMessage[] {
    return this.recorded.flatMap((m) => m.to.map((to) => ({ to, from: m.from, headers: m.headers })));
  }

  get acceptedCount(): number {
    return this.recorded.length;
  }

  /** The current mode ('ok' unless a mode fault is active). */
  get mode(): SinkMode {
    return this._mode;
  }

  /** Highest number of client connections open at the same time since start (or `clear()`). */
  get maxConcurrentSessions(): number {
    return this._maxConcurrentSessions;
  }

  /** Client connections open right now. */
  get openSessions(): number {
    return this.sockets.size;
  }

  /** Client connections accepted since start (or `clear()`). */
  get sessionsOpened(): number {
    return this._sessionsOpened;
  }

  /** Number of accepted messages per envelope recipient (addresses lower-cased). */
  countByRecipient(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const message of this.recorded) {
      for (const to of message.to) {
        const key = to.toLowerCase();
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
    }
    return counts;
  }

  /**
   * Resolves as soon as `predicate(this)` is true: checked now and after every accepted message.
   * Rejects after `timeoutMs` (default 5000) with an error saying how many messages arrived.
   */
  waitFor(predicate: (sink: SmtpSink) => boolean, timeoutMs = 5000): Promise<void> {
    return waitForEvents(
      this,
      ['message'],
      () => predicate(this),
      timeoutMs,
      () => `${this.name}: condition not met within ${timeoutMs} ms (${this.recorded.length} messages accepted)`,
    );
  }

  /** Resolves once at least `n` messages have been accepted in total. */
  waitForCount(n: number, timeoutMs = 5000): Promise<void> {
    return this.waitFor((sink) => sink.acceptedCount >= n, timeoutMs);
  }

  /** Forgets recorded messages and session statistics (faults stay; see `heal()`). */
  clear(): void {
    this.recorded.length = 0;
    this._sessionsOpened = 0;
    this._maxConcurrentSessions = this.sockets.size;
  }

  // ---------------------------------------------------------------------------------------
  // Faults

  /** RCPT TO for these addresses (case-insensitive) fails with `code message`. Adds to earlier calls. */
  rejectRecipients(addresses: string[], code = 550, message = '5.1.1 mailbox unavailable'): void {
    for (const address of addresses) this.rejected.set(address.toLowerCase(), { code, message });
  }

  /** Lifts rejectRecipients for these addresses (a full mailbox that was emptied). */
  acceptRecipients(addresses: string[]): void {
    for (const address of addresses) this.rejected.delete(address.toLowerCase());
  }

  /** Every RCPT TO fails with `code message` until `failAllRecipients(null)`. */
  failAllRecipients(code: number | null, message?: string): void {
    this.failAllRcpt = code === null ? null : { code, message };
  }

  /** The next `n` messages are kept (recorded, with `replyLost`) but the client never hears the reply (see the file comment). */
  loseRepliesAfterData(n: number, how: LostReply): void {
    this.loseReplies = n > 0 ? { remaining: n, how } : null;
  }

  /**
   * The next `n` transactions fail with a transient code: at MAIL FROM (default), or after the
   * whole message was received, at the end of DATA (`stage: 'data'`).
   */
  failNextMessages(n: number, code: 421 | 451 | 452 = 451, stage: 'mail' | 'data' = 'mail'): void {
    this.failNext = n > 0 ? { remaining: n, code, stage } : null;
  }

  /** Every transaction fails with `code` (at MAIL FROM, or at the end of DATA) until `failAll(null)`. */
  failAll(code: number | null, message?: string): void {
    this.failAllCode = code === null ? null : { code, message };
  }

  /**
   * Accepts `n` more messages, then starts failing: 'auth' (535), 'refuse' (connections refused),
   * 'drop' (sockets destroyed on every command) or `{ code }` (every transaction fails with it).
   */
  failAfter(n: number, mode: FailAfterMode): void {
    if (n <= 0) {
      this.pendingFault = null;
      this.applyFault(mode);
      return;
    }
    this.pendingFault = { remaining: n, mode };
  }

  /** Sets a mode now. 'ok' clears the mode (and listens again if refused); other faults stay. */
  async setMode(mode: SinkMode): Promise<void> {
    if (this.stopped) return;
    this._mode = mode;
    if (mode === 'refuse') {
      await this.refuseNow();
    } else if (mode === 'drop') {
      // Idle sessions are dropped at their next command (see onSocket).
    } else if (!this.listening) {
      await this.listen();
    }
  }

  /** Clears every fault and the accept delay; listens again on the same port if it was refusing. */
  async heal(): Promise<void> {
    this.rejected.clear();
    this.failNext = null;
    this.failAllCode = null;
    this.failAllRcpt = null;
    this.loseReplies = null;
    this.pendingFault = null;
    this.acceptDelayMs = 0;
    await this.setMode('ok');
  }

  /** Waits `ms` before the 250 reply to DATA (0 = reply at once). */
  setAcceptDelay(ms: number): void {
    this.acceptDelayMs = Math.max(0, ms);
  }

  // The controls every emulator may offer (EspEmulator), in SMTP terms.

  /** setAcceptDelay. */
  setLatency(ms: number): void {
    this.setAcceptDelay(ms);
  }

  /** rejectRecipients with 550 5.1.1: no such mailbox. */
  bounceRecipients(addresses: string[]): void {
    this.rejectRecipients(addresses);
  }

  /** failAfter(n, 'refuse'): connections are refused after `n` more accepted messages (0: now). */
  goDownAfter(n: number): void {
    this.failAfter(n, 'refuse');
  }

  /** Closes the listener and destroys every client socket. Idempotent. */
  stop(): Promise<void> {
    if (!this.stopping) {
      this.stopped = true;
      this.pendingFault = null;
      for (const timer of this.timers) clearTimeout(timer);
      this.timers.clear();
      this.closeListener();
      this.destroyAllSockets();
      this.stopping = this.socketsClosed();
    }
    return this.stopping;
  }

  // ---------------------------------------------------------------------------------------
  // Listening and sockets

  private listen(): Promise<void> {
    if (this.stopped || this.listening) return Promise.resolve();
    const server = this.smtp.server;
    return new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => {
        server.off('listening', onListening);
        reject(new Error(`${this.name}: cannot listen on ${this.host}:${this._port}: ${err.message}`));
      };
      const onListening = () => {
        server.off('error', onError);
        const address = server.address();
        if (address && typeof address === 'object') this._port = address.port;
        this.listening = true;
        resolve();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen(this._port, this.host);
    });
  }

  /** Stops listening: from now on connections are refused. Open sockets are left alone. */
  private closeListener(): void {
    if (!this.listening) return;
    this.listening = false;
    this.smtp.server.close();
  }

  private async refuseNow(): Promise<void> {
    this.closeListener();
    // Let replies already written (the 250 of the message that triggered failAfter) flush first.
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.destroyAllSockets();
    await this.socketsClosed();
  }

  private destroyAllSockets(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  /** Resolves once every socket open now has emitted 'close'. */
  private socketsClosed(): Promise<void> {
    const open = [...this.sockets];
    return Promise.all(
      open.map(
        (socket) =>
          new Promise<void>((resolve) => {
            if (!this.sockets.has(socket)) return resolve();
            socket.once('close', () => resolve());
          }),
      ),
    ).then(() => undefined);
  }

  private onSocket(socket: net.Socket): void {
    if (this.stopped || this._mode === 'refuse') {
      socket.destroy();
      return;
    }
    const peer = `${normalizeAddress(socket.remoteAddress)}:${socket.remotePort}`;
    this.sockets.add(socket);
    this.socketsByPeer.set(peer, socket);
    this._sessionsOpened += 1;
    this._maxConcurrentSessions = Math.max(this._maxConcurrentSessions, this.sockets.size);
    socket.once('close', () => {
      this.sockets.delete(socket);
      if (this.socketsByPeer.get(peer) === socket) this.socketsByPeer.delete(peer);
    });
    socket.on('error', () => undefined);
    // Runs before the SMTP parser sees the bytes: in 'drop' mode every command kills the session.
    socket.prependListener('data', () => {
      if (this._mode === 'drop' || this._mode === 'refuse' || this.stopped) socket.destroy();
    });
  }

  private socketOf(session: SMTPServerSession): net.Socket | undefined {
    return this.socketsByPeer.get(`${normalizeAddress(session.remoteAddress)}:${session.remotePort}`);
  }

  /** True when the session's socket is gone or the sink is in a mode that kills sessions. */
  private dropIfNeeded(session: SMTPServerSession): boolean {
    const socket = this.socketOf(session);
    if (this.stopped || this._mode === 'drop' || this._mode === 'refuse') {
      socket?.destroy();
      return true;
    }
    // A session whose socket is gone (the client died or hung up) gets no reply and keeps nothing.
    return socket === undefined || socket.destroyed;
  }

  // ---------------------------------------------------------------------------------------
  // SMTP handlers

  private onAuth(
    auth: SMTPServerAuthentication,
    session: SMTPServerSession,
    callback: (err: Error | null | undefined, response?: { user?: unknown }) => void,
  ): void {
    if (this.dropIfNeeded(session)) return callback(smtpError(421));
    if (this._mode === 'auth-fail' || !this.auth) return callback(smtpError(535));
    const ok = auth.username === this.auth.user && (auth.method === 'PLAIN' || auth.method === 'LOGIN') && auth.password === this.auth.pass;
    if (!ok) return callback(smtpError(535));
    callback(null, { user: auth.username });
  }

  private onMailFrom(_address: SMTPServerAddress, session: SMTPServerSession, callback: (err?: Error | null) => void): void {
    if (this.dropIfNeeded(session)) return callback(smtpError(421));
    if (this._mode === 'auth-fail') return callback(smtpError(535));
    if (this.failAllCode) return callback(smtpError(this.failAllCode.code, this.failAllCode.message));
    if (this.failNext && this.failNext.stage === 'mail') {
      const code = this.failNext.code;
      if (--this.failNext.remaining <= 0) this.failNext = null;
      return callback(smtpError(code));
    }
    callback();
  }

  private onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, callback: (err?: Error | null) => void): void {
    if (this.dropIfNeeded(session)) return callback(smtpError(421));
    if (this.failAllRcpt) return callback(smtpError(this.failAllRcpt.code, this.failAllRcpt.message?.replace('{address}', address.address)));
    const rejection = this.rejected.get(address.address.toLowerCase());
    if (rejection) return callback(smtpError(rejection.code, rejection.message.replace('{address}', address.address)));
    callback();
  }

  private onData(stream: SMTPServerDataStream, session: SMTPServerSession, callback: (err?: Error | null, message?: string) => void): void {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', () => undefined);
    stream.on('end', () => {
      const envelope = session.envelope;
      const from = envelope.mailFrom ? envelope.mailFrom.address : '';
      const to = envelope.rcptTo.map((r) => r.address);
      const finish = () => {
        if (this.dropIfNeeded(session)) return callback(smtpError(421));
        if (this._mode === 'auth-fail') return callback(smtpError(535));
        if (this.failAllCode) return callback(smtpError(this.failAllCode.code, this.failAllCode.message));
        if (this.failNext && this.failNext.stage === 'data') {
          const code = this.failNext.code;
          if (--this.failNext.remaining <= 0) this.failNext = null;
          return callback(smtpError(code));
        }
        const parsed = parseMessage(Buffer.concat(chunks));
        const record: SinkMessage = {
          to,
          from,
          messageId: parsed.headers['message-id'] ?? '',
          subject: parsed.headers['subject'] ?? '',
          text: parsed.text ?? '',
          headers: parsed.headers,
          acceptedAt: new Date(),
        };
        if (parsed.html !== undefined) record.html = parsed.html;
        const lose = this.loseReplies;
        if (lose) {
          // The relay has the message (it will deliver it); the client never hears so.
          if (--lose.remaining <= 0) this.loseReplies = null;
          record.replyLost = lose.how;
          this.recorded.push(record);
          this.emit('message', record);
          const socket = this.socketOf(session);
          if (lose.how === 'close') socket?.destroy();
          else if (lose.how === 'reset') socket?.resetAndDestroy();
          // 'silence': no reply at all; the client's socket timeout ends it (stop() closes it too).
          return;
        }
        this.recorded.push(record);
        callback(null, `OK: queued as ${this.recorded.length}`);
        this.emit('message', record);
        this.countDownPendingFault();
      };
      if (this.acceptDelayMs > 0) {
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          finish();
        }, this.acceptDelayMs);
        this.timers.add(timer);
      } else {
        finish();
      }
    });
  }

  private countDownPendingFault(): void {
    if (!this.pendingFault) return;
    this.pendingFault.remaining -= 1;
    if (this.pendingFault.remaining > 0) return;
    const { mode } = this.pendingFault;
    this.pendingFault = null;
    this.applyFault(mode);
  }

  private applyFault(mode: FailAfterMode): void {
    if (typeof mode === 'object') {
      this.failAll(mode.code, mode.message);
      return;
    }
    void this.setMode(mode === 'auth' ? 'auth-fail' : mode);
  }
}

// -----------------------------------------------------------------------------------------
// A small MIME parser: enough for what nodemailer produces (single part or nested multipart,
// 7bit/8bit/quoted-printable/base64, RFC 2047 encoded words in headers).

export interface ParsedMessage {
  headers: Record<string, string>;
  text?: string;
  html?: string;
}

interface MimePart {
  headers: Record<string, string>;
  body: Buffer;
}

/** Parses a raw RFC 5322 message into decoded top-level headers and its text and html bodies. */
export function parseMessage(raw: Buffer): ParsedMessage {
  const root = splitPart(raw);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(root.headers)) headers[name] = decodeEncodedWords(value);
  const result: ParsedMessage = { headers };
  collectBodies(root, result, 0);
  return result;
}

function splitPart(raw: Buffer): MimePart {
  let headerEnd: number;
  let bodyStart = raw.length;
  const crlf = raw.indexOf('\r\n\r\n');
  const lf = raw.indexOf('\n\n');
  if (crlf !== -1 && (lf === -1 || crlf < lf)) {
    headerEnd = crlf;
    bodyStart = crlf + 4;
  } else if (lf !== -1) {
    headerEnd = lf;
    bodyStart = lf + 2;
  } else {
    headerEnd = raw.length;
  }
  const headerText = raw.subarray(0, headerEnd).toString('latin1');
  const headers: Record<string, string> = {};
  const unfolded = headerText.replace(/\r?\n(?=[ \t])/g, '');
  for (const line of unfolded.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    // Header bytes may be raw UTF-8 (SMTPUTF8); reinterpret the latin1 string as UTF-8.
    const value = Buffer.from(line.slice(colon + 1).trim(), 'latin1').toString('utf8');
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  return { headers, body: raw.subarray(Math.min(bodyStart, raw.length)) };
}

interface ContentType {
  type: string;
  params: Record<string, string>;
}

function parseContentType(value: string | undefined): ContentType {
  if (!value) return { type: 'text/plain', params: {} };
  const [typePart, ...rest] = splitParams(value);
  const params: Record<string, string> = {};
  for (const param of rest) {
    const eq = param.indexOf('=');
    if (eq <= 0) continue;
    let v = param.slice(eq + 1).trim();
    if (v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1).replace(/\\(.)/g, '$1');
    params[param.slice(0, eq).trim().toLowerCase()] = v;
  }
  return { type: (typePart ?? '').trim().toLowerCase() || 'text/plain', params };
}

/** Splits `a; b="x;y"; c` on semicolons outside quotes. */
function splitParams(value: string): string[] {
  const out: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (ch === '"' && value[i - 1] !== '\\') quoted = !quoted;
    if (ch === ';' && !quoted) {
      out.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  out.push(current);
  return out;
}

function collectBodies(part: MimePart, result: ParsedMessage, depth: number): void {
  const contentType = parseContentType(part.headers['content-type']);
  const disposition = (part.headers['content-disposition'] ?? '').toLowerCase();
  if (contentType.type.startsWith('multipart/')) {
    const boundary = contentType.params['boundary'];
    if (!boundary || depth > 10) return;
    for (const child of splitMultipart(part.body, boundary)) collectBodies(splitPart(child), result, depth + 1);
    return;
  }
  if (disposition.startsWith('attachment')) return;
  if (contentType.type !== 'text/plain' && contentType.type !== 'text/html') return;
  const decoded = decodeBody(part.body, part.headers['content-transfer-encoding'], contentType.params['charset']);
  const text = decoded.replace(/\r\n/g, '\n');
  if (contentType.type === 'text/plain' && result.text === undefined) result.text = text;
  if (contentType.type === 'text/html' && result.html === undefined) result.html = text;
}

function splitMultipart(body: Buffer, boundary: string): Buffer[] {
  const text = body.toString('latin1');
  const delimiter = `--${boundary}`;
  const parts: Buffer[] = [];
  const lines = text.split(/\r?\n/);
  let current: string[] | null = null;
  for (const line of lines) {
    const trimmed = line.trimEnd();
    if (trimmed === `${delimiter}--`) {
      if (current) parts.push(Buffer.from(current.join('\r\n'), 'latin1'));
      current = null;
      break;
    }
    if (trimmed === delimiter) {
      if (current) parts.push(Buffer.from(current.join('\r\n'), 'latin1'));
      current = [];
      continue;
    }
    if (current) current.push(line);
  }
  if (current) parts.push(Buffer.from(current.join('\r\n'), 'latin1'));
  return parts;
}

function decodeBody(body: Buffer, encoding: string | undefined, charset: string | undefined): string {
  const cte = (encoding ?? '7bit').trim().toLowerCase();
  let bytes: Buffer;
  if (cte === 'base64') {
    bytes = Buffer.from(body.toString('latin1').replace(/[^A-Za-z0-9+/=]/g, ''), 'base64');
  } else if (cte === 'quoted-printable') {
    bytes = decodeQuotedPrintable(body.toString('latin1'));
  } else {
    bytes = body;
  }
  return decodeCharset(bytes, charset);
}

function decodeQuotedPrintable(input: string): Buffer {
  const withoutSoftBreaks = input.replace(/=[ \t]*\r?\n/g, '');
  const bytes: number[] = [];
  for (let i = 0; i < withoutSoftBreaks.length; i++) {
    const ch = withoutSoftBreaks[i];
    if (ch === '=' && /^[0-9A-Fa-f]{2}$/.test(withoutSoftBreaks.slice(i + 1, i + 3))) {
      bytes.push(parseInt(withoutSoftBreaks.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(withoutSoftBreaks.charCodeAt(i) & 0xff);
    }
  }
  return Buffer.from(bytes);
}

function decodeCharset(bytes: Buffer, charset: string | undefined): string {
  const label = (charset ?? 'utf-8').trim().toLowerCase();
  try {
    return new TextDecoder(label).decode(bytes);
  } catch {
    return bytes.toString('utf8');
  }
}

/**
 * Decodes RFC 2047 encoded words (`=?utf-8?Q?...?=`, `=?utf-8?B?...?=`). Adjacent words are
 * joined (the whitespace between them is not text) and their bytes decoded together, so a
 * multi-byte character split across two words comes out whole.
 */
function decodeEncodedWords(value: string): string {
  const word = /=\?([^?\s]+)\?([QqBb])\?([^?\s]*)\?=/g;
  let out = '';
  let last = 0;
  let pending: { charset: string; bytes: Buffer[] } | null = null;
  const flush = () => {
    if (pending) out += decodeCharset(Buffer.concat(pending.bytes), pending.charset);
    pending = null;
  };
  for (let m = word.exec(value); m !== null; m = word.exec(value)) {
    const between = value.slice(last, m.index);
    if (!(pending && /^\s*$/.test(between))) {
      flush();
      out += between;
    }
    const charset = (m[1] ?? 'utf-8').replace(/\*.*$/, '').toLowerCase();
    const data = m[3] ?? '';
    const bytes = (m[2] ?? 'Q').toUpperCase() === 'B' ? Buffer.from(data, 'base64') : decodeQuotedPrintable(data.replace(/_/g, ' '));
    const current = pending as { charset: string; bytes: Buffer[] } | null;
    if (current && current.charset === charset) {
      current.bytes.push(bytes);
    } else {
      flush();
      pending = { charset, bytes: [bytes] };
    }
    last = m.index + m[0].length;
  }
  flush();
  return out + value.slice(last);
}
