/**
 * SMTP replies classified by what the other side means: the phase of the dialogue the reply
 * came in and the enhanced status code (RFC 3463), with the reply code (RFC 5321) as fallback.
 *
 * Pure logic: no network, no Temporal. The SMTP adapter parses nodemailer's `err.response`
 * with {@link parseSmtpReply}, classifies it with {@link classifySmtpReply} and, per batch,
 * asks alikeRefusal (../refusals) whether most recipients got the same refusal (then it is about
 * the provider, not about them).
 *
 * Where a code alone is ambiguous the reply text is consulted, but only through a few
 * phrases real servers are documented to send (see REFUSES_US, MAILBOX_GONE, MAILBOX_FULL),
 * and only on the text with every address scrubbed out, so an address such as
 * `no-such-user@example.org` can never steer the verdict. test/fixtures/smtp-replies.json
 * holds the real replies (with where each was published) that these rules are checked on.
 */
import { scrubAddresses } from '../refusals';

/** Where in the SMTP dialogue a reply came. */
export type SmtpPhase =
  | 'connect' // TCP connect and the 220 greeting banner
  | 'ehlo' // EHLO / HELO / LHLO
  | 'starttls'
  | 'auth' // AUTH ...
  | 'mail' // MAIL FROM
  | 'rcpt' // RCPT TO (our messages always have exactly ONE recipient)
  | 'data' // the reply to the DATA command itself (before any message byte)
  | 'message'; // the reply after the message data (after the final dot)

export type ReplyAction =
  | 'transient' // the provider is busy or briefly broken: retry the batch on the same provider with backoff
  | 'provider' // the provider refuses US (policy, relaying, auth, our sender, our IP): switch provider; nobody rejected, nobody suppressed
  | 'deferred' // this one recipient later: only this recipient is retried later with its own backoff
  | 'rejected'; // this recipient / this message permanently: rejected with the reason

export interface SmtpReply {
  /** Reply code, e.g. 550. */
  code: number;
  /** Enhanced status code (RFC 3463 class.subject.detail), e.g. '5.7.1', when the reply has one. */
  enhanced?: string;
  /** The whole reply as one line: continuation lines joined with single spaces, their code/enhanced prefixes removed. */
  text: string;
}

export interface ReplyVerdict {
  action: ReplyAction;
  /** Only meaningful for 'rejected': the address does not exist or is disabled for good -> suppressed on every provider. */
  hardBounce: boolean;
  /** What the reply means, short, for people, with the codes. Never contains an address. */
  meaning: string;
  /** Code plus enhanced code ('550 5.1.1'), or the code alone ('550'): the key the batch-alike rule groups on. */
  signature: string;
}

const REPLY_LINE = /^([2-5]\d\d)(?:[ -]|$)/;
/** RFC 3463 section 2: class "." subject "." detail; subject and detail are 1 to 3 digits. */
const ENHANCED_PREFIX = /^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)/;

/**
 * Parses a raw reply, possibly multi-line as nodemailer gives it in `err.response`
 * ("550-5.7.1 a\r\n550 5.7.1 b"). Returns undefined when it does not start with a reply code
 * (2xx to 5xx). Continuation lines lose their "550-" / "550 " prefix and, when it repeats
 * the first line's enhanced code, that code too; all whitespace runs become single spaces.
 */
export function parseSmtpReply(raw: string): SmtpReply | undefined {
  if (typeof raw !== 'string') return undefined;
  const lines = raw.trim().split(/\r?\n/);
  const first = REPLY_LINE.exec(lines[0] ?? '');
  if (!first) return undefined;
  const code = Number(first[1]);
  let enhanced: string | undefined;
  const parts: string[] = [];
  lines.forEach((line, index) => {
    let rest = line.trim();
    const prefix = REPLY_LINE.exec(rest);
    if (prefix) rest = rest.slice(prefix[0].length).trim();
    const status = ENHANCED_PREFIX.exec(rest);
    if (status && index === 0) {
      enhanced = status[0];
      rest = rest.slice(status[0].length).trim();
    } else if (status && status[0] === enhanced) {
      rest = rest.slice(status[0].length).trim();
    }
    if (rest !== '') parts.push(rest);
  });
  const text = parts.join(' ').replace(/\s+/g, ' ').trim();
  return enhanced === undefined ? { code, text } : { code, enhanced, text };
}

