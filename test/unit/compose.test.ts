// docker-compose.yml and the Dockerfile, checked by their structure: no Docker engine runs here.
// Where the files repeat a fact the code owns (ports, topics, settings, the Kafka version), the
// test reads it from the code, so the two cannot drift apart.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, posix } from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';
import { loadConfig, PROJECT_ROOT } from '../../config';
import { TOPICS } from '../../schemas';

const scalar = z.union([z.string(), z.number(), z.boolean()]).transform(String);

const serviceSchema = z.looseObject({
  image: z.string().optional(),
  build: z.object({ context: z.string(), dockerfile: z.string() }).optional(),
  pull_policy: z.enum(['always', 'missing', 'never', 'build']).optional(),
  // Stated on every service: "no" marks a one-shot, unless-stopped a long-running service.
  restart: z.enum(['no', 'unless-stopped']),
  command: z.array(z.string()).optional(),
  ports: z.array(z.string()).optional(),
  environment: z.record(z.string(), scalar).optional(),
  volumes: z.array(z.string()).optional(),
  healthcheck: z.looseObject({ test: z.array(z.string()).min(2), disable: z.literal(false).optional() }).optional(),
  depends_on: z.record(z.string(), z.object({ condition: z.enum(['service_healthy', 'service_completed_successfully']) })).optional(),
});
type Service = z.infer<typeof serviceSchema>;

const composeSchema = z.object({
  name: z.string(),
  services: z.record(z.string(), serviceSchema),
  volumes: z.record(z.string(), z.null()),
});

const read = (path: string) => readFileSync(join(PROJECT_ROOT, path), 'utf8');

/** The Dockerfile's ENV settings (`ENV A=1 \\ B=2` lines of the final stage and before). */
function dockerfileEnv(): Record<string, string> {
  const text = read('Dockerfile').replace(/\\\n\s*/g, ' ');
  return Object.fromEntries([...text.matchAll(/^ENV\s+(.+)$/gm)].flatMap((m) => [...m[1]!.matchAll(/(\w+)=(\S+)/g)].map(([, k, v]) => [k!, v!])));
}
const compose = composeSchema.parse(parse(read('docker-compose.yml')));
const services = compose.services;
const defaults = loadConfig({});

function service(name: string): Service {
  const s = services[name];
  assert.ok(s, `docker-compose.yml has no service ${name}`);
  return s;
}

const isOneShot = (name: string) => service(name).restart === 'no';
const env = (name: string) => service(name).environment ?? {};

/** A service's mounts as [source, target]; a source starting with . or / is a bind mount. */
function mounts(name: string): [string, string][] {
  return (service(name).volumes ?? []).map((v) => {
    const [source, target] = v.split(':');
    assert.ok(source && target, `${name}: volume "${v}" is not source:target`);
    return [source, target];
  });
}
const isBind = (source: string) => source.startsWith('.') || source.startsWith('/');

/** Why an image reference is not pinned, or undefined when it is (a version tag or a digest). */
function pinProblem(ref: string): string | undefined {
  const [nameAndTag = '', digest] = ref.split('@');
  if (digest !== undefined) return /^sha256:[0-9a-f]{64}$/.test(digest) ? undefined : `${ref}: malformed digest`;
  // A colon before the last slash is a registry's port (registry:5000/name), not a tag.
  const colon = nameAndTag.lastIndexOf(':');
  if (colon < nameAndTag.lastIndexOf('/') || colon === -1) return `${ref}: no tag (Docker would use latest)`;
  const tag = nameAndTag.slice(colon + 1);
  // At least major.minor: "latest", "16" or "16-alpine" move when a new release comes out.
  return /^v?\d+\.\d+/.test(tag) ? undefined : `${ref}: tag "${tag}" is not a release version`;
}

/** How a published port must read: `${SMARTCITY_BIND_ADDRESS:-127.0.0.1}:<host>:<container>`. */
const BIND_DEFAULT = '127.0.0.1';
const BOUND_PORT = /^\$\{SMARTCITY_BIND_ADDRESS:-([^}]+)\}:(\d+:\d+)$/;

function bindingOf(name: string, port: string): { address: string; ports: string } {
  const match = BOUND_PORT.exec(port);
  assert.ok(match, `${name} publishes "${port}", not bound to \${SMARTCITY_BIND_ADDRESS:-${BIND_DEFAULT}}`);
  return { address: match[1]!, ports: match[2]! };
}

