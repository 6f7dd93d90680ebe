/**
 * SesServer: an Amazon SES v2 API on loopback (the REST JSON protocol AWS's clients speak, for
 * the operations mailover uses), recording what it accepts, able to misbehave, and able to post
 * SES events to a webhook as SNS does, signed with a certificate of its own. Used by the tests,
 * `mailover dev` and the demo. Everything is in memory; nothing is logged.
 *
 *   const ses = await SesServer.start({ name: 'ses' });
 *   const client = new SESv2Client({ region: ses.region, endpoint: ses.url, credentials: ses.credentials, maxAttempts: 1 });
 *
 * Endpoints (each needs an `Authorization` header of AWS Signature V4 naming the emulator's
 * access key id, `Credential=<accessKeyId>/...`; the signature itself is not checked; else
 * 403 UnrecognizedClientException):
 * - POST /v2/email/outbound-emails (SendEmail): Content.Raw.Data (base64 MIME) or Content.Simple;
 *   recipients from Destination (To, Cc, Bcc) or, for Raw without one, the To header. Records one
 *   message per recipient with its EmailTags and ConfigurationSetName; answers `{ MessageId }`.
 * - GET /v2/email/account (GetAccount): SendQuota (MaxSendRate as set, default 14), SendingEnabled.
 * - GET /v2/email/suppression/addresses (ListSuppressedDestinations): PageSize (1..1000,
 *   default 1000), NextToken (an opaque cursor), Reason filter; in address order.
 * - PUT /v2/email/suppression/addresses (PutSuppressedDestination): EmailAddress, Reason (BOUNCE | COMPLAINT).
 *
 * Errors as AWS's REST JSON APIs send them: status, header `x-amzn-ErrorType: <name>`, body
 * `{ "message": "..." }`. Faults, checked for SendEmail in this order (`heal()` clears them all):
 *   hangNext(n)          the request is never answered and nothing is recorded (SES never got it);
 *   setLatency(ms)       every answer waits this long (a slow SES);
 *   setAuthFailure(on)   403 UnrecognizedClientException (every operation);
 *   setPaused(on)        400 SendingPausedException; GetAccount says SendingEnabled false;
 *   failAll(fault)       every SendEmail answers the fault; failNext(n, fault) the next n do;
 *   dropNext(n)          the message is accepted and recorded, then the connection is reset
 *                        without an answer (a lost answer: the client cannot tell);
 *   goDownAfter(n)       after n more accepted messages, sending is paused;
 *   rejectRecipients(a)  SendEmail to these addresses answers 400 MessageRejected (Address blacklisted.).
 * `peakConcurrentSends` is the most SendEmail calls it had open at once.
 * Faults: 'throttle' 429 TooManyRequestsException, 'auth' 403 UnrecognizedClientException,
 * 'server' 500 InternalFailure, 'unavailable' 503 ServiceUnavailable, 'paused' 400
 * SendingPausedException, 'suspended' 400 AccountSuspendedException, 'not-verified' 400
 * MessageRejected "Email address is not verified...", 'bad-request' 400 BadRequestException.
 *
 * SNS: `setWebhook(url, topicArn)` says where events go; `notify(recipient, kind)` posts a
 * Bounce, Complaint or Delivery about the message it accepted for that recipient, in the shape
 * of SES event publishing (eventType, mail with its tags), wrapped in an SNS Notification
 * signed with the emulator's certificate (SignatureVersion 1 or 2). Its SigningCertURL is on
 * the real SNS host of its region; `fetchCertificate` is the fetcher that serves that
 * certificate, to give the receiving side in tests; after `serveCertificateLocally()` (the dev
 * stack) the URL is on the emulator's own address, which serves it (`GET /SimpleNotificationService-<hash>.pem`),
 * for a receiver whose `sns.certificateHosts` lists that address. `bounceRecipients(a)`: their
 * messages are accepted, then bounced (a Permanent Bounce posted, the address suppressed).
 * `confirmSubscription()` posts a
 * SubscriptionConfirmation; `subscriptionConfirmed` says whether its SubscribeURL was fetched
 * through `confirmSubscriptionUrl`.
 */
