// Every test file runs in exactly one tier, and test/tiers.ts names only files that exist: a file
// left out of both tiers, or a tier entry that no longer matches a file, would silently stop testing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { filesOfTier } from '../runner';
import { LONG_FILES, SOLO_FILES, SYSTEM_FILES } from '../tiers';

test('the fast and system tiers split the test files between them, each file in one', () => {
  const fast = filesOfTier('fast');
  const system = filesOfTier('system');
  assert.deepEqual([...fast, ...system].sort(), filesOfTier('all'));
  assert.deepEqual(system, [...SYSTEM_FILES].sort());
  assert.ok(fast.includes('test/unit/tiers.test.ts'));
});

test('tiers.ts names only test files that exist, each once per list', () => {
  const all = filesOfTier('all');
  for (const list of [SYSTEM_FILES, SOLO_FILES, LONG_FILES]) {
    assert.equal(new Set(list).size, list.length);
    for (const file of list) assert.ok(all.includes(file), file);
  }
});
