// Replays every committed history in test/histories against today's workflow code: a change that
// would break a running workflow (nondeterminism) fails here, not in production. The files are in
// the JSON that `temporal workflow show --output json` and `handle.fetchHistory()` write.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from '@temporalio/worker';
import { workflowBundle } from '../workflows/stubs';

const HISTORIES = join(__dirname, '..', 'histories');
const files = readdirSync(HISTORIES)
  .filter((f) => f.endsWith('.json'))
  .sort();

describe('replay of recorded histories', () => {
  test('there are histories of every workflow to replay', () => {
    for (const workflow of ['batchRun', 'backfillChunk', 'streamingSupervisor', 'smartCityPipeline', 'fleetSimulation']) {
      assert.ok(
        files.some((f) => f.startsWith(`${workflow}-`)),
        `test/histories has no ${workflow}-*.json`,
      );
    }
  });

  for (const file of files) {
    test(`${file} replays without nondeterminism`, async () => {
      const history: unknown = JSON.parse(readFileSync(join(HISTORIES, file), 'utf8'));
      await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, file);
    });
  }
});
