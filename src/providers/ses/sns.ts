/**
 * Amazon SNS HTTP(S) messages: reading one, checking its signature, and confirming a
 * subscription. As AWS documents it in "Verifying the signatures of Amazon SNS messages"
 * (https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html) and
 * "Parsing message formats" (https://docs.aws.amazon.com/sns/latest/dg/sns-message-and-json-formats.html):
 *
 * - The string to sign is `Key\nValue\n` for these keys, in this order, a key left out when the
 *   message has none (only Subject may be absent):
 *     Notification:                                 Message, MessageId, Subject, Timestamp, TopicArn, Type
 *     SubscriptionConfirmation, UnsubscribeConfirmation: Message, MessageId, SubscribeURL, Timestamp, Token, TopicArn, Type
 * - SignatureVersion 1 is SHA1withRSA, 2 is SHA256withRSA; Signature is base64.
 * - The certificate comes from SigningCertURL, which must be HTTPS on the SNS host of the topic's
 *   region (`sns.<region>.amazonaws.com`, `.amazonaws.com.cn` in China): any other URL is refused
 *   without being fetched, so a forger cannot bring its own certificate.
 * - A subscription is confirmed by fetching SubscribeURL, which must be on that same host.
 * - Only for a local SES emulator (`mailover dev`): a provider's `sns.certificateHosts` may list
 *   loopback `host:port`s to take certificates from instead (nothing else is accepted there).
 */
import { createVerify, X509Certificate } from 'node:crypto';
import { WebhookBodyError } from '../provider-module';

export type SnsMessageType = 'Notification' | 'SubscriptionConfirmation' | 'UnsubscribeConfirmation';

export interface SnsMessage {
  Type: SnsMessageType;
  MessageId: string;
  TopicArn: string;
  Message: string;
  Timestamp: string;
  SignatureVersion: '1' | '2';
  Signature: string;
  SigningCertURL: string;
  Subject?: string;
  SubscribeURL?: string;
  Token?: string;
  UnsubscribeURL?: string;
}

const SIGNED_KEYS: Record<SnsMessageType, readonly (keyof SnsMessage)[]> = {
  Notification: ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type'],
  SubscriptionConfirmation: ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'],
  UnsubscribeConfirmation: ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'],
};

const ALGORITHM = { '1': 'RSA-SHA1', '2': 'RSA-SHA256' } as const;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function field(body: Record<string, unknown>, key: string, optional = false): string | undefined {
  const v = body[key];
  if (v === undefined && optional) return undefined;
  if (typeof v !== 'string' || (v === '' && !optional)) throw new WebhookBodyError(`${key}: expected a string, got ${JSON.stringify(v)?.slice(0, 80)}`);
  return v;
}

/** An SNS message from a request body (JSON); throws WebhookBodyError naming the field that is wrong. */
export function parseSnsMessage(body: Buffer | string): SnsMessage {
  let json: unknown;
  try {
    json = JSON.parse(typeof body === 'string' ? body : body.toString('utf8'));
  } catch {
    throw new WebhookBodyError('expected a JSON body (an Amazon SNS message)');
  }
  if (!isObject(json)) throw new WebhookBodyError('expected a JSON object (an Amazon SNS message)');
  const type = field(json, 'Type');
  if (type !== 'Notification' && type !== 'SubscriptionConfirmation' && type !== 'UnsubscribeConfirmation') {
    throw new WebhookBodyError(`Type: expected Notification, SubscriptionConfirmation or UnsubscribeConfirmation, got ${JSON.stringify(type)}`);
  }
  const version = field(json, 'SignatureVersion');
  if (version !== '1' && version !== '2') throw new WebhookBodyError(`SignatureVersion: expected "1" or "2", got ${JSON.stringify(version)}`);
  const timestamp = field(json, 'Timestamp')!;
  if (Number.isNaN(Date.parse(timestamp))) throw new WebhookBodyError(`Timestamp: expected an ISO 8601 time, got ${JSON.stringify(timestamp.slice(0, 40))}`);
  const confirmation = type !== 'Notification';
  return {
    Type: type,
    MessageId: field(json, 'MessageId')!,
    TopicArn: field(json, 'TopicArn')!,
    Message: field(json, 'Message')!,
    Timestamp: timestamp,
    SignatureVersion: version,
    Signature: field(json, 'Signature')!,
    SigningCertURL: field(json, 'SigningCertURL')!,
    ...(json.Subject !== undefined && json.Subject !== null ? { Subject: field(json, 'Subject', true) } : {}),
    ...(confirmation ? { SubscribeURL: field(json, 'SubscribeURL')!, Token: field(json, 'Token')! } : {}),
    ...(typeof json.UnsubscribeURL === 'string' ? { UnsubscribeURL: json.UnsubscribeURL } : {}),
  };
}

