// The workflow bundle is built once and reused only while every file in it is unchanged: a worker
// must never run workflow code older than the checkout, and must not bundle again when nothing
// changed (workers/bundle.ts).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../config';
import { bundleIsCurrent, workflowBundlePath } from '../../workers/bundle';

// Inside the project: webpack resolves @temporalio/workflow, which every bundle imports, from here.
mkdirSync(join(PROJECT_ROOT, 'dist'), { recursive: true });
const dir = mkdtempSync(join(PROJECT_ROOT, 'dist', 'bundle-test-'));
const workflows = join(dir, 'workflows.ts');
const helper = join(dir, 'greeting.ts');
const bundlePath = join(dir, 'out', 'bundle.js');

writeFileSync(helper, `export const greeting = (name: string) => 'hello ' + name;\n`);
writeFileSync(workflows, `import { greeting } from './greeting';\nexport async function greet(name: string): Promise<string> {\n  return greeting(name);\n}\n`);

describe('the workflow bundle cache', { timeout: 120_000 }, () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('is built when missing, then reused while its files are unchanged', async () => {
    assert.equal(bundleIsCurrent(bundlePath, workflows), false);
    assert.equal(await workflowBundlePath(bundlePath, workflows), bundlePath);
    assert.match(readFileSync(bundlePath, 'utf8'), /hello /);
    const built = statSync(bundlePath).mtimeMs;
    assert.equal(bundleIsCurrent(bundlePath, workflows), true);
    await workflowBundlePath(bundlePath, workflows);
    assert.equal(statSync(bundlePath).mtimeMs, built, 'a current bundle is not written again');
  });

  test('a changed file that the workflows import makes it stale, and it is rebuilt with the change', async () => {
    writeFileSync(helper, `export const greeting = (name: string) => 'good morning ' + name;\n`);
    assert.equal(bundleIsCurrent(bundlePath, workflows), false);
    await workflowBundlePath(bundlePath, workflows);
    assert.match(readFileSync(bundlePath, 'utf8'), /good morning /);
    assert.equal(bundleIsCurrent(bundlePath, workflows), true);
  });

  test('a bundle of other workflows is not taken for this one', async () => {
    const other = join(dir, 'other.ts');
    writeFileSync(other, `export async function other(): Promise<void> {}\n`);
    assert.equal(bundleIsCurrent(bundlePath, other), false);
  });
});
