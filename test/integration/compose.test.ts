/**
 * docker-compose.yml cannot be run here (no Docker engine); this checks what the README
 * promises about it: the services, their ports, the worker's environment, and that the
 * worker's provider file and the search attributes match the code.
 */
import { strict as assert } from 'assert';
import { spawn } from 'child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config';
import { BOUNCE_COUNTER_HELP, snakeCase } from '../../src/compliance/metrics';
import { ComplianceServer, COUNTERS } from '../../src/compliance/server';
import { MailoverMetrics } from '../../src/metrics/metrics';
import { MetricsServer } from '../../src/metrics/server';
import { openStore } from '../../src/store/open-store';
import { campaignSearchAttributes } from '../../workflows/search-attributes';

const ROOT = join(__dirname, '..', '..', '..');

interface PrometheusConfig {
  rule_files: string[];
  alerting?: { alertmanagers: Array<{ static_configs: Array<{ targets: string[] }> }> };
  scrape_configs: Array<{ job_name: string; dns_sd_configs?: Array<{ names: string[]; type: string; port: number }> }>;
}

interface Service {
  image?: string;
  build?: unknown;
  ports?: string[];
  environment?: Record<string, string>;
  command?: string | string[];
  deploy?: { replicas?: number };
  volumes?: string[];
  expose?: string[];
  depends_on?: unknown;
  healthcheck?: { test?: string[] };
}

