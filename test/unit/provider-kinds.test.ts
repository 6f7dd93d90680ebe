/**
 * Nothing outside src/providers/ names a provider kind: every part of mailover that depends on
 * the kind of a provider goes through the provider modules (src/providers/modules.ts). This test
 * reads the TypeScript sources of src/ (outside src/providers/), workflows/ and activities/,
 * comments left out, and fails on any of these, for every kind the registry knows:
 *
 *   - a string literal that is a kind ('smtp', "mailgun"): a kind check or a definition by hand;
 *   - an import of a module's folder (src/providers/<kind>/...);
 *   - an identifier containing a kind (SmtpSink, mailgunSigningKeys, DEV_MAILGUN_KEY);
 *   - a string naming a kind by its module's title ('Mailgun', 'SMTP relay'), case aside.
 *
 * Exempt, each for its reason (EXEMPT below): the dev stack's plan of which emulators it runs,
 * and the bench, which measures those kinds against a raw SMTP baseline.
 */
import { strict as assert } from 'assert';
import { existsSync, readdirSync, readFileSync, statSync } from 'fs';
import { join, relative, sep } from 'path';
import { providerModules } from '../../src/providers/modules';

const ROOT = join(__dirname, '..', '..', '..');
const SCANNED = ['src', 'workflows', 'activities'];

/** Files that may name kinds, and why. */
const EXEMPT: Record<string, string> = {
  'src/dev/dev-esps.ts': "the dev stack's choice of which emulators to start, under which names",
  'src/bench/run.ts': 'the bench measures these kinds (and a raw SMTP baseline through nodemailer): its choice of ESPs, like the dev stack',
  'src/bench/args.ts': "the bench's --only flag names the two paths it measures",
  'src/bench/esp-process.ts': "the bench's own Mailgun-compatible sink is one of the ESPs it starts",
  'src/bench/mailgun-sink.ts': 'a Mailgun-compatible API for the bench, counting recipients per seq (the emulator keeps every message)',
  'src/bench/raw-mailgun.ts': 'the Mailgun ceiling: mailgun.js straight to the sink, no mailover',
  'src/bench/scale.ts': 'the scale-out run sends through the Mailgun path',
};

/**
 * Files that implement a protocol named like a kind: the word is the protocol there, not the ESP.
 * Only identifiers containing that word are allowed in them (every other rule still applies).
 */
const PROTOCOL_NAMES: Record<string, string[]> = {
  // The inbound bounce listener is an SMTP server (smtp-server) for DSNs, not an SMTP relay provider.
  'src/compliance/bounce-listener.ts': ['smtp'],
};

interface Scanned {
  /** The code with comments and string contents blanked (identifiers and punctuation only). */
  code: string;
  /** Every string literal's text (template literals: their text parts). */
  strings: Array<{ text: string; line: number }>;
  /** Module specifiers of import / export ... from / require() / import(). */
  imports: Array<{ spec: string; line: number }>;
}