const SECRET_NAME = /PASS|PWD|SECRET|TOKEN|API_?KEY|CREDENTIAL|PRIVATE/i;
const SECRET_VALUE = [/AKIA[0-9A-Z]{16}/, /-----BEGIN [A-Z ]*PRIVATE KEY-----/, /aws_secret_access_key/i];
/** A required interpolation with no default: ${NAME}, ${NAME?message} or ${NAME:?message}. */
const PASSTHROUGH = /^\$\{[A-Z_][A-Z0-9_]*(:?\?[^}]*)?\}$/;

/** Why an environment entry looks like a secret written into the file, or undefined. */
function secretProblem(key: string, value: string): string | undefined {
  if (SECRET_NAME.test(key) && !PASSTHROUGH.test(value)) return `${key} must come from the environment as \${VAR:?message}, not "${value}"`;
  if (SECRET_VALUE.some((pattern) => pattern.test(value))) return `${key} holds something that looks like a credential`;
  return undefined;
}

describe('docker-compose.yml', () => {
  test('has the stack\'s services: Kafka, Temporal with PostgreSQL and the Web UI, Spark, the worker', () => {
    assert.deepEqual(Object.keys(services).sort(), [
      'grafana',
      'kafka',
      'kafka-init',
      'pipeline',
      'postgresql',
      'prometheus',
      'spark-master',
      'spark-worker-1',
      'spark-worker-2',
      'temporal',
      'temporal-namespace',
      'temporal-schema',
      'temporal-ui',
      'worker',
    ]);
    assert.deepEqual(Object.keys(services).filter(isOneShot).sort(), ['kafka-init', 'pipeline', 'temporal-namespace', 'temporal-schema']);
  });

  test('pinProblem accepts versions and digests, and rejects missing, latest and floating tags', () => {
    assert.equal(pinProblem('apache/kafka:4.3.1'), undefined);
    assert.equal(pinProblem('postgres:16.10-alpine'), undefined);
    assert.equal(pinProblem(`node@sha256:${'a'.repeat(64)}`), undefined);
    assert.match(pinProblem('postgres') ?? '', /no tag/);
    assert.match(pinProblem('localhost:5000/smartcity') ?? '', /no tag/);
    assert.match(pinProblem('temporalio/ui:latest') ?? '', /not a release version/);
    assert.match(pinProblem('postgres:16-alpine') ?? '', /not a release version/);
    assert.match(pinProblem('node@sha256:123') ?? '', /malformed digest/);
  });

  test('every image is pinned to a release version', () => {
    for (const [name, s] of Object.entries(services)) {
      assert.ok(s.image, `${name} names no image`);
      assert.equal(pinProblem(s.image), undefined, `${name}: ${pinProblem(s.image)}`);
    }
  });

  test('Kafka runs the local target\'s broker version, and Temporal\'s schema tool matches its server', () => {
    const kafkaVersion = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(read('scripts/kafka-pom.xml'))?.[1];
    assert.ok(kafkaVersion, 'scripts/kafka-pom.xml names no kafka.version');
    assert.equal(service('kafka').image, `apache/kafka:${kafkaVersion}`);
    assert.equal(service('kafka-init').image, service('kafka').image);
    const tag = (ref: string | undefined) => ref?.split(':')[1];
    assert.equal(tag(service('temporal-schema').image), tag(service('temporal').image));
    assert.equal(tag(service('temporal-namespace').image), tag(service('temporal').image));
  });

  test('every long-running service has a health check; one-shots have none and publish nothing', () => {
    for (const [name, s] of Object.entries(services)) {
      if (isOneShot(name)) {
        assert.equal(s.healthcheck, undefined, `${name} is a one-shot: its exit code is its health`);
        assert.equal(s.ports, undefined, `${name} is a one-shot and must not publish ports`);
        continue;
      }
      assert.ok(s.healthcheck, `${name} runs on but has no health check`);
      assert.ok(['CMD', 'CMD-SHELL'].includes(s.healthcheck.test[0]!), `${name}: health check must be CMD or CMD-SHELL`);
    }
  });

  test('health check scripts baked into the smartcity image exist and are executable', () => {
    const scripts = Object.values(services).flatMap((s) => s.healthcheck?.test.filter((arg) => arg.startsWith('/app/')) ?? []);
    assert.ok(scripts.length > 0, 'the worker\'s health check runs a script from the image');
    for (const script of scripts) {
      const path = join(PROJECT_ROOT, script.slice('/app/'.length));
      assert.ok(existsSync(path), `${script} is not in the repository`);
      assert.ok(statSync(path).mode & 0o111, `${script} is not executable`);
    }
  });

  test('publishes the local target\'s ports, on loopback unless SMARTCITY_BIND_ADDRESS opens them', () => {
    const published: Record<string, string[]> = {
      kafka: [`${defaults.ports.kafka}:9092`],
      temporal: [`${defaults.ports.temporal}:7233`],
      'temporal-ui': [`${defaults.ports.temporalUi}:8080`],
      'spark-master': [`${defaults.ports.sparkMasterUi}:8080`],
      prometheus: ['9090:9090'],
      grafana: ['3000:3000'],
    };
    assert.deepEqual(published.kafka, ['9092:9092']);
    assert.deepEqual(published['temporal-ui'], ['8233:8080']);
    for (const [name, ports] of Object.entries(published)) assert.deepEqual(service(name).ports?.map((p) => bindingOf(name, p).ports), ports, `${name} publishes other ports`);
  });

  test('every published port is bound to 127.0.0.1 by default, and the Spark master\'s submission port to none', () => {
    let count = 0;
    for (const [name, s] of Object.entries(services)) {
      for (const port of s.ports ?? []) {
        const { address, ports } = bindingOf(name, port);
        assert.equal(address, BIND_DEFAULT, `${name} publishes ${port}: bind it to ${BIND_DEFAULT}`);
        assert.ok(!ports.split(':').includes('7077'), `${name} publishes 7077: anyone who reaches it can submit code to the cluster`);
        count++;
      }
    }
    assert.ok(count >= 4);
    // The variable is documented where users look for it.
    assert.match(read('README.md'), /SMARTCITY_BIND_ADDRESS/);
    assert.throws(() => bindingOf('x', '9092:9092'), /not bound/);
    assert.throws(() => bindingOf('x', '0.0.0.0:9092:9092'), /not bound/);
  });

  test('Kafka advertises localhost:9092 to the host and the brokers the containers use', () => {
    const kafka = env('kafka');
    assert.match(kafka.KAFKA_ADVERTISED_LISTENERS ?? '', /\/\/localhost:9092(,|$)/);
    for (const broker of loadConfig(env('worker')).kafka.brokers) {
      assert.ok(kafka.KAFKA_ADVERTISED_LISTENERS?.split(',').some((l) => l.endsWith(`//${broker}`)), `no listener advertises ${broker}`);
    }
  });

  test('the worker\'s settings parse and point at the services of this file', () => {
    const config = loadConfig(env('worker'));
    assert.deepEqual(config.kafka.brokers, ['kafka:19092']);
    assert.equal(config.temporal.address, 'temporal:7233');
    assert.equal(config.lakeRoot, '/lake');
    assert.equal(config.dataDir, '/data');
    assert.equal(config.target, 'local');
    assert.deepEqual(env('pipeline'), env('worker'));
  });

  test('depends_on waits for health, and for one-shots to complete', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const [target, { condition }] of Object.entries(s.depends_on ?? {})) {
        assert.ok(services[target], `${name} depends on unknown service ${target}`);
        const expected = isOneShot(target) ? 'service_completed_successfully' : 'service_healthy';
        assert.equal(condition, expected, `${name} → ${target}`);
      }
    }
    const dependsOn = (name: string) => Object.keys(service(name).depends_on ?? {}).sort();
    assert.deepEqual(dependsOn('worker'), ['kafka', 'kafka-init', 'spark-worker-1', 'spark-worker-2', 'temporal', 'temporal-namespace']);
    assert.deepEqual(dependsOn('temporal'), ['postgresql', 'temporal-schema']);
    assert.deepEqual(dependsOn('pipeline'), ['worker']);
    for (const oneShot of ['kafka-init', 'temporal-schema', 'temporal-namespace']) {
      assert.ok(Object.values(services).some((s) => s.depends_on?.[oneShot]), `nothing waits for ${oneShot}`);
    }
  });

  test('named volumes are declared, used, and mounted where the services keep their data', () => {
    const declared = Object.keys(compose.volumes).sort();
    assert.deepEqual(declared, ['grafana-data', 'kafka-data', 'lake', 'prometheus-data', 'spark-checkpoints', 'temporal-db', 'worker-data']);
    const used = new Set<string>();
    for (const name of Object.keys(services)) {
      for (const [source] of mounts(name)) {
        if (isBind(source)) continue;
        assert.ok(declared.includes(source), `${name} mounts undeclared volume ${source}`);
        used.add(source);
      }
    }
    assert.deepEqual([...used].sort(), declared);

    const has = (name: string, source: string, target: string | undefined) =>
      assert.ok(mounts(name).some(([s, t]) => s === source && t === target), `${name} should mount ${source} at ${target}`);
    has('kafka', 'kafka-data', env('kafka').KAFKA_LOG_DIRS);
    has('postgresql', 'temporal-db', '/var/lib/postgresql/data');
    const config = loadConfig(env('worker'));
    for (const name of ['worker', 'spark-worker-1', 'spark-worker-2']) {
      // Executors write the lake at the driver's paths; the streaming job checkpoints under it.
      has(name, 'lake', config.lakeRoot);
      has(name, 'spark-checkpoints', posix.join(config.lakeRoot, 'checkpoints'));
    }
    has('worker', 'worker-data', config.dataDir);
  });

  test('bind-mounted configuration lives under docker/ (ops/ for Prometheus and Grafana) in the repository', () => {
    for (const name of Object.keys(services)) {
      for (const [source] of mounts(name).filter(([s]) => isBind(s))) {
        assert.ok(source.startsWith('./docker/') || source.startsWith('./ops/'), `${name} mounts ${source} from outside docker/ and ops/`);
        assert.ok(existsSync(join(PROJECT_ROOT, source)), `${name} mounts ${source}, which does not exist`);
      }
    }
  });

  test('kafka-init creates every event topic and the dead-letter topic with the default layout', () => {
    const script = read('docker/kafka/create-topics.sh');
    for (const topic of [...Object.values(TOPICS), defaults.kafka.deadLetterTopic]) assert.match(script, new RegExp(`\\b${topic}\\b`), `${topic} is not created`);
    assert.match(script, new RegExp(`--partitions ${defaults.kafka.partitions}\\b`));
    assert.match(script, new RegExp(`--replication-factor ${defaults.kafka.replicationFactor}\\b`));
  });

  test('the worker builds from the repository\'s Dockerfile; the other smartcity services reuse its image', () => {
    const worker = service('worker');
    assert.deepEqual(worker.build, { context: '.', dockerfile: 'Dockerfile' });
    assert.ok(existsSync(join(PROJECT_ROOT, 'Dockerfile')));
    const reusers = Object.entries(services).filter(([name, s]) => name !== 'worker' && s.image === worker.image);
    assert.deepEqual(reusers.map(([name]) => name).sort(), ['pipeline', 'spark-master', 'spark-worker-1', 'spark-worker-2']);
    for (const [name, s] of reusers) {
      assert.equal(s.build, undefined, `${name} must not build the image a second time`);
      assert.equal(s.pull_policy, 'never', `${name}: the image is built here, no registry has it`);
    }
  });

  test('secretProblem flags literal secrets and defaults, and accepts required passthrough', () => {
    assert.equal(secretProblem('POSTGRES_PASSWORD', '${TEMPORAL_DB_PASSWORD:?set it}'), undefined);
    assert.equal(secretProblem('KAFKA_NODE_ID', '1'), undefined);
    assert.match(secretProblem('POSTGRES_PASSWORD', 'temporal') ?? '', /from the environment/);
    assert.match(secretProblem('SQL_PASSWORD', '${TEMPORAL_DB_PASSWORD:-temporal}') ?? '', /from the environment/);
    // Built at run time: an access-key-shaped literal in the repository would trip secret scanners.
    const accessKeyShaped = ['AKIA', 'X'.repeat(16)].join('');
    assert.match(secretProblem('AWS_REGION_HINT', accessKeyShaped) ?? '', /credential/);
  });

  test('no environment value is a secret: passwords pass through from the environment', () => {
    let passthrough = 0;
    for (const name of Object.keys(services)) {
      for (const [key, value] of Object.entries(env(name))) {
        assert.equal(secretProblem(key, value), undefined, `${name}: ${secretProblem(key, value)}`);
        if (PASSTHROUGH.test(value)) passthrough++;
      }
    }
    assert.ok(passthrough >= 4, 'the Temporal database password reaches postgresql, temporal-schema and temporal, the Grafana admin password grafana, from the environment');
  });
});

