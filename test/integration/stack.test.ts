// `smartcity stack up | down | status` on ports of its own (not the shared test stack's), with a
// throwaway data folder.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { loadConfig, type Config } from '../../config';
import { createKafka } from '../../kafka/client';
import { stackDown, stackStatus, stackUp, PortInUseError } from '../../stack';
import { formatKafkaStorage, newClusterId } from '../../stack/kafka';
import { isAlive, portIsFree } from '../../stack/processes';
import { runCli } from '../helpers/cli';

const dataDir = mkdtempSync(join(tmpdir(), 'smartcity-stack-test-'));
// Moved with the other test ports by SMARTCITY_TEST_PORT_OFFSET (scripts/test.sh).
const offset = Number(process.env.SMARTCITY_TEST_PORT_OFFSET ?? 0);
const env = {
  SMARTCITY_DATA_DIR: dataDir,
  SMARTCITY_TEMPORAL_PORT: String(37233 + offset),
  SMARTCITY_TEMPORAL_UI_PORT: String(38233 + offset),
  SMARTCITY_KAFKA_PORT: String(39092 + offset),
  SMARTCITY_KAFKA_CONTROLLER_PORT: String(39093 + offset),
  SMARTCITY_SPARK_MASTER_PORT: String(37077 + offset),
  SMARTCITY_SPARK_MASTER_UI_PORT: String(38080 + offset),
  SMARTCITY_SPARK_WORKER_UI_PORT: String(38081 + offset),
  SMARTCITY_SPARK_CONNECT_PORT: String(35002 + offset),
  SMARTCITY_SPARK_CONNECT_UI_PORT: String(34050 + offset),
};
const config: Config = loadConfig({ ...process.env, ...env });
const ports = [...Object.values(config.ports), config.ports.sparkWorkerUi + 1];

/** The local addresses listening on a TCP port, from /proc/net/tcp and tcp6 (hex, as the kernel writes them). */
function listeners(port: number): string[] {
  const found: string[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      if (!local || state !== '0A') continue; // 0A: LISTEN
      const [address, hexPort] = local.split(':');
      if (parseInt(hexPort!, 16) === port) found.push(address!);
    }
  }
  return found;
}
// 127.0.0.1 as /proc/net/tcp writes it, and as tcp6 writes its v4-mapped form (::ffff:127.0.0.1).
const LOOPBACK = new Set(['0100007F', '0000000000000000FFFF00000100007F']);

/** Processes whose command line mentions this test's data folder. */
function processesUsing(folder: string): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(folder);
      } catch {
        return false;
      }
    })
    .map(Number);
}