// ---------------------------------------------------------------------------------------
// Phrases real servers use, consulted where the codes leave the meaning open.
// ---------------------------------------------------------------------------------------

/**
 * The refusal is about the sending side (relaying, authentication, our sender), whatever the
 * recipient. Checked first at RCPT TO and after the data, because some servers send these
 * without an enhanced code (Exim "550 relay not permitted") or with a 4xx (Postfix
 * "454 4.7.1 <...>: Relay access denied" when it defers unauthorised relaying).
 */
const REFUSES_US: Array<{ pattern: RegExp; meaning: string }> = [
  // Postfix reject_unauth_destination "Relay access denied"; Exim "relay not permitted";
  // Sendmail "Relaying denied"; Exchange "Unable to relay"; cPanel/Exim "not permitted to relay".
  {
    pattern: /\brelay(?:ing)? (?:access )?(?:denied|not permitted|not allowed|prohibited)\b|\bunable to relay\b|\bnot permitted to relay\b/i,
    meaning: 'relay access denied: the relay refuses us',
  },
  // Exim sender verification callout ("550 Sender verify failed"); its text also quotes the
  // callout's "User unknown", which is about OUR sender, so this comes before MAILBOX_GONE.
  { pattern: /\bsender verify failed\b/i, meaning: "our sender address failed the server's verification" },
  // Postfix sender restrictions ("Sender address rejected: ..."); SendGrid "Unauthenticated
  // senders not allowed" and "does not match a verified Sender Identity"; Postal
  // "From/Sender name is not valid"; Amazon SES "Email address is not verified"; Exchange
  // "Client does not have permissions to send as this sender".
  {
    pattern:
      /\bsender\b[^.;]{0,40}?\b(?:rejected|refused|denied|invalid|unknown|does not exist|not (?:allowed|permitted|authori[sz]ed|verified|valid|found))\b|\bunauthenticated senders?\b|\bsender identity\b|\bemail address is not verified\b|\bpermissions? to send as\b/i,
    meaning: 'our sender is refused',
  },
  // Our own sending limits: Amazon SES "454 Throttling failure: Daily message quota exceeded"
  // (which would otherwise read as a full mailbox), Purelymail "contact support for a rate limit increase".
  {
    pattern: /\bthrottling\b|\b(?:daily|hourly|sending) (?:message |sending )?(?:quota|limit|rate)\b|\brate limit (?:increase|exceeded)\b/i,
    meaning: 'our sending rate or quota is exceeded',
  },
  // Exchange "530 5.7.1 Client was not authenticated"; Amazon SES "530 Authentication required".
  { pattern: /\bclient was not authenticated\b|\bauthentication required\b/i, meaning: 'the server requires us to authenticate' },
  // Our sending IP's reputation: Postfix RBL rejects "Client host [203.0.113.7] blocked using
  // zen.spamhaus.org", Gmail "unusual rate of unsolicited mail originating from your IP address".
  {
    pattern:
      /\bblocked using\b|\b(?:client host|your IP(?: address)?|sending IP)\b[^.;]{0,60}?\b(?:blocked|blacklisted|blocklisted|listed|banned|rejected)\b|\bunsolicited mail originating from your\b/i,
    meaning: 'our sending IP is refused',
  },
];

/**
 * The mailbox does not exist or is closed for good. Used only when the enhanced code does
 * not say it already (no enhanced code, a generic X.0.x or X.5.0, or a policy X.7.x):
 * Yahoo answers "554 delivery error: dd This user doesn't have a yahoo.com account" after
 * the data, Yandex "550 5.7.1 No such user!".
 */
