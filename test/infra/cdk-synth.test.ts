// The real CDK CLI synthesizes the app offline, as a user would before deploying: the other
// deployment mode (an existing EMR cluster, a provisioned Redshift cluster, data deleted with the
// stack), the same security checks, and the Spark bundle as it will land in the artifacts bucket.
// Every AWS endpoint and proxy points at a local listener that counts connections: a synth that
// reaches for the network fails the test instead of hanging on it.
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../config';
import { SPARK_ARTIFACTS, pinnedPythonPackages } from '../../infra/spark-bundle';
import { allProblems, EXPECTED_OUTPUTS, outputProblems, requiredWorkerActions, activitySdkCalls, workerCoverageProblems, workerStatements, type CfnTemplate } from './template-checks';

const STACK = 'SmartcityCliTest';
const SYNTH_TIMEOUT_MS = 240_000;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

/** Runs the command in its own process group; kills the group when it outlives the timeout. */
function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: PROJECT_ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), SYNTH_TIMEOUT_MS);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, output });
    });
  });
}

describe('cdk synth (the CLI, offline)', () => {
  const outDir = mkdtempSync(join(tmpdir(), 'smartcity-cdk-'));
  let listener: Server;
  let connections = 0;
  let result: Run;
  let template: CfnTemplate;

  before(async () => {
    listener = createServer((socket) => {
      connections++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    const offline = `http://127.0.0.1:${(listener.address() as AddressInfo).port}`;
    // No credentials, profiles or region of the machine's user: the synth must not need them.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AWS_') && !k.startsWith('CDK_')));
    Object.assign(env, {
      CDK_DISABLE_VERSION_CHECK: '1',
      CDK_DISABLE_CLI_TELEMETRY: 'true',
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_CONFIG_FILE: join(outDir, 'no-aws-config'),
      AWS_SHARED_CREDENTIALS_FILE: join(outDir, 'no-aws-credentials'),
      AWS_ENDPOINT_URL: offline,
      HTTPS_PROXY: offline,
      HTTP_PROXY: offline,
      https_proxy: offline,
      http_proxy: offline,
      NO_PROXY: '',
    });
    const context = ['stackName=' + STACK, 'emrClusterId=j-EXISTING1', 'redshiftClusterId=analytics', 'redshiftDbUser=smartcity_loader', 'destroyData=true'];
    result = await run(
      'npx',
      ['--no', 'cdk', 'synth', '--app', 'node --import tsx infra/app.ts', '-o', outDir, '--no-notices', '--no-version-reporting', '--no-asset-metadata', '--quiet', ...context.flatMap((c) => ['-c', c])],
      env,
    );
    const file = join(outDir, `${STACK}.template.json`);
    if (existsSync(file)) template = JSON.parse(readFileSync(file, 'utf8')) as CfnTemplate;
  });

  after(() => {
    listener.close();
    rmSync(outDir, { recursive: true, force: true });
  });

  test('synthesizes without errors, within the time limit, without touching the network', () => {
    assert.equal(result.signal, null, `cdk synth was killed after ${SYNTH_TIMEOUT_MS} ms:\n${result.output}`);
    assert.equal(result.code, 0, result.output);
    assert.equal(connections, 0, 'cdk synth opened a network connection');
    assert.ok(template, `no ${STACK}.template.json in ${outDir}`);
  });

  test('the same security checks hold with auto-deleted buckets and existing clusters', () => {
    assert.deepEqual(allProblems(template), []);
  });

  test('outputs: the given EMR and Redshift cluster settings instead of Serverless', () => {
    assert.deepEqual(outputProblems(template, EXPECTED_OUTPUTS.cluster), []);
    assert.equal(template.Outputs!.SmartcityEmrClusterId!.Value, 'j-EXISTING1');
    assert.equal(template.Outputs!.SmartcityRedshiftDbUser!.Value, 'smartcity_loader');
    assert.equal(Object.values(template.Resources).filter((r) => r.Type.startsWith('AWS::RedshiftServerless::') || r.Type === 'AWS::EMR::Cluster').length, 0);
  });

  test('the worker policy covers the activities with provisioned-cluster credentials', () => {
    const needed = requiredWorkerActions(activitySdkCalls(), 'cluster');
    assert.ok(needed.has('redshift:GetClusterCredentials'));
    assert.deepEqual(workerCoverageProblems(workerStatements(template), needed), []);
  });

  test('the Spark bundle asset holds both jobs, the contracts and an importable smartcity_spark.zip', () => {
    const bundle = readdirSync(outDir)
      .map((name) => join(outDir, name))
      .find((dir) => name(dir).startsWith('asset.') && existsSync(join(dir, 'jobs', 'curate.py')));
    assert.ok(bundle, `no asset with jobs/curate.py in ${outDir}`);
    const rel = (key: string) => join(bundle, key.slice(SPARK_ARTIFACTS.prefix.length));
    for (const key of [SPARK_ARTIFACTS.curateScript, SPARK_ARTIFACTS.streamIngestScript, SPARK_ARTIFACTS.pyFiles]) assert.ok(existsSync(rel(key)), key);
    assert.deepEqual(readdirSync(rel(SPARK_ARTIFACTS.schemasDir)).sort(), readdirSync(join(PROJECT_ROOT, 'schemas', 'v1')).filter((f) => f.endsWith('.json')).sort());
    const venvPython = join(PROJECT_ROOT, '.tools', 'venv', 'bin', 'python');
    const check = spawnSync(
      existsSync(venvPython) ? venvPython : 'python3',
      ['-c', 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; sys.path.insert(0, sys.argv[1]); import smartcity_spark; print(sorted(z.namelist()))', rel(SPARK_ARTIFACTS.pyFiles)],
      { encoding: 'utf8' },
    );
    assert.equal(check.status, 0, check.stderr);
    assert.match(check.stdout, /'smartcity_spark\/__init__\.py'.*'smartcity_spark\/schemas\.py'/);
    // EMR's bootstrap action installs the versions the local target tests with.
    const bootstrap = readFileSync(rel(SPARK_ARTIFACTS.emrBootstrap), 'utf8');
    for (const pin of pinnedPythonPackages(['pyarrow', 'pandas'])) assert.ok(bootstrap.includes(pin), `the EMR bootstrap installs ${pin}`);
    assert.ok(statSync(rel(SPARK_ARTIFACTS.emrBootstrap)).mode & 0o111, 'the EMR bootstrap is executable');
    assert.equal(spawnSync('bash', ['-n', rel(SPARK_ARTIFACTS.emrBootstrap)]).status, 0, 'the EMR bootstrap is valid bash');
  });
});

function name(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}