describe('smartcity stack', () => {
  after(async () => {
    await stackDown(config);
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('status reports the core components stopped before up', async () => {
    const info = await stackStatus(config);
    assert.deepEqual(
      info.components.map((c) => [c.name, c.state, c.answering]),
      [
        ['temporal', 'stopped', false],
        ['kafka', 'stopped', false],
        ['spark-connect', 'stopped', false],
      ],
    );
  });

  test('up starts Temporal, Kafka and the Spark Connect server, creates the topics and prints the URLs', { timeout: 240_000 }, async () => {
    const result = runCli(['stack', 'up'], env);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`Temporal Web UI\\s+http://localhost:${config.ports.temporalUi}`));
    assert.match(result.stdout, new RegExp(`Temporal gRPC\\s+127\\.0\\.0\\.1:${config.ports.temporal}`));
    assert.match(result.stdout, new RegExp(`Kafka bootstrap\\s+127\\.0\\.0\\.1:${config.ports.kafka}`));

    const info = await stackStatus(config);
    for (const c of info.components) assert.deepEqual([c.name, c.state, c.answering], [c.name, 'running', true]);
    // Its UI on loopback; its gRPC port on every interface (Spark 3.5 has no binding address), where
    // the guard refuses other machines (spark-runner.test.ts connects from one).
    assert.ok(listeners(config.ports.sparkConnectUi).every((a) => LOOPBACK.has(a)), `the Spark Connect UI listens on loopback only`);

    const admin = createKafka(config).admin();
    await admin.connect();
    try {
      const topics = await admin.listTopics();
      for (const topic of ['vehicle_data', 'gps_data', 'traffic_data', 'weather_data', 'emergency_data', 'smartcity_dead_letter']) {
        assert.ok(topics.includes(topic), `topic ${topic} exists`);
      }
    } finally {
      await admin.disconnect();
    }
  });

  test('up a second time leaves the running components alone', async () => {
    const before = (await stackStatus(config)).components.map((c) => c.pid);
    const result = runCli(['stack', 'up'], env);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stderr, /already running/);
    assert.deepEqual((await stackStatus(config)).components.map((c) => c.pid), before);
  });

  test('workflow history survives down and up', async () => {
    const connect = () => Connection.connect({ address: config.temporal.address });
    let connection = await connect();
    // No worker polls this queue: the execution simply stays open, which is all we need to find later.
    await new Client({ connection }).workflow.start('noWorkerListens', { taskQueue: 'stack-test-idle', workflowId: 'stack-test-survivor' });
    await connection.close();

    await stackDown(config);
    await stackUp(config);

    connection = await connect();
    try {
      const description = await new Client({ connection }).workflow.getHandle('stack-test-survivor').describe();
      assert.equal(description.status.name, 'RUNNING');
    } finally {
      await connection.close();
    }
  });

  test('up --spark-cluster adds a master and two workers on loopback, shown by status', { timeout: 300_000 }, async () => {
    const result = runCli(['stack', 'up', '--spark-cluster'], env, 280_000);
    assert.equal(result.status, 0, result.stderr);
    const { sparkMaster, sparkMasterUi, sparkWorkerUi } = config.ports;
    assert.match(result.stdout, new RegExp(`Spark master\\s+running\\s+ports ${sparkMaster}, ${sparkMasterUi}`));
    assert.match(result.stdout, new RegExp(`Spark worker 2\\s+running\\s+ports ${sparkWorkerUi + 1}`));
    assert.match(result.stdout, new RegExp(`Spark master\\s+spark://127\\.0\\.0\\.1:${sparkMaster}`));
    assert.match(result.stdout, new RegExp(`Spark master UI\\s+http://127\\.0\\.0\\.1:${sparkMasterUi}`));
    // The worker runs its jobs on local[2] until told otherwise: up says how.
    assert.match(result.stderr, new RegExp(`SMARTCITY_SPARK_MASTER=spark://127\\.0\\.0\\.1:${sparkMaster}`));
    for (const port of [config.ports.sparkMaster, config.ports.sparkMasterUi, config.ports.sparkWorkerUi, config.ports.sparkWorkerUi + 1]) {
      const addresses = listeners(port);
      assert.ok(addresses.length > 0, `something listens on ${port}`);
      for (const address of addresses) assert.ok(LOOPBACK.has(address), `port ${port} listens on ${address}, not loopback`);
    }
    const status = runCli(['stack', 'status'], env);
    assert.equal(status.status, 0, status.stdout);
    assert.match(status.stdout, /Spark worker 1\s+running/);
  });

  test('down stops exactly what up started and leaves no process behind', async () => {
    const pids = (await stackStatus(config)).components.map((c) => c.pid!);
    assert.equal(pids.length, 6);
    const result = runCli(['stack', 'down'], env);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /stopped: Spark worker 2, Spark worker 1, Spark master, Spark Connect server, Kafka broker, Temporal dev server/);
    for (const pid of pids) assert.equal(isAlive(pid), false, `pid ${pid} is gone`);
    assert.deepEqual(processesUsing(dataDir), []);
    for (const port of ports) assert.ok(await portIsFree(port), `port ${port} is free again`);

    const status = runCli(['stack', 'status'], env);
    assert.equal(status.status, 3, 'status exits 3 while the stack is down');
    assert.match(status.stdout, /Kafka broker\s+stopped/);
  });

  describe('the KRaft cluster id', () => {
    // 0xf8 = 111110xx: the first base64url character is '-' (value 62).
    const dashFirst = Buffer.from('f8'.padEnd(32, '7'), 'hex');

    test('a new id never begins with a dash (Kafka\'s own rule), drawing again when it would', () => {
      assert.ok(dashFirst.toString('base64url').startsWith('-'));
      const draws = [dashFirst, dashFirst, Buffer.alloc(16, 7)];
      assert.equal(newClusterId(() => draws.shift()!), Buffer.alloc(16, 7).toString('base64url'));
      assert.equal(draws.length, 0);
    });

    test('storage formats with an id that begins with a dash', { timeout: 60_000 }, () => {
      const folder = mkdtempSync(join(tmpdir(), 'smartcity-kafka-format-'));
      try {
        const id = dashFirst.toString('base64url');
        formatKafkaStorage(loadConfig({ ...process.env, ...env, SMARTCITY_DATA_DIR: folder }), id);
        assert.match(readFileSync(join(folder, 'kafka', 'data', 'meta.properties'), 'utf8'), new RegExp(`^cluster\\.id=${id}$`, 'm'));
      } finally {
        rmSync(folder, { recursive: true, force: true });
      }
    });
  });

  describe('with a port taken by another process', () => {
    let squatter: Server;
    before(async () => {
      squatter = createServer();
      await new Promise<void>((resolve) => squatter.listen(config.ports.kafka, '127.0.0.1', resolve));
    });
    after(async () => new Promise<void>((resolve) => squatter.close(() => resolve())));

    test('up fails with an error naming the port and starts nothing', async () => {
      await assert.rejects(stackUp(config), (err: Error) => {
        assert.ok(err instanceof PortInUseError);
        assert.match(err.message, new RegExp(`port ${config.ports.kafka} \\(Kafka\\) is already in use`));
        assert.match(err.message, /SMARTCITY_KAFKA_PORT/);
        return true;
      });
      assert.deepEqual(processesUsing(dataDir), []);

      const result = runCli(['stack', 'up'], env);
      assert.equal(result.status, 1);
      assert.match(result.stderr, new RegExp(`port ${config.ports.kafka}`));
    });
  });
});