const MAILBOX_GONE = [
  /\buser unknown\b|\bunknown user\b/i, // Postfix "User unknown in local recipient table", Sendmail "... User unknown"
  /\bno such (?:user|mailbox|recipient|account)\b/i, // Yandex "No such user!", cPanel "No Such User Here"
  /\b(?:mailbox|recipient|user|account)\b[^.;]{0,40}?\b(?:does not exist|doesn't exist|not found)\b/i, // Gmail 5.1.1, QQ "Mailbox not found", Dovecot "User doesn't exist"
  /\bdoesn't have an? [\w.-]+ account\b/i, // Yahoo "This user doesn't have a yahoo.com account"
  /\baccount has been disabled\b/i, // Yahoo "This account has been disabled or discontinued"
  /\bunroutea?ble address\b/i, // Exim "Unrouteable address"
  /\binvalid recipient\b/i, // Symantec MessageLabs "550 Invalid recipient"
];

/** The mailbox is full: never a reason to suppress the address (it may be emptied). */
const MAILBOX_FULL = [
  /\bover ?quota\b/i, // Gmail "The email account that you tried to reach is over quota"
  /\bquota exceeded\b|\bexceeds? (?:the )?(?:storage|quota)\b/i, // Postfix/Dovecot "Quota exceeded"
  /\b(?:mailbox|inbox) (?:is )?full\b/i, // "Mailbox full"
];

function refusesUs(text: string): string | undefined {
  return REFUSES_US.find((hint) => hint.pattern.test(text))?.meaning;
}
const says = (patterns: RegExp[], text: string): boolean => patterns.some((pattern) => pattern.test(text));

// ---------------------------------------------------------------------------------------
// Classification
// ---------------------------------------------------------------------------------------

interface Enhanced {
  subject: number;
  detail: number;
}

function enhancedParts(enhanced: string | undefined): Enhanced | undefined {
  const m = enhanced === undefined ? null : ENHANCED_PREFIX.exec(enhanced);
  return m ? { subject: Number(m[2]), detail: Number(m[3]) } : undefined;
}

/**
 * Enhanced codes that say nothing more than the reply code: none at all, X.0.x ("other or
 * undefined status", RFC 3463 section 3.1) and X.5.0 ("other or undefined protocol status";
 * Outlook.com answers an unknown mailbox with "550 5.5.0 Requested action not taken:
 * mailbox unavailable").
 */
const isGeneric = (e: Enhanced | undefined): boolean => e === undefined || e.subject === 0 || (e.subject === 5 && e.detail === 0);
/** Codes whose detail leaves the text room to say what it is about: generic ones and X.7.x (security or policy). */
const textMayTell = (e: Enhanced | undefined): boolean => isGeneric(e) || e!.subject === 7;
/** RFC 3463 X.1.7 bad sender's mailbox address syntax, X.1.8 bad sender's system address. */
const isSenderCode = (e: Enhanced | undefined): boolean => e?.subject === 1 && (e.detail === 7 || e.detail === 8);
/** X.7.x details about the sending side whatever the recipient (see classifyRecipient). */
const US_POLICY_DETAILS = new Set([0, 8, 9, 11, 13, 14, 20, 21, 22, 23, 24, 25, 26, 27]);
/** RFC 4954 / RFC 3207 replies to a client that did not (or could not) authenticate or encrypt. */
const AUTH_CODES = new Set([530, 534, 535, 538]);

const PHASE_NAMES: Record<SmtpPhase, string> = {
  connect: 'the greeting',
  ehlo: 'EHLO',
  starttls: 'STARTTLS',
  auth: 'AUTH',
  mail: 'MAIL FROM',
  rcpt: 'RCPT TO',
  data: 'DATA',
  message: 'the end of the data',
};

/**
 * What a reply means for the engine, from the phase it came in and its codes. In order:
 * codes that mean the same at any phase (421 closing, 503 bad sequence, 432 password
 * transition, 530/534/535/538 authentication); then the session phases (connect, EHLO,
 * STARTTLS, AUTH: 4xx transient, 5xx refuses us), MAIL FROM (only our sender is there),
 * RCPT TO (about the one recipient unless it says it is about us or the system), DATA and
 * the reply after the data (mailbox codes about the recipient, policy codes about us).
 * A 2xx/3xx reply is not a refusal: it comes back 'transient' ("unexpected positive reply").
 */
export function classifySmtpReply(phase: SmtpPhase, reply: SmtpReply): ReplyVerdict {
  const code = reply.code;
  const enhanced = reply.enhanced?.trim() || undefined;
  const signature = enhanced === undefined ? String(code) : `${code} ${enhanced}`;
  const text = scrubAddresses(reply.text ?? '');
  const verdict = (action: ReplyAction, meaning: string, hardBounce = false): ReplyVerdict => ({
    action,
    hardBounce: action === 'rejected' && hardBounce,
    meaning: scrubAddresses(`${meaning} (${signature})`),
    signature,
  });
  const e = enhancedParts(enhanced);
  const temporary = code >= 400 && code < 500;
  const at = PHASE_NAMES[phase] ?? phase;

  if (code < 400 || code >= 600) return verdict('transient', `unexpected ${code < 400 ? 'positive' : 'unknown'} reply at ${at}`);

  // RFC 5321 section 3.8: 421 "Service not available, closing transmission channel", at any
  // point of the dialogue. Gmail's rate limits (421-4.7.28) and Mailgun's sandbox refusal at
  // DATA come this way; a new connection later may succeed.
  if (code === 421) return verdict('transient', `the server is closing the connection at ${at}`);
  // RFC 5321 section 4.2.3: 503 "Bad sequence of commands": the session was in the wrong state, a new one can succeed.
  if (code === 503) return verdict('transient', `the server saw a bad sequence of commands at ${at}`);
  // RFC 4954 section 6: 432 4.7.12 "A password transition is needed": waiting will not help.
  if (code === 432 || enhanced === '4.7.12') return verdict('provider', 'the server needs a password transition for our account');
  // RFC 4954 sections 4 and 6, RFC 3207: 530 authentication (or STARTTLS) required, 534 mechanism too weak,
  // 535 credentials invalid, 538 encryption required; whatever the phase they are about us.
  if (AUTH_CODES.has(code)) return verdict('provider', refusesUs(text) ?? `authentication failed at ${at}`);

  switch (phase) {
    case 'connect':
    case 'ehlo':
    case 'starttls':
    case 'auth':
      // The session itself: 4xx is throttling or a passing fault (RFC 4954 "454 4.7.0
      // Temporary authentication failure", Gmail "454 4.7.0 Too many login attempts"); 5xx
      // refuses our session (RFC 5321 "554 No SMTP service here", blocklisted IPs, 5.7.x).
      return temporary
        ? verdict('transient', `temporary refusal at ${at}`)
        : verdict('provider', phase === 'auth' ? 'authentication failed' : `the server refuses our session at ${at}`);
    case 'mail':
      // MAIL FROM carries only our sender: any 5xx (553/550/501, 5.1.7/5.1.8 bad sender,
      // 5.7.x policy, blocklisted IP) refuses us; any 4xx is throttling (Yahoo "421 4.7.0
      // [TSS04]", Exchange back pressure "452 4.3.1").
      if (temporary) return verdict('transient', 'temporary refusal at MAIL FROM');
      return verdict(
        'provider',
        isSenderCode(e) ? 'our sender address is refused' : (refusesUs(text) ?? 'the server refuses our sender or sending IP at MAIL FROM'),
      );
    case 'rcpt':
      return classifyRecipient(code, e, text, verdict);
    case 'data':
      // The reply to the DATA command, before any byte of the message.
      if (temporary) return verdict('transient', 'temporary refusal at DATA');
      return classifyAfterData(code, e, text, verdict, true);
    case 'message':
      return classifyAfterData(code, e, text, verdict, false);
    default:
      return temporary ? verdict('transient', `temporary failure at ${at}`) : verdict('provider', `refusal at ${at}`);
  }
}

type Verdict = (action: ReplyAction, meaning: string, hardBounce?: boolean) => ReplyVerdict;

/** RCPT TO: our messages have one recipient, so a reply here is about that recipient unless it says otherwise. */
function classifyRecipient(code: number, e: Enhanced | undefined, text: string, verdict: Verdict): ReplyVerdict {
  const temporary = code < 500;
  const aboutUs = refusesUs(text);
  if (aboutUs) return temporary ? verdict('transient', `temporarily: ${aboutUs}`) : verdict('provider', aboutUs);
  if (isSenderCode(e)) return temporary ? verdict('transient', 'temporary refusal of our sender') : verdict('provider', 'our sender address is refused');

  if (temporary) {
    // RFC 3463 X.3.1 "Mail system full", X.3.2 "System not accepting network messages":
    // about the receiving system, not the mailbox.
    if (e?.subject === 3 && (e.detail === 1 || e.detail === 2)) return verdict('transient', 'the receiving system is not accepting mail for now');
    // RFC 3463 X.5.3 "Too many recipients" (RFC 5321 section 4.5.3.1.10: 452).
    if (e?.subject === 5 && e.detail === 3) return verdict('transient', 'too many recipients in this session');
    // RFC 5321 section 4.2.3: 452 "insufficient system storage", when no enhanced code says more.
    if (code === 452 && isGeneric(e) && !says(MAILBOX_FULL, text)) return verdict('transient', 'the receiving system is short of storage');
    // Everything else is about this one recipient for now: 4.2.2 mailbox full, 4.2.1 receiving
    // too fast, 4.7.x greylisting, 4.4.x routing/DNS, 4.1.x unverified, 4.2.0, 4.3.0 lookup,
    // and a 4xx with no enhanced code (Exim greylisting: "451 ... is not yet authorized to
    // deliver mail from <...> to <...>. Please try later"). Should a whole batch get it, the
    // batch-alike rule (deferrals count) makes it the provider's problem.
    return verdict('deferred', recipientLater(e, text));
  }

  const said = mailboxPhrase(e, text, verdict);
  if (said) return said;
  if (e && !isGeneric(e)) {
    switch (e.subject) {
      case 1:
      case 2:
        return mailboxStatus(e, verdict);
      case 3:
        // X.3.x mail system status: the receiving system, not the address.
        return verdict('provider', 'the receiving mail system refuses (system problem)');
      case 4:
        // X.4.4 unable to route (no such domain). X.4.1 is "no answer from host" in RFC 3463,
        // but Exchange Online's directory-based edge blocking answers an address missing from
        // the tenant with "550 5.4.1 Recipient address rejected: Access denied"
        // (learn.microsoft.com, "Use Directory Based Edge Blocking to reject messages sent to invalid recipients").
        if (e.detail === 4) return verdict('rejected', 'the recipient domain cannot be routed', true);
        if (e.detail === 1) return verdict('rejected', 'recipient not found in the directory', true);
        return verdict('rejected', 'the recipient cannot be reached (routing)');
      case 5:
        return verdict('rejected', 'the server refuses this recipient (protocol or syntax)');
      case 6:
        return verdict('rejected', "the server refuses this message's content");
      case 7:
        // X.7.x security or policy at RCPT TO. Codes that are about us whatever the recipient:
        // authentication (5.7.0, 5.7.8, 5.7.9, 5.7.11), our account (5.7.13), sender
        // authentication (RFC 7372: 5.7.20-5.7.27: DKIM, SPF, reverse DNS, DMARC, null MX),
        // banned sending IP (Microsoft 5.7.606-649). Relaying denied and blocklisted IPs come as
        // 5.7.1 with a text that says so (REFUSES_US, checked above). A bare 5.7.1 for one
        // recipient is that recipient's policy (Exchange "5.7.1 ... Access denied" for a group
        // that takes no outside mail, RESOLVER.RST.*): one recipient never takes a provider down,
        // and a batch refused alike is the provider's (alikeRefusal).
        if (US_POLICY_DETAILS.has(e.detail) || (e.detail >= 600 && e.detail <= 649))
          return verdict('provider', 'policy refusal of us (authentication, sender or IP)');
        return verdict('rejected', "the recipient's policy refuses this message");
      default:
        break;
    }
  }
  // No enhanced code (or a generic one): RFC 5321 550 "mailbox unavailable", 551 "user not
  // local", 553 "mailbox name not allowed" reject the address; other codes (554, 552) do not
  // say the mailbox is gone.
  if (code === 550 || code === 551 || code === 553) return verdict('rejected', 'mailbox unavailable', true);
  return verdict('rejected', 'recipient refused');
}

/**
 * A permanent refusal whose text says the mailbox is full or gone, when the enhanced code
 * leaves it open (none, generic, or X.7.x): full is never suppressed, gone is a hard bounce.
 */
function mailboxPhrase(e: Enhanced | undefined, text: string, verdict: Verdict): ReplyVerdict | undefined {
  if (!textMayTell(e)) return undefined;
  if (says(MAILBOX_FULL, text)) return verdict('rejected', 'mailbox full');
  if (says(MAILBOX_GONE, text)) return verdict('rejected', 'mailbox does not exist', true);
  return undefined;
}

/** RFC 3463 X.1.x address status and X.2.x mailbox status of our one recipient, in a 5xx. */
function mailboxStatus(e: Enhanced, verdict: Verdict): ReplyVerdict {
  if (e.subject === 1) {
    // X.1.4 ambiguous and X.1.5 valid are not the mailbox missing (X.1.7/X.1.8, our sender, are
    // handled before); X.1.1 bad mailbox, X.1.2 bad system, X.1.3 bad syntax, X.1.6 moved,
    // X.1.10 null MX (RFC 7505) and X.1.0 other address status say the address will not work.
    if (e.detail === 4 || e.detail === 5) return verdict('rejected', 'the address is ambiguous or not accepted');
    return verdict('rejected', e.detail === 6 ? 'mailbox has moved' : 'mailbox does not exist', true);
  }
  // X.2.1 mailbox disabled is for good; X.2.2 full is never suppressed; X.2.0/X.2.3/X.2.4 are not the address.
  if (e.detail === 1) return verdict('rejected', 'mailbox disabled', true);
  if (e.detail === 2) return verdict('rejected', 'mailbox full');
  return verdict('rejected', 'the mailbox refuses this message');
}

function recipientLater(e: Enhanced | undefined, text: string): string {
  if (/\bgrey ?list/i.test(text)) return 'greylisted, try later';
  if (says(MAILBOX_FULL, text) || (e?.subject === 2 && e.detail === 2)) return 'mailbox full, try later';
  if (e?.subject === 2 && e.detail === 1) return 'the mailbox receives too fast, try later';
  if (e?.subject === 7) return 'policy delay or greylisting, try later';
  if (e?.subject === 4) return 'routing or DNS problem for this recipient, try later';
  if (e?.subject === 1) return 'the address could not be verified now, try later';
  return 'this recipient later';
}

/**
 * After the data (or a 5xx to the DATA command itself): the recipient is known, so mailbox
 * codes are about that recipient; X.7.x and a bare 554 are policy refusals of us or of the
 * content (Amazon SES "554 Message rejected: Email address is not verified", Gmail
 * "550-5.7.1 ... likely unsolicited mail", "550-5.7.26 ... unauthenticated").
 */
function classifyAfterData(code: number, e: Enhanced | undefined, text: string, verdict: Verdict, dataCommand: boolean): ReplyVerdict {
  const temporary = code < 500;
  const aboutUs = refusesUs(text);
  if (aboutUs) return temporary ? verdict('transient', `temporarily: ${aboutUs}`) : verdict('provider', aboutUs);
  if (isSenderCode(e)) return temporary ? verdict('transient', 'temporary refusal of our sender') : verdict('provider', 'our sender address is refused');

  if (temporary) {
    // 4.2.x (full, receiving too fast), 4.7.x (greylisting, reputation delay), 4.4.x (routing),
    // 4.1.x and 4.6.x: this recipient later. 4.3.x (system), 4.0.x, 4.5.x and no enhanced code
    // say nothing about the recipient: retry the batch.
    if (isGeneric(e))
      return says(MAILBOX_FULL, text) ? verdict('deferred', 'mailbox full, try later') : verdict('transient', 'temporary failure after the data');
    if (e!.subject === 3) return verdict('transient', 'the receiving system is not accepting mail for now');
    if (e!.subject === 5) return verdict('transient', 'temporary protocol failure after the data');
    return verdict('deferred', recipientLater(e, text));
  }

  const said = mailboxPhrase(e, text, verdict);
  if (said) return said;
  if (e && !isGeneric(e)) {
    switch (e.subject) {
      case 1:
      case 2:
        return mailboxStatus(e, verdict);
      case 3:
        // X.3.4 "Message too big for system"; other X.3.x the receiving system refuses this message.
        return verdict('rejected', e.detail === 4 ? 'message too big' : 'the receiving system refuses this message');
      case 6:
        // X.6.x media / content errors (SparkPost "550 5.6.0 JSON parsing error in X-MSYS-API").
        return verdict('rejected', 'the message content is refused (media error)');
      case 7:
        return verdict('provider', 'the message is refused by policy (authentication, reputation or content)');
      default:
        return verdict('rejected', 'the message is refused');
    }
  }
  // 554 "Transaction failed" (RFC 5321) with no enhanced code: the relay's own refusal of the
  // message (Amazon SES, Mailgun sandbox, Yahoo "dd Requested mail action aborted").
  if (code === 554) return verdict('provider', 'the message is refused (transaction failed)');
  // A 5xx to the DATA command itself that says nothing more refuses the session, not a recipient.
  if (dataCommand) return verdict('provider', 'the server refuses the data');
  return verdict('rejected', 'the message is refused');
}