describe('docker-compose.yml: Prometheus and Grafana (ops/)', () => {
  const prometheus = service('prometheus');
  const grafana = service('grafana');
  const target = (name: string, path: string) => mounts(name).find(([source]) => source === path)?.[1];

  test('publish on the host\'s loopback only', () => {
    for (const [name, s] of [['prometheus', prometheus], ['grafana', grafana]] as const) {
      for (const port of s.ports ?? []) assert.equal(bindingOf(name, port).address, BIND_DEFAULT);
    }
  });

  test('Prometheus loads ops/prometheus\'s config and alert rules and scrapes the worker at its metrics port', () => {
    const config = target('prometheus', './ops/prometheus/prometheus.yml');
    assert.ok(config && prometheus.command?.includes(`--config.file=${config}`), 'runs with the mounted config');
    assert.equal(target('prometheus', './ops/prometheus/alerts.yml'), posix.join(posix.dirname(config), 'alerts.yml'), 'the rule file sits where the config names it');
    const targets = target('prometheus', './ops/prometheus/targets/compose.json');
    assert.equal(targets && posix.dirname(targets), posix.join(posix.dirname(config), 'targets'), 'the targets file sits where file_sd looks');
    const scraped = z.array(z.object({ targets: z.array(z.string()) })).parse(JSON.parse(read('ops/prometheus/targets/compose.json')));
    const worker = loadConfig({ ...env('worker'), SMARTCITY_METRICS_HOST: dockerfileEnv().SMARTCITY_METRICS_HOST });
    assert.deepEqual(scraped.flatMap((t) => t.targets), [`worker:${worker.metrics.port}`]);
    assert.equal(worker.metrics.host, '0.0.0.0', 'the worker listens beyond its container\'s loopback');
    assert.ok(!(service('worker').ports ?? []).some((p) => p.endsWith(`:${worker.metrics.port}`)), 'the worker\'s metrics stay on the compose network');
  });

  test('Grafana is provisioned with that Prometheus and the smartcity dashboard', () => {
    const provisioning = target('grafana', './ops/grafana/provisioning');
    assert.equal(provisioning, '/etc/grafana/provisioning');
    const datasources = parse(read('ops/grafana/provisioning/datasources/prometheus.yml')) as { datasources: { uid: string; url: string }[] };
    assert.deepEqual(
      datasources.datasources.map((d) => d.url),
      [`http://prometheus:${/--web\.listen-address=:(\d+)/.exec(prometheus.command?.join(' ') ?? '')?.[1] ?? '9090'}`],
    );
    const providers = parse(read('ops/grafana/provisioning/dashboards/smartcity.yml')) as { providers: { options: { path: string } }[] };
    assert.deepEqual(providers.providers.map((p) => p.options.path), [target('grafana', './ops/grafana/dashboards')]);
    assert.equal(env('grafana').GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH, posix.join(providers.providers[0]!.options.path, 'smartcity.json'));
    assert.ok(existsSync(join(PROJECT_ROOT, 'ops/grafana/dashboards/smartcity.json')));
    assert.deepEqual(Object.keys(grafana.depends_on ?? {}), ['prometheus']);
  });

  test('Grafana\'s admin password comes from the environment; viewers need no login', () => {
    assert.match(env('grafana').GF_SECURITY_ADMIN_PASSWORD ?? '', PASSTHROUGH);
    assert.equal(env('grafana').GF_AUTH_ANONYMOUS_ORG_ROLE, 'Viewer');
  });
});

describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile');

  test('every base image is pinned (ARG defaults resolved, earlier stages allowed)', () => {
    const args = new Map<string, string>();
    const stages = new Set<string>();
    let froms = 0;
    for (const line of dockerfile.split('\n')) {
      const arg = /^ARG\s+(\w+)=(\S+)/.exec(line);
      if (arg) args.set(arg[1]!, arg[2]!);
      const from = /^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
      if (!from) continue;
      froms++;
      const ref = from[1]!.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a?: string, b?: string) => {
        const value = args.get((a ?? b)!);
        assert.ok(value, `FROM ${from[1]}: ARG ${a ?? b} has no default`);
        return value;
      });
      if (!stages.has(ref)) assert.equal(pinProblem(ref), undefined, `FROM ${from[1]}: ${pinProblem(ref)}`);
      if (from[2]) stages.add(from[2]);
    }
    assert.ok(froms >= 2, 'a build stage and a runtime stage');
  });

  test('installs the tools with the project\'s own setup script and runs the smartcity CLI', () => {
    assert.match(dockerfile, /RUN bash scripts\/setup\.sh/);
    assert.match(dockerfile, /CMD \["smartcity", "worker"\]/);
  });

  test('.dockerignore keeps local installs, state and git history out of the build context', () => {
    const ignored = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim().replace(/^\//, '').replace(/\/$/, ''));
    for (const path of ['node_modules', '.tools', '.data', '.git', 'dist', '.env']) assert.ok(ignored.includes(path), `.dockerignore misses ${path}`);
  });
});
