/**
 * docker-compose.yml cannot be run here (no Docker engine); this checks what the README
 * promises about it: the services, their ports, the worker's environment, and that the
 * worker's provider file and the search attributes match the code.
 */
import { strict as assert } from 'assert';
import { existsSync, readFileSync } from 'fs';
import { join } from 'path';
import { parse } from 'yaml';
import { loadConfig } from '../src/config';
import { campaignSearchAttributes } from '../workflows/search-attributes';

const ROOT = join(__dirname, '..', '..');

interface Service {
  image?: string;
  build?: unknown;
  ports?: string[];
  environment?: Record<string, string>;
  command?: string | string[];
  deploy?: { replicas?: number };
}

describe('docker-compose.yml (parsed)', () => {
  const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, Service> };
  const s = compose.services;

  it('compose: has Temporal on PostgreSQL, the Web UI, a PostgreSQL store, two Mailpit inboxes and a replicated worker', () => {
    for (const name of ['temporal-db', 'temporal', 'temporal-setup', 'temporal-ui', 'mailover-db', 'mailpit', 'mailpit-backup', 'worker']) assert.ok(s[name], `service ${name}`);
    assert.equal(s.temporal.environment?.DB, 'postgres12');
    assert.equal(s.temporal.environment?.POSTGRES_SEEDS, 'temporal-db');
    assert.ok(s.worker.build, 'the worker is built from the repo Dockerfile');
    assert.ok(existsSync(join(ROOT, 'Dockerfile')));
    assert.ok((s.worker.deploy?.replicas ?? 1) >= 2);
  });

  it('compose: publishes the ports the README names (7233 Temporal, 8080 Web UI, 8025/8026 Mailpit)', () => {
    assert.ok(s.temporal.ports?.includes('7233:7233'));
    assert.ok(s['temporal-ui'].ports?.includes('8080:8080'));
    assert.ok(s.mailpit.ports?.includes('8025:8025'));
    assert.ok(s['mailpit-backup'].ports?.includes('8026:8025'));
  });

  it('compose: the worker gets TEMPORAL_ADDRESS, DATABASE_URL and a provider file that parses, with no secret written in', () => {
    const env = s.worker.environment ?? {};
    assert.equal(env.TEMPORAL_ADDRESS, 'temporal:7233');
    assert.match(env.DATABASE_URL, /^postgres:\/\/mailover:\$\{MAILOVER_DB_PASSWORD:-mailover\}@mailover-db:5432\/mailover$/);
    assert.equal(env.MAILOVER_CONFIG, '/app/deploy/mailover.compose.yaml');
    const cfg = loadConfig(join(ROOT, 'deploy', 'mailover.compose.yaml'), {});
    assert.deepEqual(cfg.providers.map((p) => (p.kind === "smtp" ? `${p.name}@${p.host}:${p.port}` : p.name)), ['smtp-primary@mailpit:1025', 'smtp-backup@mailpit-backup:1025']);
  });

  it('compose: payloads are encrypted: the worker and the codec server require MAILOVER_PAYLOAD_KEYS, the codec server its token and the Web UI origin', () => {
    const required = /^\$\{MAILOVER_PAYLOAD_KEYS:\?[^}]+\}$/;
    assert.match(s.worker.environment?.MAILOVER_PAYLOAD_KEYS ?? '', required, 'the worker cannot start without keys');
    const codec = s['codec-server'];
    assert.ok(codec?.build, 'a codec-server service built from the Dockerfile');
    assert.match(codec.environment?.MAILOVER_PAYLOAD_KEYS ?? '', required);
    assert.match(codec.environment?.MAILOVER_CODEC_TOKEN ?? '', /^\$\{MAILOVER_CODEC_TOKEN:\?[^}]+\}$/);
    assert.ok(codec.ports?.includes('8089:8089'));
    const cmd = ([] as string[]).concat(codec.command ?? []);
    assert.deepEqual(cmd.slice(0, 3), ['node', 'build/src/cli/main.js', 'codec-server']);
    assert.equal(cmd[cmd.indexOf('--port') + 1], '8089');
    assert.equal(cmd[cmd.indexOf('--host') + 1], '0.0.0.0');
    const uiPort = s['temporal-ui'].ports?.[0]?.split(':')[0];
    assert.equal(cmd[cmd.indexOf('--ui-origin') + 1], `http://localhost:${uiPort}`, 'CORS allows the Web UI published by the stack');
  });

  it('compose: registers exactly the search attributes the workflow upserts', () => {
    const cmd = ([] as string[]).concat(s['temporal-setup'].command ?? []).join(' ');
    for (const key of campaignSearchAttributes) {
      const type = key.type === 'INT' ? 'Int' : 'Keyword';
      assert.match(cmd, new RegExp(`--name ${key.name} --type ${type}\\b`));
    }
  });
});
