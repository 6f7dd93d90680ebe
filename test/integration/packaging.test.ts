/**
 * What a user gets from the package: `npx mailover` after a build (as the README runs it), and
 * the production build the worker image ships (scripts/build.js --production): no tests, no dev
 * stack, no local ESP emulators, and every module it keeps loads without them.
 */
import { strict as assert } from 'assert';
import { spawn } from 'child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'fs';
import { tmpdir } from 'os';
import { join, relative } from 'path';

const ROOT = join(__dirname, '..', '..', '..');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], cwd: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)]));
}

describe('packaging', function () {
  this.timeout(300_000);

  it('package: the build marks the CLI executable and `npx mailover --help` runs it from the project root', async () => {
    const bin = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin.mailover;
    assert.ok((statSync(join(ROOT, bin)).mode & 0o111) !== 0, `${bin} has no executable bit`);
    const r = await run('npx', ['--no-install', 'mailover', '--help'], ROOT);
    assert.equal(r.code, 0, `npx mailover --help exited ${r.code}: ${r.stderr}`);
    assert.match(r.stdout, /^Usage: mailover <command>/);
  });

  it('package: the worker image is the production build: the Dockerfile copies no tests and runs build:production', () => {
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    assert.doesNotMatch(dockerfile, /^COPY\s+test\b/m);
    assert.match(dockerfile, /^RUN npm run build:production\b/m);
    const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    assert.equal(scripts['build:production'], 'node scripts/build.js --production');
  });

  describe('production build', () => {
    let app: string;
    let out: string;

    before(async () => {
      // Laid out as the image is: /app/build, /app/node_modules, /app/package.json.
      app = mkdtempSync(join(tmpdir(), 'mailover-production-'));
      out = join(app, 'build');
      symlinkSync(join(ROOT, 'node_modules'), join(app, 'node_modules'), 'dir');
      copyFileSync(join(ROOT, 'package.json'), join(app, 'package.json'));
      const r = await run(process.execPath, [join(ROOT, 'scripts', 'build.js'), '--production', '--out-dir', out], ROOT);
      assert.equal(r.code, 0, `production build failed: ${r.stdout}${r.stderr}`);
    });

    after(() => {
      if (app) rmSync(app, { recursive: true, force: true });
    });

    it('package: the production build ships no tests, dev stack, benchmark, demo or ESP emulators', () => {
      const files = filesUnder(out).map((f) => relative(out, f));
      assert.ok(
        files.includes('src/cli/main.js') && files.includes('src/worker-main.js') && files.includes('workflows/index.js'),
        'the worker and CLI are there',
      );
      const devOnly = files.filter((f) => /^test\//.test(f) || /(^|\/)emulator\.js/.test(f) || /^src\/(bench\/|demo\.js|dev\/stack\.js)/.test(f));
      assert.deepEqual(devOnly, []);
      assert.ok(!existsSync(join(out, 'test')));
    });

    it('package: every module the production build keeps loads without the dev-only files', async () => {
      // cli/main and worker-main run on load; they are checked through the CLI below.
      const modules = filesUnder(out)
        .filter((f) => f.endsWith('.js') && !/(cli\/main|worker-main)\.js$/.test(f))
        .map((f) => `./${relative(app, f)}`);
      const script = `for (const m of ${JSON.stringify(modules)}) { try { require(m); } catch (e) { console.error(m + ': ' + e.message.split('\\n')[0]); process.exitCode = 1; } }`;
      const r = await run(process.execPath, ['-e', script], app);
      assert.equal(r.code, 0, r.stderr);
    });

    it('package: the production CLI runs, and `mailover dev` says it is not part of this build', async () => {
      mkdirSync(join(app, 'cwd'), { recursive: true });
      const help = await run(process.execPath, [join(out, 'src', 'cli', 'main.js'), '--help'], join(app, 'cwd'));
      assert.equal(help.code, 0, help.stderr);
      assert.match(help.stdout, /worker/);
      const dev = await run(process.execPath, [join(out, 'src', 'cli', 'main.js'), 'dev'], join(app, 'cwd'));
      assert.equal(dev.code, 1);
      assert.equal(
        dev.stderr.trim(),
        'mailover dev: not part of this build: the production image leaves the dev stack and local ESPs out; run it from a source checkout (npm ci && npm start)',
      );
      assert.ok(!existsSync(join(app, 'cwd', 'data')), 'nothing written');
    });
  });
});