import { EventEmitter } from 'node:events';
import { createHash, createSign, randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import type net from 'node:net';
import { waitForEvents } from '../../dev/wait-for-event';
import type { EspEmulator, ReceivedMessage } from '../provider-module';
import { selfSignedCertificate, type TestCertificate } from './certificate';
import { snsStringToSign, type CertificateFetcher, type SnsMessage, type SubscriptionConfirmer } from './sns';

export type SesFault = 'throttle' | 'auth' | 'server' | 'unavailable' | 'paused' | 'suspended' | 'not-verified' | 'bad-request';

const FAULTS: Record<SesFault, { status: number; type: string; message: string }> = {
  throttle: { status: 429, type: 'TooManyRequestsException', message: 'Maximum sending rate exceeded.' },
  auth: { status: 403, type: 'UnrecognizedClientException', message: 'The security token included in the request is invalid.' },
  server: { status: 500, type: 'InternalFailure', message: 'The request processing has failed because of an unknown error, exception or failure.' },
  unavailable: { status: 503, type: 'ServiceUnavailable', message: 'The request has failed due to a temporary failure of the server.' },
  paused: { status: 400, type: 'SendingPausedException', message: 'Sending is paused for this account.' },
  suspended: { status: 400, type: 'AccountSuspendedException', message: 'The account has been suspended.' },
  'not-verified': {
    status: 400,
    type: 'MessageRejected',
    message: 'Email address is not verified. The following identities failed the check in region US-EAST-1: news@mailover.test',
  },
  'bad-request': { status: 400, type: 'BadRequestException', message: 'Invalid message content.' },
};

export interface SesServerOptions {
  name?: string;
  port?: number;
  region?: string;
  accessKeyId?: string;
  /** GetAccount's SendQuota.MaxSendRate (messages per second); default 14, SES's usual starting rate. */
  maxSendRate?: number;
}

/** One message accepted for one recipient. */
export interface SesMessage {
  /** SES's MessageId of the call. */
  id: string;
  to: string;
  from: string;
  /** Lower-case header names (Raw content), or the Simple content's subject as `subject`. */
  headers: Record<string, string>;
  tags: Record<string, string>;
  configurationSet?: string;
  acceptedAt: Date;
}

/** One SendEmail call. */
export interface SesCall {
  /** The HTTP status answered; 0 when no answer was sent (hung, dropped). */
  status: number;
  /** The error type answered, if any. */
  errorType?: string;
  recipients: number;
  at: Date;
}

export type SesEventKind = 'Bounce' | 'Complaint' | 'Delivery';

export interface NotifyOptions {
  /** Bounce only: Permanent (default) or Transient. */
  bounceType?: 'Permanent' | 'Transient';
  /** SNS SignatureVersion (default '2', SHA256). */
  signatureVersion?: '1' | '2';
  /** The SNS Timestamp (default now): an old one makes a stale notification. */
  timestamp?: Date;
  /** The SNS MessageId (default a fresh one): a repeated one makes a replay. */
  messageId?: string;
}

const json = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'x-amzn-requestid': randomUUID(), ...headers });
  res.end(text);
};

