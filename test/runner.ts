// Runs test files with node's test runner, each in a process of its own, up to `--jobs` at a time
// (files in SOLO_FILES alone). A file's output is printed whole when it ends, so files running
// side by side do not interleave; each file's TAP goes to the reports folder. Ends with the
// slowest files and one summary line, and writes the same as JSON for the test command.
//
//   node --import tsx test/runner.ts --tier fast|system|all [--jobs N] [--reports DIR]
//   node --import tsx test/runner.ts --tier files [--jobs N] [--reports DIR] FILE…
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { PROJECT_ROOT } from '../config';
import { LONG_FILES, SOLO_FILES, SYSTEM_FILES } from './tiers';

interface FileResult {
  file: string;
  seconds: number;
  passed: number;
  failed: number;
  skipped: number;
  exitCode: number | null;
}

/** A file that runs longer than this is stopped and counted as failed (its tests have their own timeouts). */
const FILE_TIMEOUT_MS = 30 * 60_000;

function testFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'fixtures' ? [] : testFiles(path);
    return name.endsWith('.test.ts') ? [relative(PROJECT_ROOT, path)] : [];
  });
}

export function filesOfTier(tier: 'fast' | 'system' | 'all'): string[] {
  const all = testFiles(join(PROJECT_ROOT, 'test')).sort();
  for (const named of [...SYSTEM_FILES, ...SOLO_FILES, ...LONG_FILES]) {
    if (!all.includes(named)) throw new Error(`test/tiers.ts names ${named}, which is not a test file`);
  }
  if (tier === 'all') return all;
  return all.filter((f) => SYSTEM_FILES.includes(f) === (tier === 'system'));
}

function count(tap: string, key: string): number {
  const m = new RegExp(`^# ${key} (\\d+)$`, 'm').exec(tap);
  return m ? Number(m[1]) : 0;
}

function runFile(file: string, reports: string): Promise<FileResult> {
  const base = join(reports, file.replace(/[/\\]/g, '__'));
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--test', '--test-reporter=spec', `--test-reporter-destination=${base}.log`, '--test-reporter=tap', `--test-reporter-destination=${base}.tap`, file],
      { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), FILE_TIMEOUT_MS);
    child.on('close', (exitCode) => {
      clearTimeout(timer);
      const read = (path: string) => {
        try {
          return readFileSync(path, 'utf8');
        } catch {
          return '';
        }
      };
      const tap = read(`${base}.tap`);
      const passed = count(tap, 'pass');
      let failed = count(tap, 'fail') + count(tap, 'cancelled');
      // A file that crashed or hung before its runner could count is one failure, not none.
      if (exitCode !== 0 && failed === 0) failed = 1;
      const result = { file, seconds: (Date.now() - started) / 1000, passed, failed, skipped: count(tap, 'skipped'), exitCode };
      process.stdout.write(`${read(`${base}.log`)}${output}`);
      console.log(`${failed ? '✖' : '✔'} ${file}: ${passed} passed, ${failed} failed (${result.seconds.toFixed(1)} s)\n`);
      resolve(result);
    });
  });
}

/** Runs `files`, `jobs` at a time; a solo file starts only when nothing runs and holds the others back. */
async function runAll(files: string[], jobs: number, reports: string): Promise<FileResult[]> {
  const rank = (f: string) => (LONG_FILES.includes(f) ? LONG_FILES.indexOf(f) : LONG_FILES.length);
  const queue = [...files].sort((a, b) => rank(a) - rank(b));
  const results: FileResult[] = [];
  const running = new Set<string>();
  return new Promise((resolve) => {
    const next = () => {
      if (queue.length === 0 && running.size === 0) return resolve(results);
      while (queue.length > 0 && running.size < jobs) {
        const soloRunning = [...running].some((f) => SOLO_FILES.includes(f));
        if (soloRunning) return;
        const index = queue.findIndex((f) => !SOLO_FILES.includes(f) || running.size === 0);
        if (index < 0) return;
        const [file] = queue.splice(index, 1) as [string];
        running.add(file);
        void runFile(file, reports).then((result) => {
          running.delete(file);
          results.push(result);
          next();
        });
        if (SOLO_FILES.includes(file)) return;
      }
    };
    next();
  });
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { tier: { type: 'string', default: 'fast' }, jobs: { type: 'string', default: '2' }, reports: { type: 'string', default: join(PROJECT_ROOT, '.data', 'test', 'reports') } },
  });
  const tier = values.tier;
  if (tier !== 'fast' && tier !== 'system' && tier !== 'all' && tier !== 'files') throw new Error(`--tier must be fast, system, all or files, got "${tier}"`);
  if ((tier === 'files') !== positionals.length > 0) throw new Error('files to run are given with --tier files, and only then');
  const jobs = Number(values.jobs);
  if (!Number.isInteger(jobs) || jobs < 1) throw new Error(`--jobs must be a whole number ≥ 1, got "${values.jobs}"`);
  const files = tier === 'files' ? positionals.map((f) => relative(PROJECT_ROOT, resolve(f))) : filesOfTier(tier);
  const reports = values.reports;
  mkdirSync(reports, { recursive: true });

  const started = Date.now();
  const results = await runAll(files, jobs, reports);
  const wall = (Date.now() - started) / 1000;
  const passed = results.reduce((n, r) => n + r.passed, 0);
  const failed = results.reduce((n, r) => n + r.failed, 0);

  const slowest = [...results].sort((a, b) => b.seconds - a.seconds).slice(0, 15);
  console.log(`slowest files (${results.length} files, ${jobs} at a time, ${wall.toFixed(0)} s wall):`);
  for (const r of slowest) console.log(`  ${r.seconds.toFixed(1).padStart(7)} s  ${r.file}`);
  const failedFiles = results.filter((r) => r.failed > 0).map((r) => r.file);
  if (failedFiles.length) console.log(`failed: ${failedFiles.join(', ')}`);
  writeFileSync(join(reports, `node-${tier}.json`), JSON.stringify({ tier, jobs, wallSeconds: wall, passed, failed, files: results }, null, 2));
  console.log(`node tests: ${passed} passed, ${failed} failed`);
  return failed > 0 ? 1 : 0;
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(2);
    },
  );
}