/** The string SNS signed for a message (see the top of this file). */
export function snsStringToSign(m: SnsMessage): string {
  let out = '';
  for (const key of SIGNED_KEYS[m.Type]) {
    const value = m[key];
    if (value === undefined) continue;
    out += `${key}\n${value}\n`;
  }
  return out;
}

/** The region of a topic ARN (`arn:aws:sns:us-east-1:123456789012:name`), or undefined when it is not one. */
export function topicRegion(topicArn: string): string | undefined {
  const m = /^arn:aws(?:-cn|-us-gov)?:sns:([a-z]{2}(?:-gov)?-[a-z]+-\d):\d{12}:[A-Za-z0-9_-]{1,256}(?:\.fifo)?$/.exec(topicArn);
  return m?.[1];
}

/** The SNS hosts of a region: where its signing certificates and subscription URLs live. */
export function snsHosts(region: string): string[] {
  return region.startsWith('cn-') ? [`sns.${region}.amazonaws.com.cn`] : [`sns.${region}.amazonaws.com`];
}

const LOOPBACK_HOST = /^(?:127\.0\.0\.1|localhost|\[::1\]):\d{1,5}$/;

/** Whether a host is a loopback `host:port` (127.0.0.1, localhost or [::1] with a port): the only kind `sns.certificateHosts` may list. */
export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOST.test(host);
}

/**
 * Whether `url` is HTTPS on one of `hosts` (default port), and for a certificate, a .pem path.
 * A loopback `host:port` among `hosts` (a local SES emulator, `sns.certificateHosts`) also takes
 * plain HTTP on exactly that port; any other entry is a host name on HTTPS's default port.
 */
export function urlOnHosts(url: string, hosts: readonly string[], pem = false): boolean {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  if (u.username || u.password) return false;
  const local = (u.protocol === 'http:' || u.protocol === 'https:') && hosts.some((h) => isLoopbackHost(h) && h === u.host.toLowerCase());
  if (!local && (u.protocol !== 'https:' || u.port !== '' || !hosts.includes(u.hostname.toLowerCase()))) return false;
  return !pem || u.pathname.endsWith('.pem');
}

/** Reads a certificate by URL (PEM text). The default fetches it; tests bring their own. */
export type CertificateFetcher = (url: string) => Promise<string>;

export const fetchCertificateOverHttps: CertificateFetcher = async (url) => {
  const res = await fetch(url, { redirect: 'error', signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.text();
};

export type SnsVerdict = { valid: true } | { valid: false; why: string };

export interface SnsVerifier {
  /** Checks a message's signature against the certificate at its (allow-listed) SigningCertURL. */
  verify(m: SnsMessage, allowedHosts: readonly string[]): Promise<SnsVerdict>;
}

/**
 * A verifier with a certificate cache (by URL; a certificate that failed to load is not kept).
 * A certificate outside its validity period does not verify anything.
 */
export function snsVerifier(fetchCertificate: CertificateFetcher = fetchCertificateOverHttps): SnsVerifier {
  const cache = new Map<string, Promise<X509Certificate>>();
  const certificate = (url: string): Promise<X509Certificate> => {
    let c = cache.get(url);
    if (!c) {
      c = fetchCertificate(url).then((pem) => new X509Certificate(pem));
      cache.set(url, c);
      void c.catch(() => cache.delete(url));
    }
    return c;
  };
  return {
    async verify(m, allowedHosts) {
      if (!urlOnHosts(m.SigningCertURL, allowedHosts, true))
        return { valid: false, why: `SigningCertURL is not an https .pem URL on ${allowedHosts.join(' or ')}` };
      let cert: X509Certificate;
      try {
        cert = await certificate(m.SigningCertURL);
      } catch (err) {
        return { valid: false, why: `the signing certificate could not be read (${(err as Error).message.slice(0, 200)})` };
      }
      const now = Date.now();
      if (now < Date.parse(cert.validFrom) || now > Date.parse(cert.validTo)) return { valid: false, why: 'the signing certificate is not valid now' };
      let ok: boolean;
      try {
        ok = createVerify(ALGORITHM[m.SignatureVersion]).update(snsStringToSign(m), 'utf8').verify(cert.publicKey, m.Signature, 'base64');
      } catch {
        ok = false;
      }
      return ok ? { valid: true } : { valid: false, why: 'signature does not match' };
    },
  };
}

/** Confirms a subscription by fetching its SubscribeURL (a GET, as SNS asks). The default fetches; tests bring their own. */
export type SubscriptionConfirmer = (subscribeUrl: string) => Promise<void>;

export const confirmOverHttps: SubscriptionConfirmer = async (url) => {
  const res = await fetch(url, { redirect: 'error', signal: AbortSignal.timeout(10_000) });
  await res.text();
  if (!res.ok) throw new Error(`confirming the subscription: HTTP ${res.status}`);
};
