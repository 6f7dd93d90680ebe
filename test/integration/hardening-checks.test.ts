/**
 * Hardening from outside (issue 16, items 7, 9, 10), each through the built `mailover` CLI run as a
 * process in a temp working directory: a dry run refuses what a worker would refuse and says what
 * it could not check; a YAML tag is one error line naming file, line and tag (no parser warning);
 * a dry run writes nothing, anywhere.
 */
import { strict as assert } from 'assert';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Client as PgClient } from 'pg';
import { stringify } from 'yaml';
import { openStore } from '../../src/store/open-store';
import { createScratchDatabase, type ScratchDatabase } from '../support/postgres';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const CLI = path.join(ROOT, 'build', 'src', 'cli', 'main.js');
const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'bad-input');
const fixture = (name: string) => path.join(FIXTURES, name);

const UNSUBSCRIBE_KEY = 'hardening-unsubscribe-key-0123456789';
const TEMPLATE = {
  subject: 'Hello {{first_name}}',
  text: 'Hi {{first_name}}\n\nUnsubscribe: {{unsubscribe_url}}\n{{postal_address}}',
  html: '<p>Hi {{first_name}}</p><p><a href="{{unsubscribe_url}}">Unsubscribe</a> {{postal_address}}</p>',
};
/** A provider file a worker accepts: no secrets but the unsubscribe signing key, from the environment. */
const GOOD_PROVIDERS = {
  providers: [{ name: 'smtp-primary', kind: 'smtp', host: '127.0.0.1', port: 2525 }],
  unsubscribe: { baseUrl: 'https://mail.example.org', signingKey: '${MAILOVER_TEST_UNSUBSCRIBE_KEY}' },
};

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The CLI's environment: none of the caller's mailover, store or Temporal settings, Temporal unreachable. */
function cliEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(MAILOVER_|TEMPORAL_|DATABASE_URL$)/.test(k)) env[k] = v;
  return { ...env, TEMPORAL_ADDRESS: '127.0.0.1:1', MAILOVER_TEST_UNSUBSCRIBE_KEY: UNSUBSCRIBE_KEY, ...extra };
}

