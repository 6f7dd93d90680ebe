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
    assert.equal(env.MAILOVER_UNSUBSCRIBE_KEY, '${MAILOVER_UNSUBSCRIBE_KEY:-compose-demo-unsubscribe-key}');
    const cfg = loadConfig(join(ROOT, 'deploy', 'mailover.compose.yaml'), { MAILOVER_UNSUBSCRIBE_KEY: 'compose-demo-unsubscribe-key' });
    assert.deepEqual(cfg.providers.map((p) => (p.kind === "smtp" ? `${p.name}@${p.host}:${p.port}` : p.name)), ['smtp-primary@mailpit:1025', 'smtp-backup@mailpit-backup:1025']);
    assert.equal(cfg.compliance.unsubscribe?.baseUrl, 'http://localhost:8088');
  });

  it('compose: a webhooks service runs `mailover webhooks` on the same store and key, publishing the unsubscribe endpoint on 8088', () => {
    const w = s.webhooks as Service & { command?: string[] };
    assert.deepEqual(w.command, ['node', 'build/src/cli/main.js', 'webhooks']);
    assert.ok(w.ports?.includes('8088:8025'));
    assert.equal(w.environment?.DATABASE_URL, s.worker.environment?.DATABASE_URL);
    assert.equal(w.environment?.MAILOVER_UNSUBSCRIBE_KEY, s.worker.environment?.MAILOVER_UNSUBSCRIBE_KEY);
  });

  it('compose: registers exactly the search attributes the workflow upserts', () => {
    const cmd = ([] as string[]).concat(s['temporal-setup'].command ?? []).join(' ');
    for (const key of campaignSearchAttributes) {
      const type = key.type === 'INT' ? 'Int' : 'Keyword';
      assert.match(cmd, new RegExp(`--name ${key.name} --type ${type}\\b`));
    }
  });
});