describe('docker-compose.yml (parsed)', () => {
  const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, Service> };
  const s = compose.services;

  it('compose: has Temporal on PostgreSQL, the Web UI, a PostgreSQL store, two Mailpit inboxes and a replicated worker', () => {
    for (const name of ['temporal-db', 'temporal', 'temporal-setup', 'temporal-ui', 'mailover-db', 'mailpit', 'mailpit-backup', 'worker'])
      assert.ok(s[name], `service ${name}`);
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
    assert.deepEqual(
      cfg.providers.map((p) => (p.kind === 'smtp' ? `${p.name}@${p.host}:${p.port}` : p.name)),
      ['smtp-primary@mailpit:1025', 'smtp-backup@mailpit-backup:1025'],
    );
    assert.equal(cfg.compliance.unsubscribe?.baseUrl, 'http://localhost:8088');
  });

  it('compose: the worker and webhooks health checks run as written against the real endpoints: exit 0 while healthy, 1 when the worker stops or nothing listens', async () => {
    const cfg = loadConfig(join(ROOT, 'deploy', 'mailover.compose.yaml'), { MAILOVER_UNSUBSCRIBE_KEY: 'compose-demo-unsubscribe-key' });
    const probe = (service: string, port: number, realPort: number) => {
      const test = s[service].healthcheck?.test ?? [];
      assert.deepEqual(test.slice(0, 3), ['CMD', 'node', '-e'], `${service}: a node one-liner (the image has no curl)`);
      assert.ok(test[3].includes(`127.0.0.1:${realPort}/healthz`), `${service} checks port ${realPort}: ${test[3]}`);
      // Asynchronously: the servers it probes answer from this process's event loop.
      return new Promise<number | null>((resolve) => {
        const child = spawn(process.execPath, ['-e', test[3].replace(`:${realPort}/`, `:${port}/`)], { stdio: 'ignore', timeout: 10_000 });
        child.on('close', (code) => resolve(code));
      });
    };
    let state = 'RUNNING';
    const metrics = await MetricsServer.start({
      metrics: new MailoverMetrics({ providers: [], alertTargets: [] }),
      host: '127.0.0.1',
      port: 0,
      health: () => ({ ok: state === 'RUNNING', state }),
    });
    try {
      assert.equal(cfg.metrics?.port, 9464);
      assert.equal(await probe('worker', metrics.port, 9464), 0);
      assert.equal((await (await fetch(metrics.url.replace(/\/metrics$/, '/healthz'))).text()).trim(), 'worker RUNNING');
      state = 'STOPPING';
      assert.equal(await probe('worker', metrics.port, 9464), 1);
    } finally {
      await metrics.close();
    }
    assert.equal(await probe('worker', metrics.port, 9464), 1, 'nothing listening');
    const dir = mkdtempSync(join(tmpdir(), 'mailover-compose-'));
    const store = await openStore({ databaseUrl: '', sqlitePath: join(dir, 'db.sqlite') });
    const webhooks = await ComplianceServer.start({
      store,
      webhooks: { ...cfg.compliance.webhooks, host: '127.0.0.1' },
      unsubscribe: cfg.compliance.unsubscribe,
      providerWebhooks: new Map(),
      port: 0,
    });
    try {
      assert.equal(cfg.compliance.webhooks.port, 8025);
      assert.equal(await probe('webhooks', webhooks.port, 8025), 0);
    } finally {
      await webhooks.stop();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('compose: a webhooks service runs `mailover webhooks` on the same store and key, publishing the unsubscribe endpoint on 8088', () => {
    const w = s.webhooks as Service & { command?: string[] };
    assert.deepEqual(w.command, ['node', 'build/src/cli/main.js', 'webhooks']);
    assert.ok(w.ports?.includes('8088:8025'));
    assert.equal(w.environment?.DATABASE_URL, s.worker.environment?.DATABASE_URL);
    assert.equal(w.environment?.MAILOVER_UNSUBSCRIBE_KEY, s.worker.environment?.MAILOVER_UNSUBSCRIBE_KEY);
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

  it('compose: Prometheus scrapes every worker replica on the metrics port the worker config opens, and Grafana shows it on 3000', () => {
    for (const name of ['prometheus', 'grafana']) assert.ok(s[name], `service ${name}`);
    assert.ok(s.prometheus.ports?.includes('9090:9090'));
    assert.ok(s.grafana.ports?.includes('3000:3000'));
    const cfg = loadConfig(join(ROOT, 'deploy', 'mailover.compose.yaml'), { MAILOVER_UNSUBSCRIBE_KEY: 'compose-demo-unsubscribe-key' });
    assert.equal(cfg.metrics?.port, 9464);
    assert.equal(cfg.metrics?.host, '0.0.0.0', 'reachable from the prometheus container');
    assert.ok(s.worker.expose?.includes('9464'));
    // Every bind mount points at a file or directory in the repo.
    for (const svc of [s.prometheus, s.grafana]) {
      for (const v of svc.volumes ?? []) if (v.startsWith('./')) assert.ok(existsSync(join(ROOT, v.split(':')[0])), `mount source ${v}`);
    }
    const prom = parse(readFileSync(join(ROOT, 'deploy', 'prometheus', 'prometheus.yml'), 'utf8')) as PrometheusConfig;
    const job = prom.scrape_configs.find((j) => j.job_name === 'mailover-worker');
    assert.deepEqual(
      job?.dns_sd_configs?.[0],
      { names: ['worker'], type: 'A', port: 9464, refresh_interval: '15s' },
      'one target per replica, found by the service name',
    );
    assert.ok(s.prometheus.volumes?.includes('./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro'));
  });

  it('monitoring: compose scrapes the webhooks server on the port its config opens, and mounts the alert rules where the Prometheus config reads them', () => {
    const prom = parse(readFileSync(join(ROOT, 'deploy', 'prometheus', 'prometheus.yml'), 'utf8')) as PrometheusConfig;
    const cfg = loadConfig(join(ROOT, 'deploy', 'mailover.compose.yaml'), { MAILOVER_UNSUBSCRIBE_KEY: 'compose-demo-unsubscribe-key' });
    const job = prom.scrape_configs.find((j) => j.job_name === 'mailover-webhooks');
    assert.deepEqual(
      job?.dns_sd_configs?.[0],
      { names: ['webhooks'], type: 'A', port: cfg.compliance.webhooks.port, refresh_interval: '15s' },
      'the webhooks service, on its own port',
    );
    assert.equal(cfg.compliance.webhooks.host, '0.0.0.0', 'reachable from the prometheus container');
    assert.ok(s.webhooks.expose?.includes(String(cfg.compliance.webhooks.port)));
    assert.ok((s.prometheus.depends_on as string[]).includes('webhooks'));
    // Rule files are read relative to the config file: each is mounted beside it.
    assert.deepEqual(prom.rule_files, ['alerts.yml']);
    for (const file of prom.rule_files) {
      assert.ok(existsSync(join(ROOT, 'deploy', 'prometheus', file)));
      assert.ok(s.prometheus.volumes?.includes(`./deploy/prometheus/${file}:/etc/prometheus/${file}:ro`), `${file} mounted beside the config`);
    }
  });

  it('monitoring: compose runs Alertmanager where Prometheus sends alerts, with a config whose routes and inhibitions name receivers and alerts that exist', () => {
    const am = s.alertmanager;
    assert.ok(am, 'an alertmanager service');
    assert.match(am.image ?? '', /^prom\/alertmanager:v\d+\.\d+\.\d+$/);
    assert.ok(am.ports?.includes('9093:9093'));
    const cmd = ([] as string[]).concat(am.command ?? []);
    const configPath = cmd.find((c) => c.startsWith('--config.file='))?.split('=')[1];
    const mount = am.volumes?.find((v) => v.split(':')[1] === configPath);
    assert.equal(mount, './deploy/alertmanager/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro');
    const prom = parse(readFileSync(join(ROOT, 'deploy', 'prometheus', 'prometheus.yml'), 'utf8')) as PrometheusConfig;
    assert.deepEqual(
      prom.alerting?.alertmanagers.flatMap((a) => a.static_configs.flatMap((c) => c.targets)),
      ['alertmanager:9093'],
    );
    assert.ok((s.prometheus.depends_on as string[]).includes('alertmanager'));

    interface Route {
      receiver?: string;
      matchers?: string[];
      routes?: Route[];
    }
    const config = parse(readFileSync(join(ROOT, 'deploy', 'alertmanager', 'alertmanager.yml'), 'utf8')) as {
      route: Route;
      receivers: Array<{ name: string }>;
      inhibit_rules: Array<{ source_matchers: string[]; target_matchers: string[] }>;
    };
    const receivers = new Set(config.receivers.map((r) => r.name));
    const routes = (r: Route): Route[] => [r, ...(r.routes ?? []).flatMap(routes)];
    for (const r of routes(config.route)) if (r.receiver) assert.ok(receivers.has(r.receiver), `receiver ${r.receiver} is defined`);
    assert.ok(config.route.receiver, 'a default receiver');
    const rules = parse(readFileSync(join(ROOT, 'deploy', 'prometheus', 'alerts.yml'), 'utf8')) as {
      groups: Array<{ rules: Array<{ alert: string; labels: { severity: string } }> }>;
    };
    const alerts = rules.groups.flatMap((g) => g.rules);
    const names = alerts.map((a) => a.alert);
    for (const rule of config.inhibit_rules) {
      for (const m of [...rule.source_matchers, ...rule.target_matchers]) {
        // alertname="A" or alertname=~"A|B": every name is an alert of alerts.yml.
        const [, value] = /^alertname=~?"([\w|]+)"$/.exec(m) ?? [];
        assert.ok(
          value?.split('|').every((v) => names.includes(v)),
          `inhibit matcher ${m} names alerts of alerts.yml`,
        );
      }
    }
    for (const m of routes(config.route).flatMap((r) => r.matchers ?? [])) {
      const [, value] = /^severity="(\w+)"$/.exec(m) ?? [];
      assert.ok(
        alerts.some((a) => a.labels.severity === value),
        `route matcher ${m} matches some alert`,
      );
    }
  });

  it('compose: Grafana is provisioned with the Prometheus datasource and a valid mailover dashboard whose mailover_* queries name metrics the worker or the webhooks server exports', async () => {
    const ds = parse(readFileSync(join(ROOT, 'deploy', 'grafana', 'provisioning', 'datasources', 'prometheus.yaml'), 'utf8')) as {
      datasources: Array<{ uid: string; url: string; type: string }>;
    };
    assert.deepEqual({ type: ds.datasources[0].type, url: ds.datasources[0].url }, { type: 'prometheus', url: 'http://prometheus:9090' });
    const provider = parse(readFileSync(join(ROOT, 'deploy', 'grafana', 'provisioning', 'dashboards', 'mailover.yaml'), 'utf8')) as {
      providers: Array<{ options: { path: string } }>;
    };
    assert.ok(
      s.grafana.volumes?.includes(`./deploy/grafana/dashboards:${provider.providers[0].options.path}:ro`),
      'the dashboards directory is mounted where the provisioning reads it',
    );
    const dash = JSON.parse(readFileSync(join(ROOT, 'deploy', 'grafana', 'dashboards', 'mailover.json'), 'utf8')) as {
      uid: string;
      panels: Array<{ type: string; title: string; datasource?: { uid: string }; targets?: Array<{ expr: string }> }>;
    };
    assert.equal(dash.uid, 'mailover');
    const queryPanels = dash.panels.filter((p) => p.type !== 'row');
    assert.ok(queryPanels.length >= 10);
    for (const p of queryPanels) {
      assert.equal(p.datasource?.uid, ds.datasources[0].uid, `panel '${p.title}' uses the provisioned datasource`);
      assert.ok(p.targets?.length, `panel '${p.title}' has a query`);
    }
    const exported = new Set<string>();
    for (const m of await new MailoverMetrics({ defaultMetrics: false }).registry.getMetricsAsJSON()) {
      exported.add(m.name);
      if (String(m.type) === 'histogram') for (const suffix of ['_bucket', '_count', '_sum']) exported.add(m.name + suffix);
    }
    // The webhooks server's: its counters, delivery events, and the bounce listener's beside.
    for (const c of COUNTERS) exported.add(`mailover_${c}_total`);
    for (const c of Object.keys(BOUNCE_COUNTER_HELP)) exported.add(`mailover_bounce_${snakeCase(c)}_total`);
    exported.add('mailover_delivery_events_total');
    const used = new Set(queryPanels.flatMap((p) => p.targets!.flatMap((t) => [...t.expr.matchAll(/\b(mailover_[a-z0-9_]+)/g)].map((m) => m[1]))));
    assert.deepEqual(
      [...used].filter((n) => !exported.has(n)),
      [],
      'every mailover_* metric the dashboard queries exists',
    );
    for (const name of [
      'mailover_messages_total',
      'mailover_batch_send_seconds_bucket',
      'mailover_provider_switches_total',
      'mailover_provider_circuit_state',
      'mailover_campaigns',
      'mailover_ledger_rows_in_flight',
      'mailover_alert_attempts_total',
      'mailover_activity_failures_total',
      'mailover_webhook_refused_forged_total',
      'mailover_delivery_events_total',
    ]) {
      assert.ok(used.has(name), `the dashboard shows ${name}`);
    }
  });
});
