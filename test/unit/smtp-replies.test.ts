/**
 * SMTP replies classified by phase and enhanced status code (src/providers/smtp/replies.ts):
 * the rules one by one, then the corpus of real replies published by real mail systems
 * (test/fixtures/smtp-replies.json, each with where it was published), then the parser,
 * the batch-alike rule and the address scrubber.
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { alikeRefusal, scrubAddresses } from '../../src/providers/refusals';
import { classifySmtpReply, parseSmtpReply, type ReplyAction, type SmtpPhase } from '../../src/providers/smtp/replies';

const CORPUS = path.join(__dirname, '..', '..', '..', 'test', 'fixtures', 'smtp-replies.json');
const PHASES: SmtpPhase[] = ['connect', 'ehlo', 'starttls', 'auth', 'mail', 'rcpt', 'data', 'message'];
const ACTIONS: ReplyAction[] = ['transient', 'provider', 'deferred', 'rejected'];
const PHASE_TITLES: Record<SmtpPhase, string> = {
  connect: 'the greeting',
  ehlo: 'EHLO',
  starttls: 'STARTTLS',
  auth: 'AUTH',
  mail: 'MAIL FROM',
  rcpt: 'RCPT TO',
  data: 'DATA',
  message: 'the end of the data',
};

interface CorpusEntry {
  source: string;
  cite: string;
  phase: SmtpPhase;
  reply: string;
  expect: { action: ReplyAction; hardBounce: boolean };
}

function classifyRaw(phase: SmtpPhase, raw: string) {
  const reply = parseSmtpReply(raw);
  assert.ok(reply, `not parsed: ${JSON.stringify(raw)}`);
  return classifySmtpReply(phase, reply);
}

describe('smtp replies: the rules', () => {
  // [phase, raw reply, action, hardBounce, why]
  const rows: Array<[SmtpPhase, string, ReplyAction, boolean, string]> = [
    // The relay refuses us.
    ['rcpt', '550 5.7.1 <bob@example.org>: Relay access denied', 'provider', false, 'is the relay refusing us'],
    ['rcpt', '530 5.7.0 Authentication required', 'provider', false, 'is authentication required of us'],
    ['rcpt', "550 5.7.26 Unauthenticated email from example.com is not accepted due to domain's DMARC policy", 'provider', false, 'is our DMARC failing'],
    ['rcpt', '550 5.7.27 Sender address has null MX', 'provider', false, 'is our sender domain refused'],
    ['rcpt', '550 5.7.1 Service unavailable; Client host [203.0.113.7] blocked using zen.spamhaus.org', 'provider', false, 'is our blocklisted IP refused'],
    [
      'rcpt',
      '550 5.7.1 RESOLVER.RST.NotAuthorized; not authorized to send to this recipient',
      'rejected',
      false,
      "is that one recipient's policy (one recipient never takes a provider down)",
    ],
    ['rcpt', '554 5.7.1 message refused', 'rejected', false, "is that one recipient's policy when nothing says it is about us"],
    ['rcpt', '451 4.3.5 Server configuration problem', 'deferred', false, 'is a temporary problem for this recipient (4.3.5 is not system storage)'],
    ['rcpt', '553 5.1.8 <us@example.com>: Sender address rejected: Domain not found', 'provider', false, 'is our sender domain, not the mailbox (X.1.8)'],
    ['rcpt', '550 5.1.7 Bad sender address syntax', 'provider', false, 'is our sender address syntax (X.1.7)'],
    ['rcpt', '450 4.1.8 <us@example.com>: Sender address rejected: Domain not found', 'transient', false, 'is our sender domain, for now'],
    ['rcpt', '550 relay not permitted', 'provider', false, 'without an enhanced code still says relaying is denied'],
    ['rcpt', '554 5.3.0 Mail system error', 'provider', false, 'is the receiving system (X.3.x), not the address'],
    ['mail', '553 5.1.8 Sender domain does not exist', 'provider', false, 'refuses our sender'],
    ['mail', '550 Sender rejected', 'provider', false, 'refuses our sender without an enhanced code'],
    ['mail', '501 5.1.7 Bad sender address syntax', 'provider', false, 'refuses our sender syntax'],
    ['connect', '554 No SMTP service here', 'provider', false, 'refuses our session'],
    ['connect', '554 5.7.1 Service unavailable; Client host [203.0.113.7] blocked using zen.spamhaus.org', 'provider', false, 'refuses our blocklisted IP'],
    ['ehlo', '550 5.7.1 Helo command rejected: Host not found', 'provider', false, 'refuses our session'],
    ['starttls', '554 5.7.3 TLS not available', 'provider', false, 'refuses our session'],
    ['auth', '535 5.7.8 Authentication credentials invalid', 'provider', false, 'refuses our credentials'],
    ['auth', '534 5.7.9 Authentication mechanism is too weak', 'provider', false, 'refuses our mechanism'],
    ['auth', '538 5.7.11 Encryption required for requested authentication mechanism', 'provider', false, 'requires encryption'],
    ['auth', '432 4.7.12 A password transition is needed', 'provider', false, 'needs a password transition: waiting does not help'],
    ['auth', '454 4.7.0 Temporary authentication failure', 'transient', false, 'is a temporary authentication failure'],
    ['message', '554 Message rejected: Email address is not verified.', 'provider', false, 'refuses our unverified sender'],
    ['message', '550 5.7.1 This message is likely unsolicited mail', 'provider', false, 'refuses by content policy'],
    ['message', '554 Transaction failed', 'provider', false, 'without an enhanced code refuses the message'],
    // The mailbox does not exist.
    ['rcpt', '550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown', 'rejected', true, 'is a mailbox that does not exist'],
    ['rcpt', '550 5.1.2 Host unknown', 'rejected', true, 'is a domain that does not exist'],
    ['rcpt', '501 5.1.3 Bad recipient address syntax', 'rejected', true, 'is an address that cannot exist'],
    ['rcpt', '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup', 'rejected', true, 'is a recipient not found'],
    ['rcpt', '551 5.1.6 User has moved', 'rejected', true, 'is a mailbox that moved'],
    ['rcpt', '550 5.4.1 Recipient address rejected: Access denied', 'rejected', true, 'is Exchange Online directory-based edge blocking: not in the tenant'],
    ['rcpt', '550 5.4.4 Unable to route', 'rejected', true, 'is a domain that cannot be routed'],
    ['rcpt', '550 No such user here', 'rejected', true, 'without an enhanced code is a hard bounce'],
    ['rcpt', '551 User not local', 'rejected', true, 'without an enhanced code is a hard bounce'],
    ['rcpt', '553 Mailbox name not allowed', 'rejected', true, 'without an enhanced code is a hard bounce'],
    ['rcpt', '554 Recipient refused', 'rejected', false, 'is rejected but not a hard bounce'],
    ['rcpt', '552 Requested mail action aborted', 'rejected', false, 'is rejected but not a hard bounce'],
    ['message', '550 5.1.1 The email account that you tried to reach does not exist', 'rejected', true, 'is a mailbox that does not exist'],
    [
      'message',
      "554 delivery error: dd This user doesn't have a example.com account",
      'rejected',
      true,
      'without an enhanced code still says the account does not exist',
    ],
    // Disabled or full.
    ['rcpt', '550 5.2.1 The email account that you tried to reach is disabled', 'rejected', true, 'is a disabled mailbox'],
    ['rcpt', '552 5.2.2 Mailbox full', 'rejected', false, 'is a full mailbox, never suppressed'],
    ['rcpt', '554 5.7.1 <bob@example.org>: Recipient address rejected: Quota exceeded', 'rejected', false, 'says the mailbox is full despite its policy code'],
    ['rcpt', '452 4.2.2 Mailbox full', 'deferred', false, 'is a full mailbox, later'],
    ['rcpt', '450 4.2.1 The user you are trying to contact is receiving mail too quickly', 'deferred', false, 'is a recipient receiving too fast, later'],
    ['message', '552 5.2.2 Mailbox full', 'rejected', false, 'is a full mailbox, never suppressed'],
    // 4xx for one recipient.
    ['rcpt', '450 4.7.1 <bob@example.org>: Recipient address rejected: Greylisted', 'deferred', false, 'is greylisting'],
    ['rcpt', '451 4.7.1 Please try again later', 'deferred', false, 'is greylisting'],
    ['rcpt', '451 4.4.0 DNS temporary failure', 'deferred', false, 'is a routing problem for this recipient'],
    ['rcpt', '450 4.1.1 <bob@example.org>: Recipient address rejected: unverified address', 'deferred', false, 'is an address that could not be verified now'],
    ['rcpt', '450 4.2.0 <bob@example.org>: Recipient address rejected: Greylisted', 'deferred', false, 'is postgrey greylisting'],
    ['rcpt', '451 4.3.0 Temporary lookup failure', 'deferred', false, 'is a temporary lookup failure'],
    ['rcpt', '452 4.3.1 Insufficient system storage', 'transient', false, 'is the system, not the mailbox'],
    ['rcpt', '453 4.3.2 System not accepting network messages', 'transient', false, 'is the system, not the mailbox'],
    ['rcpt', '452 4.5.3 Too many recipients', 'transient', false, 'is the transaction, not the mailbox'],
    ['rcpt', '452 Requested action not taken: insufficient system storage', 'transient', false, 'without an enhanced code is system storage'],
    ['rcpt', '421 4.7.0 Try again later, closing connection', 'transient', false, 'closes the connection'],
    // Throttling and session state.
    ['connect', '421 4.7.0 Try again later', 'transient', false, 'is throttling'],
    ['ehlo', '450 4.7.1 Client host rejected: too many connections', 'transient', false, 'is throttling'],
    ['mail', '421-4.7.28 Gmail has detected an unusual rate of mail', 'transient', false, 'closes the connection'],
    ['mail', '452 4.3.1 Insufficient system resources', 'transient', false, 'is temporary'],
    ['data', '451 4.3.0 Mail server temporarily rejected message', 'transient', false, 'is temporary'],
    ['data', '421 Domain is not allowed to send', 'transient', false, 'closes the connection'],
    ['data', '554 5.7.1 Message refused', 'provider', false, 'refuses us'],
    ['mail', '503 5.5.1 Bad sequence of commands', 'transient', false, 'is a session in the wrong state'],
    ['rcpt', '503 5.5.1 Error: need MAIL command', 'transient', false, 'is a session in the wrong state'],
    // After the data.
    ['message', '451 4.7.500 Server busy. Please try again later', 'deferred', false, 'defers this recipient'],
    ['message', '450 4.2.1 Receiving too fast', 'deferred', false, 'defers this recipient'],
    ['message', '451 4.4.2 Bad connection', 'deferred', false, 'defers this recipient'],
    ['message', '451 4.3.0 Temporary system problem', 'transient', false, 'is the system'],
    ['message', '451 Temporary local problem - please try later', 'transient', false, 'without an enhanced code is temporary'],
    ['message', '454 Throttling failure: Maximum sending rate exceeded', 'transient', false, 'without an enhanced code is temporary'],
    ['message', '552 5.3.4 Message size exceeds fixed maximum message size', 'rejected', false, 'is a message too big, not the address'],
    ['message', '550 5.6.0 JSON parsing error in X-MSYS-API', 'rejected', false, 'is a content error, not the address'],
    ['message', '550 5.7.26 This mail is unauthenticated', 'provider', false, 'refuses us'],
    ['message', '550 Message content rejected', 'rejected', false, 'without an enhanced code rejects this message only'],
    ['message', '554 5.4.6 Hop count exceeded - possible mail loop', 'rejected', false, 'rejects this message only'],
    ['rcpt', '501 5.5.4 Invalid address', 'rejected', false, 'is a protocol or syntax refusal, not a missing mailbox'],
    ['rcpt', '550 5.1.4 Destination mailbox address ambiguous', 'rejected', false, 'is ambiguous, not missing'],
    ['data', '550 5.1.1 User unknown', 'rejected', true, 'is about our single recipient'],
    ['data', '550 Error', 'provider', false, 'without an enhanced code refuses the data, not a recipient'],
    ['message', '450 4.1.1 Recipient address rejected: unverified address', 'deferred', false, 'defers this recipient'],
    ['message', '550 5.2.1 This account has been disabled', 'rejected', true, 'is a disabled mailbox'],
    // Not a refusal at all.
    ['rcpt', '250 2.1.5 Ok', 'transient', false, 'is not a refusal; it is taken as a passing oddity'],
    // Unrecognised.
    ['rcpt', '459 Something odd', 'deferred', false, 'defers the recipient'],
    ['auth', '599 Something odd', 'provider', false, 'refuses us at a session phase'],
    ['rcpt', '599 Something odd', 'rejected', false, 'rejects without suppressing'],
    ['message', '599 Something odd', 'rejected', false, 'rejects without suppressing'],
    ['message', '499 Something odd', 'transient', false, 'retries'],
  ];
  for (const [phase, raw, action, hardBounce, why] of rows) {
    const reply = parseSmtpReply(raw)!;
    const shown = scrubAddresses(reply.text);
    const said = `${reply.code}${reply.enhanced ? ` ${reply.enhanced}` : ''} "${shown.length > 40 ? `${shown.slice(0, 40)}...` : shown}"`;
    const outcome = `${action}${action === 'rejected' ? (hardBounce ? ' (hard bounce)' : ' (not suppressed)') : ''}`;
    it(`smtp reply: ${said} at ${PHASE_TITLES[phase]} ${why} -> ${outcome}`, () => {
      const verdict = classifyRaw(phase, raw);
      assert.equal(verdict.action, action, `${phase} ${raw}: ${JSON.stringify(verdict)}`);
      assert.equal(verdict.hardBounce, hardBounce, `${phase} ${raw}: ${JSON.stringify(verdict)}`);
      assert.ok(verdict.meaning.includes(`(${verdict.signature})`), `meaning names the codes: ${verdict.meaning}`);
      assert.ok(!verdict.meaning.includes('@'), `meaning has no address: ${verdict.meaning}`);
    });
  }

  it('smtp reply: hardBounce is false for every action but rejected, and the signature is code plus enhanced code', () => {
    for (const phase of PHASES) {
      for (const raw of ['550 5.1.1 User unknown', '450 4.2.2 Mailbox full', '421 4.7.0 Try again later', '550 User unknown']) {
        const verdict = classifyRaw(phase, raw);
        if (verdict.action !== 'rejected') assert.equal(verdict.hardBounce, false, `${phase} ${raw}`);
        assert.equal(
          verdict.signature,
          raw
            .split(' ')
            .slice(0, /^\d\.\d/.test(raw.split(' ')[1]!) ? 2 : 1)
            .join(' '),
          `${phase} ${raw}`,
        );
      }
    }
    assert.equal(classifySmtpReply('rcpt', { code: 550, text: 'User unknown' }).signature, '550');
    assert.equal(classifySmtpReply('rcpt', { code: 550, enhanced: '5.1.1', text: 'User unknown' }).signature, '550 5.1.1');
  });

  it('smtp reply: an address in the reply text never steers the verdict nor reaches the meaning', () => {
    // The text says nothing but an address that looks like a phrase.
    const gone = classifyRaw('message', '554 <no-such-user@example.org> <user-unknown@example.org>');
    assert.equal(gone.action, 'provider', JSON.stringify(gone));
    const relay = classifyRaw('rcpt', '550 5.1.1 <relay-access-denied@example.org>: Recipient address rejected: User unknown');
    assert.deepEqual([relay.action, relay.hardBounce], ['rejected', true], JSON.stringify(relay));
    assert.ok(!relay.meaning.includes('@') && !gone.meaning.includes('@'));
  });
});

describe('smtp replies: the real-reply corpus', () => {
  const corpus: CorpusEntry[] = JSON.parse(fs.readFileSync(CORPUS, 'utf8'));
  const sources = [...new Set(corpus.map((entry) => entry.source))];
  const named = sources.length > 6 ? `${sources.slice(0, 6).join(', ')}, ... ` : `${sources.join(', ')} `;

  it(`relay answers: every reply of the real-reply corpus (${corpus.length} replies from ${named}) is classified as its phase and code say`, () => {
    assert.ok(corpus.length >= 45, `the corpus has ${corpus.length} replies, at least 45 wanted`);
    assert.ok(sources.length >= 10, `the corpus has ${sources.length} sources, at least 10 wanted: ${sources.join(', ')}`);
    const mismatches: string[] = [];
    corpus.forEach((entry, index) => {
      const where = `#${index} ${entry.source} at ${entry.phase}: ${JSON.stringify(entry.reply.slice(0, 90))}`;
      if (typeof entry.cite !== 'string' || entry.cite.trim().length < 10) mismatches.push(`${where}: no cite`);
      if (!PHASES.includes(entry.phase)) mismatches.push(`${where}: unknown phase`);
      if (!ACTIONS.includes(entry.expect?.action) || typeof entry.expect?.hardBounce !== 'boolean') mismatches.push(`${where}: bad expect`);
      const reply = parseSmtpReply(entry.reply);
      if (!reply) {
        mismatches.push(`${where}: not parsed`);
        return;
      }
      const verdict = classifySmtpReply(entry.phase, reply);
      if (verdict.action !== entry.expect.action || verdict.hardBounce !== entry.expect.hardBounce) {
        mismatches.push(
          `${where}: expected ${entry.expect.action}${entry.expect.hardBounce ? ' (hard)' : ''}, got ${verdict.action}${verdict.hardBounce ? ' (hard)' : ''}: ${verdict.meaning}`,
        );
      }
    });
    assert.equal(mismatches.length, 0, `${mismatches.length} of ${corpus.length} replies classified otherwise:\n${mismatches.join('\n')}`);
  });

  it('relay answers: no meaning in the corpus contains an address, though many replies echo one', () => {
    const echoing = corpus.filter((entry) => entry.reply.includes('@'));
    assert.ok(echoing.length >= 10, `replies echoing an address: ${echoing.length}`);
    const leaks = corpus.map((entry) => classifySmtpReply(entry.phase, parseSmtpReply(entry.reply)!).meaning).filter((meaning) => meaning.includes('@'));
    assert.deepEqual(leaks, []);
  });
});

describe('smtp replies: parseSmtpReply', () => {
  it('parse: a multi-line reply is one line, continuation prefixes (code and enhanced code) removed', () => {
    assert.deepEqual(parseSmtpReply('550-5.7.1 a\r\n550 5.7.1 b'), { code: 550, enhanced: '5.7.1', text: 'a b' });
    const gmail = parseSmtpReply(
      "550-5.1.1 The email account that you tried to reach does not exist. Please try\n550-5.1.1 double-checking the recipient's email address for typos or\n550-5.1.1 unnecessary spaces. Learn more at\n550 5.1.1  https://support.google.com/mail/?p=NoSuchUser x1 - gsmtp",
    );
    assert.deepEqual(gmail, {
      code: 550,
      enhanced: '5.1.1',
      text: "The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces. Learn more at https://support.google.com/mail/?p=NoSuchUser x1 - gsmtp",
    });
    // Empty continuation lines ("550-5.7.26 ") add nothing.
    assert.deepEqual(parseSmtpReply('550-5.7.26 blocked.\n550-5.7.26 \n550 5.7.26 see x'), { code: 550, enhanced: '5.7.26', text: 'blocked. see x' });
  });

  it('parse: a reply without an enhanced code has none, continuation lines keep their text', () => {
    assert.deepEqual(parseSmtpReply('550 relay not permitted'), { code: 550, text: 'relay not permitted' });
    assert.deepEqual(parseSmtpReply('550-Verification failed\n550 Sender verify failed'), { code: 550, text: 'Verification failed Sender verify failed' });
    assert.deepEqual(parseSmtpReply('421'), { code: 421, text: '' });
    // A status-like token later in the text is not the enhanced code.
    assert.deepEqual(parseSmtpReply('550 Invalid recipient (#5.1.1)'), { code: 550, text: 'Invalid recipient (#5.1.1)' });
    // An enhanced code on a continuation line only is text, not the reply's code.
    assert.deepEqual(parseSmtpReply('550-Response:\n550 5.1.1 User unknown'), { code: 550, text: 'Response: 5.1.1 User unknown' });
  });

  it('parse: garbage is undefined', () => {
    for (const raw of ['', '   ', 'Connection closed', 'ok 250', '55 short', '650 not a reply code', '1234 too long', 'Error: 550 5.1.1 inside']) {
      assert.equal(parseSmtpReply(raw), undefined, JSON.stringify(raw));
    }
    assert.equal(parseSmtpReply(undefined as unknown as string), undefined);
  });
});

describe('smtp replies: alikeRefusal (the batch-alike rule)', () => {
  const sig = (signature: string, n: number) => Array.from({ length: n }, () => ({ signature }));

  it('alike: 3 of 4 recipients refused alike is about the provider', () => {
    assert.deepEqual(alikeRefusal(4, [...sig('550 5.1.1', 3), ...sig('550 5.2.2', 1)]), { signature: '550 5.1.1', count: 3 });
  });

  it('alike: 2 of 2 is not enough (at least 3)', () => {
    assert.equal(alikeRefusal(2, sig('550 5.1.1', 2)), undefined);
  });

  it('alike: 10 of 50 alike is not most of the batch', () => {
    assert.equal(alikeRefusal(50, sig('550 5.1.1', 10)), undefined);
    // Exactly half is not more than half either; one more is.
    assert.equal(alikeRefusal(8, sig('550 5.1.1', 4)), undefined);
    assert.deepEqual(alikeRefusal(8, sig('550 5.1.1', 5)), { signature: '550 5.1.1', count: 5 });
  });

  it('alike: mixed signatures count apart; the one covering most of the batch is named', () => {
    assert.equal(alikeRefusal(10, [...sig('550 5.1.1', 4), ...sig('550', 4)]), undefined, '4 + 4 different refusals of 10');
    assert.deepEqual(alikeRefusal(10, [...sig('550', 2), ...sig('550 5.7.1', 6), ...sig('450 4.7.1', 2)]), { signature: '550 5.7.1', count: 6 });
    assert.equal(alikeRefusal(0, []), undefined);
  });
});

describe('smtp replies: scrubAddresses', () => {
  it('scrub: an address in angle brackets', () => {
    assert.equal(scrubAddresses('<bob@x.org>: Relay access denied'), '[address]: Relay access denied');
    assert.equal(scrubAddresses('RCPT TO:< bob@x.org >'), 'RCPT TO:[address]');
  });

  it("scrub: a bare address, with the sentence's full stop kept", () => {
    assert.equal(scrubAddresses('Recipient bob.smith+news@mail.x.org not found.'), 'Recipient [address] not found.');
    assert.equal(scrubAddresses('region EU-WEST-1: root@ip-172-31-38-21.eu-west-1.compute.internal'), 'region EU-WEST-1: [address]');
    assert.equal(scrubAddresses('(el*****@yahoo.com) [0]'), '([address]) [0]');
  });

  it('scrub: several addresses in one text', () => {
    assert.equal(
      scrubAddresses('451 <chris@gocleanse.net> to <docs@inmotionhosting.com>. Sent: RCPT TO:<a@b.example>, cc c_d@[192.0.2.1]'),
      '451 [address] to [address]. Sent: RCPT TO:[address], cc [address]',
    );
  });

  it('scrub: internationalised (UTF-8) addresses', () => {
    assert.equal(scrubAddresses('<jörg@bücher.de> rejected'), '[address] rejected');
    assert.equal(scrubAddresses('用户@例子.广告 unknown'), '[address] unknown');
    assert.equal(scrubAddresses('to δοκιμή@παράδειγμα.δοκιμή.'), 'to [address].');
  });

  it('scrub: a text without any address is unchanged', () => {
    for (const text of [
      '550 5.7.1 Service unavailable; Client host [203.0.113.7] blocked',
      'Greylisted, see http://postgrey.schweikert.ch/help/aful.org.html',
      'ratio 5 @ 10 minutes',
      '',
    ]) {
      assert.equal(scrubAddresses(text), text);
    }
  });
});