function headerBlock(raw: string): Record<string, string> {
  const end = raw.search(/\r?\n\r?\n/);
  const block = (end < 0 ? raw : raw.slice(0, end)).replace(/\r?\n[ \t]+/g, ' ');
  const headers: Record<string, string> = {};
  for (const line of block.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return headers;
}

const bareAddress = (a: string) => (/<([^>]+)>/.exec(a)?.[1] ?? a).trim();

export class SesServer extends EventEmitter implements EspEmulator {
  readonly name: string;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey = 'emulator-secret-0123456789abcdefghijklmnop';
  readonly certificate: TestCertificate;
  /** Where its SNS messages say their certificate is: the real SNS host (default), or its own address (serveCertificateLocally). */
  signingCertUrl: string;
  private readonly certificatePath: string;
  readonly messages: SesMessage[] = [];
  readonly calls: SesCall[] = [];
  private readonly suppressed = new Map<string, { reason: 'BOUNCE' | 'COMPLAINT'; at: Date }>();
  private readonly sockets = new Set<net.Socket>();
  private maxSendRate: number;
  private latencyMs = 0;
  private authFailure = false;
  private paused = false;
  private failAllFault: SesFault | null = null;
  private failNextFault: { fault: SesFault; remaining: number } | null = null;
  private hangRemaining = 0;
  private dropRemaining = 0;
  private downAfter: number | null = null;
  private webhook: { url: string; topicArn: string } | null = null;
  private confirmedUrls = new Set<string>();
  private rejected = new Map<string, string>();
  private openSends = 0;
  /** How many times its certificate was fetched from its own address. */
  certificateRequests = 0;
  /** The most SendEmail calls it had open at once. */
  peakConcurrentSends = 0;

  private constructor(
    private readonly server: http.Server,
    opts: SesServerOptions,
  ) {
    super();
    this.name = opts.name ?? 'ses';
    this.region = opts.region ?? 'us-east-1';
    this.accessKeyId = opts.accessKeyId ?? 'AKIAEMULATOR0000TEST';
    this.maxSendRate = opts.maxSendRate ?? 14;
    this.certificate = selfSignedCertificate('sns.amazonaws.com');
    const hash = createHash('sha256').update(this.certificate.certificatePem).digest('hex').slice(0, 32);
    this.certificatePath = `/SimpleNotificationService-${hash}.pem`;
    this.signingCertUrl = `https://sns.${this.region}.amazonaws.com${this.certificatePath}`;
  }

  static async start(opts: SesServerOptions = {}): Promise<SesServer> {
    const server = http.createServer();
    const ses = new SesServer(server, opts);
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      ses.handle(req, res).catch(() => {
        if (!res.headersSent) json(res, 500, { message: 'emulator error' }, { 'x-amzn-errortype': 'InternalFailure' });
        else res.destroy();
      });
    });
    server.on('connection', (s: net.Socket) => {
      ses.sockets.add(s);
      s.on('close', () => ses.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
    });
    return ses;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  get endpoint(): string {
    return this.url;
  }
  get credentials(): { accessKeyId: string; secretAccessKey: string } {
    return { accessKeyId: this.accessKeyId, secretAccessKey: this.secretAccessKey };
  }
  get acceptedCount(): number {
    return this.messages.length;
  }
  /** The SNS topic its events go to (as configured by setWebhook), or the default one. */
  get topicArn(): string {
    return this.webhook?.topicArn ?? `arn:aws:sns:${this.region}:123456789012:mailover-ses-events`;
  }

  received(): ReceivedMessage[] {
    return this.messages.map((m) => ({ to: m.to, from: m.from, headers: m.headers }));
  }

  countByRecipient(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const m of this.messages) counts.set(m.to.toLowerCase(), (counts.get(m.to.toLowerCase()) ?? 0) + 1);
    return counts;
  }

  /** Resolves once `n` messages were accepted; rejects after `timeoutMs`. */
  waitForCount(n: number, timeoutMs = 5000): Promise<void> {
    return waitForEvents(
      this,
      ['message'],
      () => this.messages.length >= n,
      timeoutMs,
      () => `${this.name}: ${this.messages.length} of ${n} messages accepted`,
    );
  }

  // ------------------------------------------------------------------ faults

  setLatency(ms: number): void {
    this.latencyMs = Math.max(0, ms);
  }
  setAuthFailure(on: boolean): void {
    this.authFailure = on;
  }
  setPaused(on: boolean): void {
    this.paused = on;
  }
  setMaxSendRate(rate: number): void {
    this.maxSendRate = rate;
  }
  failAll(fault: SesFault | null): void {
    this.failAllFault = fault;
  }
  failNext(n: number, fault: SesFault): void {
    this.failNextFault = n > 0 ? { fault, remaining: n } : null;
  }
  hangNext(n: number): void {
    this.hangRemaining = n;
  }
  dropNext(n: number): void {
    this.dropRemaining = n;
  }
  goDownAfter(n: number): void {
    if (n <= 0) this.paused = true;
    else this.downAfter = n;
  }
  /** SendEmail to these addresses answers 400 MessageRejected with this text (default SES's "Address blacklisted."). */
  rejectRecipients(addresses: string[], text = 'Address blacklisted.'): void {
    for (const a of addresses) this.rejected.set(a.toLowerCase(), text);
  }
  heal(): void {
    this.rejected.clear();
    this.latencyMs = 0;
    this.authFailure = false;
    this.paused = false;
    this.failAllFault = null;
    this.failNextFault = null;
    this.hangRemaining = 0;
    this.dropRemaining = 0;
    this.downAfter = null;
  }

  // ------------------------------------------------------------------ suppression list

  suppressions(): Array<{ email: string; reason: 'BOUNCE' | 'COMPLAINT' }> {
    return [...this.suppressed].map(([email, e]) => ({ email, reason: e.reason })).sort((a, b) => a.email.localeCompare(b.email));
  }
  addSuppression(email: string, reason: 'BOUNCE' | 'COMPLAINT'): void {
    this.suppressed.set(email.toLowerCase(), { reason, at: new Date() });
  }

  // ------------------------------------------------------------------ SNS

  setWebhook(url: string | null, topicArn?: string): void {
    this.webhook = url ? { url, topicArn: topicArn || this.topicArn } : null;
  }

  /** Its own address as `sns.certificateHosts` lists it: `127.0.0.1:<port>`. */
  get certificateHost(): string {
    return `127.0.0.1:${this.port}`;
  }

  /**
   * From now on its SNS messages name its certificate on its own address (GET <url>/SimpleNotificationService-<hash>.pem,
   * served without credentials), for a receiver that trusts that address (`sns.certificateHosts`: the dev stack).
   */
  serveCertificateLocally(): void {
    this.signingCertUrl = `http://${this.certificateHost}${this.certificatePath}`;
  }

  /** Serves the emulator's signing certificate at its SigningCertURL (and nothing else). */
  readonly fetchCertificate: CertificateFetcher = async (url) => {
    if (url !== this.signingCertUrl) throw new Error(`${url}: not found (404)`);
    return this.certificate.certificatePem;
  };

  /** Fetches a SubscribeURL the emulator handed out (what SNS would do on GET). */
  readonly confirmSubscriptionUrl: SubscriptionConfirmer = async (url) => {
    if (!url.startsWith(`https://sns.${this.region}.amazonaws.com/?Action=ConfirmSubscription`)) throw new Error(`${url}: not found (404)`);
    this.confirmedUrls.add(url);
  };

  get subscriptionConfirmed(): boolean {
    return this.confirmedUrls.size > 0;
  }

  /** An SNS message with its signature (SignatureVersion 1: SHA1withRSA, 2: SHA256withRSA). */
  signSns(fields: Omit<SnsMessage, 'Signature' | 'SigningCertURL' | 'SignatureVersion'>, version: '1' | '2' = '2'): SnsMessage {
    const unsigned = { ...fields, SignatureVersion: version, SigningCertURL: this.signingCertUrl, Signature: '' } as SnsMessage;
    const signature = createSign(version === '1' ? 'RSA-SHA1' : 'RSA-SHA256')
      .update(snsStringToSign(unsigned), 'utf8')
      .sign(this.certificate.privateKey, 'base64');
    return { ...unsigned, Signature: signature };
  }

  /** The SES event (event publishing's shape) about the message accepted for `recipient`. */
  sesEvent(recipient: string, kind: SesEventKind, opts: NotifyOptions = {}): Record<string, unknown> {
    const m = [...this.messages].reverse().find((x) => x.to.toLowerCase() === recipient.toLowerCase());
    if (!m) throw new Error(`${this.name}: no message to ${recipient} was accepted`);
    const at = new Date().toISOString();
    const mail = {
      timestamp: m.acceptedAt.toISOString(),
      source: m.from,
      sourceArn: `arn:aws:ses:${this.region}:123456789012:identity/${m.from.split('@')[1] ?? 'mailover.test'}`,
      sendingAccountId: '123456789012',
      messageId: m.id,
      destination: [m.to],
      headersTruncated: false,
      tags: Object.fromEntries(Object.entries(m.tags).map(([k, v]) => [k, [v]])),
    };
    const feedbackId = `${randomBytes(8).toString('hex')}-${randomUUID()}-000000`;
    if (kind === 'Bounce') {
      const permanent = (opts.bounceType ?? 'Permanent') === 'Permanent';
      return {
        eventType: 'Bounce',
        bounce: {
          bounceType: permanent ? 'Permanent' : 'Transient',
          bounceSubType: permanent ? 'General' : 'MailboxFull',
          bouncedRecipients: [
            {
              emailAddress: m.to,
              action: 'failed',
              status: permanent ? '5.1.1' : '4.2.2',
              diagnosticCode: permanent ? 'smtp; 550 5.1.1 user unknown' : 'smtp; 452 4.2.2 mailbox full',
            },
          ],
          timestamp: at,
          feedbackId,
          reportingMTA: 'dsn; a8-70.smtp-out.amazonses.com',
        },
        mail,
      };
    }
    if (kind === 'Complaint') {
      return {
        eventType: 'Complaint',
        complaint: {
          complainedRecipients: [{ emailAddress: m.to }],
          timestamp: at,
          feedbackId,
          complaintFeedbackType: 'abuse',
          userAgent: 'Mailover emulator feedback loop',
        },
        mail,
      };
    }
    return {
      eventType: 'Delivery',
      delivery: {
        timestamp: at,
        processingTimeMillis: 120,
        recipients: [m.to],
        smtpResponse: '250 2.6.0 Message received',
        reportingMTA: 'a8-70.smtp-out.amazonses.com',
      },
      mail,
    };
  }

  /** Wraps an SES event (or any Message text) in a signed SNS Notification of its topic. */
  snsNotification(message: string, opts: NotifyOptions = {}): SnsMessage {
    return this.signSns(
      {
        Type: 'Notification',
        MessageId: opts.messageId ?? randomUUID(),
        TopicArn: this.topicArn,
        Message: message,
        Timestamp: (opts.timestamp ?? new Date()).toISOString(),
        UnsubscribeURL: `https://sns.${this.region}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=${this.topicArn}:${randomUUID()}`,
      },
      opts.signatureVersion,
    );
  }

  /** Posts a signed SNS message to the webhook; the answer's status and text. */
  async post(message: SnsMessage | Record<string, unknown>): Promise<{ status: number; body: string }> {
    if (!this.webhook) throw new Error(`${this.name}: no webhook set (setWebhook)`);
    const res = await fetch(this.webhook.url, {
      method: 'POST',
      headers: { 'content-type': 'text/plain; charset=UTF-8', 'x-amz-sns-message-type': String(message.Type), 'x-amz-sns-topic-arn': String(message.TopicArn) },
      body: JSON.stringify(message),
    });
    return { status: res.status, body: await res.text() };
  }

  /** Posts a Bounce, Complaint or Delivery about the message accepted for `recipient`, as SNS would. */
  async notify(recipient: string, kind: SesEventKind, opts: NotifyOptions = {}): Promise<{ status: number; body: string; message: SnsMessage }> {
    const message = this.snsNotification(JSON.stringify(this.sesEvent(recipient, kind, opts)), opts);
    return { ...(await this.post(message)), message };
  }

  /**
   * SES takes these recipients' messages and then bounces them: a Permanent Bounce posted to the
   * webhook for each (once accepted), and the address on the account's suppression list.
   */
  bounceRecipients(addresses: string[]): void {
    const pending = new Set(addresses.map((a) => a.toLowerCase()));
    this.on('message', (m: SesMessage) => {
      if (!pending.has(m.to.toLowerCase())) return;
      this.addSuppression(m.to, 'BOUNCE');
      if (this.webhook) void this.notify(m.to, 'Bounce').catch(() => undefined);
    });
  }

  async reportComplaint(recipient: string): Promise<{ webhookStatus?: number }> {
    if (!this.webhook) return {};
    return { webhookStatus: (await this.notify(recipient, 'Complaint')).status };
  }

  /** Posts a SubscriptionConfirmation for its topic, as SNS does when a subscription is made. */
  async confirmSubscription(opts: NotifyOptions = {}): Promise<{ status: number; body: string }> {
    const token = randomBytes(32).toString('hex');
    const subscribeUrl = `https://sns.${this.region}.amazonaws.com/?Action=ConfirmSubscription&TopicArn=${encodeURIComponent(this.topicArn)}&Token=${token}`;
    const message = this.signSns(
      {
        Type: 'SubscriptionConfirmation',
        MessageId: opts.messageId ?? randomUUID(),
        Token: token,
        TopicArn: this.topicArn,
        Message: `You have chosen to subscribe to the topic ${this.topicArn}.\nTo confirm the subscription, visit the SubscribeURL included in this message.`,
        SubscribeURL: subscribeUrl,
        Timestamp: (opts.timestamp ?? new Date()).toISOString(),
      },
      opts.signatureVersion,
    );
    return this.post(message);
  }

  // ------------------------------------------------------------------ HTTP

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = `${req.method} ${url.pathname.replace(/\/+$/, '')}`;
    if (route === `GET ${this.certificatePath}`) {
      this.certificateRequests++;
      res.writeHead(200, { 'content-type': 'application/x-pem-file', 'content-length': Buffer.byteLength(this.certificate.certificatePem) });
      return void res.end(this.certificate.certificatePem);
    }
    const sending = route === 'POST /v2/email/outbound-emails';
    const call: SesCall | undefined = sending ? { status: 0, recipients: 0, at: new Date() } : undefined;
    if (call) {
      this.calls.push(call);
      this.peakConcurrentSends = Math.max(this.peakConcurrentSends, ++this.openSends);
      res.once('close', () => this.openSends--);
    }
    if (sending && this.hangRemaining > 0) {
      this.hangRemaining--;
      return; // never answered (the socket stays open until the client gives up or stop())
    }
    if (this.latencyMs) await new Promise((r) => setTimeout(r, this.latencyMs));
    const fail = (f: { status: number; type: string; message: string }) => {
      if (call) Object.assign(call, { status: f.status, errorType: f.type });
      json(res, f.status, { message: f.message }, { 'x-amzn-errortype': f.type });
    };
    const credential = /Credential=([^/]+)\//.exec(String(req.headers.authorization ?? ''))?.[1];
    if (this.authFailure || credential !== this.accessKeyId) return fail(FAULTS.auth);
    switch (route) {
      case 'GET /v2/email/account':
        return json(res, 200, {
          DedicatedIpAutoWarmupEnabled: false,
          EnforcementStatus: 'HEALTHY',
          ProductionAccessEnabled: true,
          SendQuota: { Max24HourSend: 50_000, MaxSendRate: this.maxSendRate, SentLast24Hours: this.messages.length },
          SendingEnabled: !this.paused,
        });
      case 'GET /v2/email/suppression/addresses':
        return this.listSuppressed(url, res);
      case 'PUT /v2/email/suppression/addresses': {
        const input = JSON.parse(body || '{}') as { EmailAddress?: unknown; Reason?: unknown };
        if (typeof input.EmailAddress !== 'string' || !input.EmailAddress.includes('@') || (input.Reason !== 'BOUNCE' && input.Reason !== 'COMPLAINT')) {
          return fail({ status: 400, type: 'BadRequestException', message: 'EmailAddress and Reason (BOUNCE or COMPLAINT) are required.' });
        }
        this.addSuppression(input.EmailAddress, input.Reason);
        return json(res, 200, {});
      }
      case 'POST /v2/email/outbound-emails':
        return this.sendEmail(body, call!, res, fail);
      default:
        return fail({ status: 404, type: 'NotFoundException', message: `${route}: not an operation of this emulator` });
    }
  }

  private listSuppressed(url: URL, res: http.ServerResponse): void {
    const size = Math.min(1000, Math.max(1, Number(url.searchParams.get('PageSize') ?? 1000) || 1000));
    const after = url.searchParams.get('NextToken') ? Buffer.from(url.searchParams.get('NextToken')!, 'base64url').toString('utf8') : '';
    const reasons = url.searchParams.getAll('Reason');
    const all = this.suppressions().filter((s) => s.email > after && (!reasons.length || reasons.includes(s.reason)));
    const page = all.slice(0, size);
    json(res, 200, {
      SuppressedDestinationSummaries: page.map((s) => ({
        EmailAddress: s.email,
        Reason: s.reason,
        LastUpdateTime: Math.floor(this.suppressed.get(s.email)!.at.getTime() / 1000),
      })),
      ...(all.length > size ? { NextToken: Buffer.from(page[page.length - 1].email, 'utf8').toString('base64url') } : {}),
    });
  }

  private sendEmail(body: string, call: SesCall, res: http.ServerResponse, fail: (f: { status: number; type: string; message: string }) => void): void {
    if (this.paused) return fail(FAULTS.paused);
    if (this.failAllFault) return fail(FAULTS[this.failAllFault]);
    if (this.failNextFault) {
      const { fault } = this.failNextFault;
      if (--this.failNextFault.remaining <= 0) this.failNextFault = null;
      return fail(FAULTS[fault]);
    }
    let input: {
      FromEmailAddress?: string;
      Destination?: { ToAddresses?: string[]; CcAddresses?: string[]; BccAddresses?: string[] };
      Content?: { Raw?: { Data?: string }; Simple?: { Subject?: { Data?: string } } };
      ConfigurationSetName?: string;
      EmailTags?: Array<{ Name?: string; Value?: string }>;
    };
    try {
      input = JSON.parse(body) as typeof input;
    } catch {
      return fail({ status: 400, type: 'BadRequestException', message: 'The request body is not JSON.' });
    }
    if (!input.Content?.Raw?.Data && !input.Content?.Simple)
      return fail({ status: 400, type: 'BadRequestException', message: 'Content is required: Raw or Simple.' });
    const headers: Record<string, string> = input.Content.Raw?.Data
      ? headerBlock(Buffer.from(input.Content.Raw.Data, 'base64').toString('utf8'))
      : { subject: input.Content.Simple?.Subject?.Data ?? '' };
    const d = input.Destination;
    const to = d
      ? [...(d.ToAddresses ?? []), ...(d.CcAddresses ?? []), ...(d.BccAddresses ?? [])]
      : (headers.to ?? '').split(',').filter(Boolean).map(bareAddress);
    if (!to.length) return fail({ status: 400, type: 'BadRequestException', message: 'Missing required header: To.' });
    const from = input.FromEmailAddress ?? bareAddress(headers.from ?? '');
    if (!from.includes('@')) return fail({ status: 400, type: 'MessageRejected', message: "Missing final '@domain'" });
    const bad = to.find((a) => !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(a));
    if (bad !== undefined) return fail({ status: 400, type: 'MessageRejected', message: 'Illegal address' });
    const refused = to.map((a) => this.rejected.get(a.toLowerCase())).find((t) => t !== undefined);
    if (refused !== undefined) return fail({ status: 400, type: 'MessageRejected', message: refused });
    const tags: Record<string, string> = {};
    for (const t of input.EmailTags ?? []) if (t.Name) tags[t.Name] = t.Value ?? '';
    const id = `0100${Date.now().toString(16)}-${randomUUID()}-000000`;
    const acceptedAt = new Date();
    call.recipients = to.length;
    for (const addr of to) {
      const m: SesMessage = {
        id,
        to: addr,
        from,
        headers,
        tags,
        acceptedAt,
        ...(input.ConfigurationSetName ? { configurationSet: input.ConfigurationSetName } : {}),
      };
      this.messages.push(m);
      this.emit('message', m);
    }
    if (this.downAfter !== null && --this.downAfter <= 0) {
      this.downAfter = null;
      this.paused = true;
    }
    if (this.dropRemaining > 0) {
      this.dropRemaining--;
      res.socket?.destroy();
      return;
    }
    call.status = 200;
    json(res, 200, { MessageId: id });
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const s of this.sockets) s.destroy();
    });
  }
}
