// The activities' modules form no import cycle (one module per external system, each depending
// only on lower ones): a cycle makes load order matter and hides which module owns what.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { PROJECT_ROOT } from '../../config';

type Graph = Map<string, string[]>;

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** A relative import's file: `./x` → x.ts or x/index.ts. */
function resolveImport(from: string, spec: string): string | undefined {
  const base = resolve(dirname(from), spec);
  return [`${base}.ts`, join(base, 'index.ts')].find(existsSync);
}

/** Every module under `dir` and the modules under `dir` it imports or re-exports, type-only ones included. */
function importGraph(dir: string): Graph {
  const graph: Graph = new Map();
  for (const file of tsFiles(dir)) {
    const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const targets = importedFiles
      .map((i) => i.fileName)
      .filter((spec) => spec.startsWith('.'))
      .map((spec) => resolveImport(file, spec))
      .filter((target): target is string => target !== undefined && target.startsWith(dir));
    graph.set(relative(PROJECT_ROOT, file), targets.map((t) => relative(PROJECT_ROOT, t)));
  }
  return graph;
}

/** One cycle per strongly connected group of modules, as the path a → … → a. */
function cycles(graph: Graph): string[][] {
  const found: string[][] = [];
  const done = new Set<string>();
  const visit = (node: string, path: string[]) => {
    const at = path.indexOf(node);
    if (at >= 0) {
      found.push([...path.slice(at), node]);
      return;
    }
    if (done.has(node)) return;
    for (const next of graph.get(node) ?? []) visit(next, [...path, node]);
    done.add(node);
  };
  for (const node of [...graph.keys()].sort()) visit(node, []);
  return found;
}

describe('activities/ module structure', () => {
  test('no import cycle among the activities modules', () => {
    const graph = importGraph(join(PROJECT_ROOT, 'activities'));
    assert.ok(graph.size > 10 && graph.get('activities/aws/quality.ts')?.includes('activities/aws/athena.ts'), 'the graph holds the modules and their imports');
    assert.deepEqual(cycles(graph).map((c) => c.join(' → ')), []);
  });

  test('the cycle finder reports a cycle through several modules', () => {
    const graph: Graph = new Map([
      ['athena.ts', ['glue.ts', 'redshift.ts']],
      ['redshift.ts', ['glue.ts', 'athena.ts']],
      ['glue.ts', []],
    ]);
    assert.deepEqual(cycles(graph), [['athena.ts', 'redshift.ts', 'athena.ts']]);
  });
});