function run(args: string[], cwd: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd, env: cliEnv(extraEnv), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Every file and directory under dir with its size and modification time (what a run could have changed). */
function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of fs.readdirSync(d).sort()) {
      const p = path.join(d, name);
      const st = fs.statSync(p);
      out.push(`${path.relative(dir, p)} ${st.isDirectory() ? 'dir' : `${st.size} ${st.mtimeMs}`}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

/** A single-line failure (exit 1) whose line matches `message`; nothing on stdout says it is ready. */
function assertRefused(r: Run, message: RegExp): void {
  assert.equal(r.code, 1, `exit code (stdout: ${r.stdout}, stderr: ${r.stderr})`);
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^mailover campaign start: /);
  assert.match(lines[0]!, message);
  assert.doesNotMatch(r.stdout, /ready to start/);
}

describe('hardening: checks from outside (dry run, YAML tags, nothing written)', function () {
  this.timeout(60_000);
  let cwd: string;
  const dryRun = (config?: string, campaign = 'campaign.yaml', extraEnv: NodeJS.ProcessEnv = {}) =>
    run(['campaign', 'start', '--file', campaign, '--audience', 'audience.csv', '--dry-run', ...(config ? ['--config', config] : [])], cwd, extraEnv);

  beforeEach(() => {
    cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'mailover-hardening-'));
    fs.writeFileSync(
      path.join(cwd, 'campaign.yaml'),
      stringify({
        id: 'autumn',
        from: 'News <news@example.org>',
        postalAddress: '1 Example Street, Exampleton',
        template: TEMPLATE,
        providers: ['smtp-primary'],
      }),
    );
    fs.writeFileSync(path.join(cwd, 'audience.csv'), 'email,first_name\nann@example.com,Ann\nbob@example.com,Bob\n');
    // Found by default (./mailover.yaml), as a worker started here would find it.
    fs.writeFileSync(path.join(cwd, 'mailover.yaml'), stringify(GOOD_PROVIDERS));
  });
  afterEach(() => fs.rmSync(cwd, { recursive: true, force: true }));

  describe('item 7: a dry run checks the provider file as a worker does', () => {
    const refusals: Array<[string, string, RegExp]> = [
      [
        'a literal secret',
        'providers-literal-secret.yaml',
        /providers\[0\]\.auth\.pass: write secrets as environment references \(auth\.pass: "\$\{SMTP_PRIMARY_PASSWORD\}"\), not in the file/,
      ],
      [
        'a missing environment variable',
        'providers-missing-env.yaml',
        /providers\[0\]\.auth\.pass: environment variable MAILOVER_TEST_UNSET_SMTP_PASSWORD is not set/,
      ],
      ['a duplicate provider name', 'providers-duplicate-name.yaml', /providers: duplicate provider name 'smtp-primary'/],
      [
        'no unsubscribe: section for a marketing campaign',
        'providers-no-unsubscribe.yaml',
        /campaign 'autumn'.*unsubscribe: this worker has no unsubscribe: section in its config, so it cannot add the unsubscribe link a marketing campaign needs/,
      ],
    ];
    for (const [what, file, message] of refusals) {
      it(`hardening: campaign start --dry-run refuses a provider file with ${what}, as a worker would (exit 1, one line)`, async () => {
        const r = await dryRun(fixture(file));
        assertRefused(r, message);
        assert.doesNotMatch(r.stderr, /hunter2/, 'the secret itself is never printed');
      });
    }

    it('hardening: a dry run that passes says what it could not check (the ESPs, Temporal, the worker environment)', async () => {
      const r = await dryRun();
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^campaign autumn is ready to start: 2 recipients would be imported \(0 duplicates dropped, 0 rejected\)$/m);
      assert.match(r.stdout, /^not checked: reaching smtp-primary and whether it accepts mailover's credentials \(tried at the first send\)$/m);
      assert.match(r.stdout, /^not checked: the Temporal server at 127\.0\.0\.1:1 and a worker on task queue mailover \(a dry run connects to neither\)$/m);
      assert.match(r.stdout, /^not checked: the worker's own environment \(secrets and settings were read from this one\)$/m);
      assert.match(r.stdout, /^dry run: nothing was stored or started$/m);
    });
  });

  describe('item 9: a YAML tag is one clear error, no parser warning', () => {
    it('hardening: a !!js/function tag in a campaign file is one error line naming the file, line and tag (exit 1)', async () => {
      const r = await dryRun(undefined, fixture('campaign-js-function-tag.yaml'));
      assertRefused(r, /campaign-js-function-tag\.yaml: invalid YAML: unsupported tag !!js\/function at line 5, column 12 \(/);
      assert.doesNotMatch(r.stderr, /Warning/);
    });

    it('hardening: a !!js/regexp tag in a provider file is one error line naming the file, line and tag (exit 1)', async () => {
      const r = await dryRun(fixture('providers-js-regexp-tag.yaml'));
      assertRefused(r, /providers-js-regexp-tag\.yaml: invalid YAML: unsupported tag !!js\/regexp at line 4, column 11 \(/);
      assert.doesNotMatch(r.stderr, /Warning/);
    });

    it('hardening: a worker refuses a provider file with a YAML tag in one line, with no parser warning (exit 1)', async () => {
      const r = await run(['worker', '--config', fixture('providers-js-regexp-tag.yaml')], cwd);
      assert.equal(r.code, 1, r.stdout);
      assert.equal(
        r.stderr.trim(),
        `mailover worker: ${fixture('providers-js-regexp-tag.yaml')}: invalid YAML: unsupported tag !!js/regexp at line 4, column 11 (mailover's files hold text, numbers, true/false, lists and mappings only)`,
      );
    });
  });

  describe('item 10: a dry run writes nothing', () => {
    it('hardening: a dry run without MAILOVER_DB leaves the working directory unchanged (no data directory, no database file)', async () => {
      const before = snapshot(cwd);
      const r = await dryRun();
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /is ready to start/);
      assert.deepEqual(snapshot(cwd), before);
      assert.equal(fs.existsSync(path.join(cwd, 'data')), false);
    });

    it('hardening: a dry run against an existing SQLite store finds a taken campaign id without changing any file', async () => {
      const dbPath = path.join(cwd, 'data', 'mailover.db');
      const store = await openStore({ databaseUrl: '', sqlitePath: dbPath });
      try {
        await store.createCampaign({
          id: 'autumn',
          from: 'news@example.org',
          template: TEMPLATE,
          providers: ['smtp-primary'],
          batchSize: 10,
          postalAddress: 'x',
        });
        // While a worker has the store open (its -wal and -shm files exist), a dry run reads it.
        const before = snapshot(cwd);
        const taken = await dryRun();
        assertRefused(taken, /campaign 'autumn' already exists in the store; a campaign runs once \(pick a new id\)/);
        assert.deepEqual(
          snapshot(cwd).filter((l) => !l.startsWith(`data${path.sep}mailover.db-shm `)),
          before.filter((l) => !l.startsWith(`data${path.sep}mailover.db-shm `)),
        );
      } finally {
        await store.close();
      }
      // With no process holding it open, reading it would create SQLite's -wal and -shm files: the dry run says it did not check.
      const before = snapshot(cwd);
      const r = await dryRun();
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^not checked: that campaign id autumn is new in sqlite:\.\/data\/mailover\.db \(no process has it open/m);
      assert.deepEqual(snapshot(cwd), before);
    });

    describe('PostgreSQL', () => {
      let db: ScratchDatabase | undefined;
      before(async () => {
        db = await createScratchDatabase();
      });
      after(async () => {
        await db?.drop();
      });

      it('hardening: a dry run against an empty PostgreSQL database creates no table and still checks everything else', async () => {
        const r = await dryRun(undefined, 'campaign.yaml', { DATABASE_URL: db!.url });
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /is ready to start/);
        const pg = new PgClient({ connectionString: db!.url });
        await pg.connect();
        try {
          const tables = await pg.query(`select table_name from information_schema.tables where table_schema = current_schema()`);
          assert.deepEqual(tables.rows, [], 'no table created');
        } finally {
          await pg.end();
        }
        assert.deepEqual(fs.readdirSync(cwd).sort(), ['audience.csv', 'campaign.yaml', 'mailover.yaml']);
      });
    });
  });
});