/** A small TypeScript scanner: comments, strings (template literals with nested ${}), escapes outside strings (regex literals). */
export function scan(source: string): Scanned {
  let code = '';
  const strings: Scanned['strings'] = [];
  let line = 1;
  let i = 0;
  const templateDepth: number[] = []; // brace depth at which each open template's ${ } ends
  let braces = 0;
  const readString = (quote: string): string => {
    let text = '';
    i++; // opening quote
    while (i < source.length) {
      const c = source[i];
      if (c === '\\') {
        text += source.slice(i, i + 2);
        i += 2;
        continue;
      }
      if (c === '\n') line++;
      if (c === quote) {
        i++;
        return text;
      }
      if (quote === '`' && c === '$' && source[i + 1] === '{') {
        i += 2;
        templateDepth.push(braces);
        braces++;
        return text + '\u0000'; // text continues after the expression
      }
      text += c;
      i++;
    }
    return text;
  };
  while (i < source.length) {
    const c = source[i];
    const next = source[i + 1];
    if (c === '/' && next === '/') {
      while (i < source.length && source[i] !== '\n') i++;
      continue;
    }
    if (c === '/' && next === '*') {
      const end = source.indexOf('*/', i + 2);
      const stop = end === -1 ? source.length : end + 2;
      line += (source.slice(i, stop).match(/\n/g) ?? []).length;
      code += '\n'.repeat((source.slice(i, stop).match(/\n/g) ?? []).length);
      i = stop;
      continue;
    }
    if (c === '/' && next !== '/' && next !== '*' && /(^|[(,=:[!&|?{};+\-*%<>~^]|\breturn|\btypeof)$/.test(code.trimEnd().slice(-8))) {
      // A regular expression literal: skipped whole (it may hold quotes or slashes).
      let inClass = false;
      for (i++; i < source.length && source[i] !== '\n'; i++) {
        const r = source[i];
        if (r === '\\') i++;
        else if (r === '[') inClass = true;
        else if (r === ']') inClass = false;
        else if (r === '/' && !inClass) break;
      }
      i++;
      while (/[a-z]/.test(source[i] ?? '')) i++;
      code += '/r/';
      continue;
    }
    if (c === '\\') {
      code += '  ';
      i += 2;
      continue;
    }
    if (c === "'" || c === '"' || c === '`') {
      const at = line;
      const text = readString(c);
      strings.push({ text: text.endsWith('\u0000') ? text.slice(0, -1) : text, line: at });
      code += `${c}${c}`;
      continue;
    }
    if (c === '{') braces++;
    if (c === '}') {
      braces--;
      if (templateDepth.length && templateDepth[templateDepth.length - 1] === braces) {
        // The end of a ${ } inside a template literal: read on to its next part or its end.
        templateDepth.pop();
        const at = line;
        const text = readString('`');
        strings.push({ text: text.endsWith('\u0000') ? text.slice(0, -1) : text, line: at });
        code += '``';
        continue;
      }
    }
    if (c === '\n') line++;
    code += c;
    i++;
  }
  const imports: Scanned['imports'] = [];
  const importRe = /(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|\bimport\s+)(['"])([^'"\n]+)\1/g;
  const lines = source.split('\n');
  lines.forEach((text, n) => {
    if (/^\s*(\/\/|\*|\/\*)/.test(text)) return;
    for (const m of text.matchAll(importRe)) imports.push({ spec: m[2], line: n + 1 });
  });
  return { code, strings, imports };
}

/**
 * Whether an identifier names a kind: the kind (dashes left out) is one or more of its words in a
 * row, words split at camelCase humps, digits, `_` and `$` (SmtpSink, DEV_MAILGUN_KEY, sesModule,
 * fileDropSink); a kind that is only part of a word is not named (`session`, `closeSync` for ses).
 */
export function identifierNames(identifier: string, kind: string): boolean {
  const words = identifier
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
    .split(/[\s_$]+|(?<=\D)(?=\d)|(?<=\d)(?=\D)/)
    .filter(Boolean)
    .map((w) => w.toLowerCase());
  const target = kind.replace(/-/g, '').toLowerCase();
  for (let i = 0; i < words.length; i++) {
    let run = '';
    for (let j = i; j < words.length && run.length < target.length; j++) {
      run += words[j];
      if (run === target) return true;
    }
  }
  return false;
}

/** What a file does wrong, one line each (empty: nothing). */
export function kindNames(file: string, source: string, kinds: Array<{ kind: string; title: string }>, protocolNames: string[] = []): string[] {
  const { code, strings, imports } = scan(source);
  const problems: string[] = [];
  for (const { kind, title } of kinds) {
    for (const s of strings) if (s.text === kind) problems.push(`${file}:${s.line}: the string '${kind}' names a provider kind`);
    const titleRe = new RegExp(`(^|[^A-Za-z0-9])${title.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}($|[^A-Za-z0-9])`, 'i');
    for (const s of strings) if (titleRe.test(s.text)) problems.push(`${file}:${s.line}: the string ${JSON.stringify(s.text.slice(0, 80))} names ${title}`);
    for (const imp of imports)
      if (new RegExp(`(^|/)providers/${kind}(/|$)`).test(imp.spec)) problems.push(`${file}:${imp.line}: imports ${imp.spec}, a file of the ${kind} module`);
    if (!protocolNames.includes(kind)) {
      const idRe = new RegExp(`[A-Za-z_$][A-Za-z0-9_$]*`, 'g');
      code.split('\n').forEach((text, n) => {
        for (const m of text.matchAll(idRe)) if (identifierNames(m[0], kind)) problems.push(`${file}:${n + 1}: the identifier ${m[0]} names the ${kind} kind`);
      });
    }
  }
  return problems;
}

function tsFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return tsFiles(path);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [path] : [];
  });
}

describe('provider kinds stay in src/providers/', () => {
  const kinds = providerModules().map((m) => ({ kind: m.kind, title: m.title }));

  it('kinds: the check finds kind checks, kind-specific imports, identifiers and titles (and skips comments)', () => {
    const bad = [
      "import { SmtpSink } from '../providers/smtp/emulator';",
      "// a comment about mailgun and 'smtp' is fine",
      '/* so is a block comment: Mailgun */',
      "if (p.kind === 'mailgun') keys.set(p.name, p.webhookSigningKey);",
      'const url = `${base}/webhooks/${name}`; // `mailgun` in a comment',
      "console.log(`none (no Mailgun provider has a ${'key'})`);",
      'const ok = /^https?:\\/\\//.test(url);',
    ].join('\n');
    const found = kindNames('x.ts', bad, kinds);
    assert.ok(
      found.some((p) => p.includes('imports ../providers/smtp/emulator')),
      found.join('\n'),
    );
    assert.ok(
      found.some((p) => p.includes('identifier SmtpSink')),
      found.join('\n'),
    );
    assert.ok(
      found.some((p) => p.includes("x.ts:4: the string 'mailgun' names a provider kind")),
      found.join('\n'),
    );
    assert.ok(
      found.some((p) => p.includes('x.ts:6') && p.includes('names Mailgun')),
      found.join('\n'),
    );
    assert.ok(!found.some((p) => /x\.ts:[2357]:/.test(p)), `comments, template expressions and regex literals are not kind names:\n${found.join('\n')}`);
    for (const [id, kind, named] of [
      ['SmtpSink', 'smtp', true],
      ['DEV_MAILGUN_KEY', 'mailgun', true],
      ['mailgunSigningKeys', 'mailgun', true],
      ['fileDropSink', 'file-drop', true],
      ['FILEDROP_DIR', 'file-drop', true],
      ['SesServer', 'ses', true],
      ['amazonSES', 'ses', true],
      ['session', 'ses', false],
      ['RUNNING_CAMPAIGN_STATUSES', 'ses', false],
      ['closeSync', 'ses', false],
    ] as const) {
      assert.equal(identifierNames(id, kind), named, `${id} names ${kind}: ${named}`);
    }
    const clean = "const hooks = providerWebhooks(config);\nconst s = `${a.kind === 'slack' ? 'Slack' : 'JSON'}`;\n";
    assert.deepEqual(kindNames('y.ts', clean, kinds), []);
  });

  it('kinds: nothing in src/ outside src/providers/ (nor workflows/, activities/) names a provider kind', () => {
    for (const file of Object.keys({ ...EXEMPT, ...PROTOCOL_NAMES })) assert.ok(existsSync(join(ROOT, file)), `${file} (named in this test) exists`);
    const problems: string[] = [];
    let files = 0;
    for (const top of SCANNED) {
      for (const path of tsFiles(join(ROOT, top))) {
        const file = relative(ROOT, path).split(sep).join('/');
        if (file.startsWith('src/providers/') || EXEMPT[file]) continue;
        files++;
        problems.push(...kindNames(file, readFileSync(path, 'utf8'), kinds, PROTOCOL_NAMES[file]));
      }
    }
    assert.ok(files > 50, `scanned ${files} files`);
    assert.deepEqual(problems, []);
  });
});
