// fleetSimulation on the time-skipping server with stub activities.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { JourneyChunkInput } from '../../activities/types';
import { loadConfig } from '../../config';
import { createTimeSkippingEnv } from '../helpers/temporal';
import { fleetPauseSignal, fleetResumeSignal, fleetSimulation, fleetStatusQuery } from '../../workflows';
import { MINUTE, Stubs, TIMEOUT, counts, recordHistory, waitUntil, withWorker, workflowBundle } from './stubs';

const start = '2024-05-01T08:00:00.000Z';
const chunks = (stubs: Stubs) => stubs.callsOf('produceJourneyChunk').map((c) => c.input as JourneyChunkInput);

describe('fleetSimulation', () => {
  let env: TestWorkflowEnvironment;
  before(async () => {
    [env] = await Promise.all([createTimeSkippingEnv(loadConfig()), workflowBundle()]);
  });
  after(() => env?.teardown());

  test('runs every vehicle to arrival; pause holds them at a chunk boundary and shifts the pacing anchor', TIMEOUT, async () => {
    const stubs = new Stubs();
    let release = () => {};
    stubs.chunkGate = new Promise<void>((resolve) => (release = resolve));
    await withWorker(env, stubs, async (taskQueue, track) => {
      const handle = track(await env.client.workflow.start(fleetSimulation, {
        taskQueue,
        workflowId: `fleet-${randomUUID()}`,
        args: [{ vehicles: 3, seed: 7, start, speedup: 60 }],
      }));
      await waitUntil(async () => chunks(stubs).length, (n) => n === 3, 'every vehicle is producing its first chunk');
      await handle.signal(fleetPauseSignal);
      stubs.chunkGate = undefined;
      release();
      await waitUntil(() => handle.query(fleetStatusQuery), (s) => s.paused && s.vehicles.every((v) => v.nextIndex > 0), 'the first chunks are in');
      await env.sleep('10 minutes');
      assert.equal(chunks(stubs).length, 3, 'no chunk starts while paused');

      await handle.signal(fleetResumeSignal);
      const result = await handle.result();
      assert.deepEqual(result, { totals: counts(0, { vehicle: 36, gps: 36 }), vehicles: 3, arrived: 3, endedBy: 'arrival' });

      const calls = chunks(stubs);
      for (const vehicleIndex of [0, 1, 2]) {
        const mine = calls.filter((c) => c.vehicleIndex === vehicleIndex);
        assert.deepEqual(
          mine.map((c) => [c.fromIndex, c.untilEventTime]),
          [
            [0, '2024-05-01T08:05:00.000Z'],
            [5 - vehicleIndex, '2024-05-01T08:10:00.000Z'],
            [10 - vehicleIndex, '2024-05-01T08:15:00.000Z'],
          ],
        );
      }
      const [first, afterResume] = [calls[0]!.pacing!, calls[3]!.pacing!];
      assert.equal(first.speedup, 60);
      assert.equal(first.simAnchorMs, Date.parse(start));
      assert.ok(afterResume.wallAnchorMs - first.wallAnchorMs >= 10 * MINUTE, 'the anchor moved by the time spent paused');

      const status = await handle.query(fleetStatusQuery);
      assert.equal(status.paused, false);
      assert.deepEqual(
        status.vehicles.map((v) => [v.vehicleIndex, v.nextIndex, v.arrived]),
        [
          [0, 12, true],
          [1, 12, true],
          [2, 12, true],
        ],
      );
      await recordHistory(handle, 'fleetSimulation-pause-resume');
    });
  });

  test('durationMinutes ends the journeys early; asFastAsPossible sends without pacing', TIMEOUT, async () => {
    const stubs = new Stubs();
    await withWorker(env, stubs, async (taskQueue) => {
      const result = await env.client.workflow.execute(fleetSimulation, {
        taskQueue,
        workflowId: `fleet-${randomUUID()}`,
        args: [{ vehicles: 3, start, durationMinutes: 7, asFastAsPossible: true }],
      });
      // Vehicle i leaves i minutes after the start and sends one event a minute until minute 7.
      assert.deepEqual(result, { totals: counts(0, { vehicle: 18, gps: 18 }), vehicles: 3, arrived: 0, endedBy: 'duration' });
      assert.ok(chunks(stubs).every((c) => c.pacing === undefined));
      assert.equal(Math.max(...chunks(stubs).map((c) => Date.parse(c.untilEventTime))), Date.parse(start) + 7 * MINUTE);
    });
  });

  test('continues as new past its history threshold without losing a journey position', TIMEOUT, async () => {
    const stubs = new Stubs();
    stubs.journeyEvents = 60;
    await withWorker(env, stubs, async (taskQueue, track) => {
      const handle = track(await env.client.workflow.start(fleetSimulation, {
        taskQueue,
        workflowId: `fleet-${randomUUID()}`,
        args: [{ vehicles: 2, start, asFastAsPossible: true, historyThreshold: 50 }],
      }));
      const result = await handle.result();
      assert.deepEqual(result.totals, counts(0, { vehicle: 120, gps: 120 }));
      assert.ok((await handle.query(fleetStatusQuery)).continuedAsNewCount >= 1);
      const fromIndexes = chunks(stubs).filter((c) => c.vehicleIndex === 0).map((c) => c.fromIndex);
      assert.deepEqual(fromIndexes, [...new Set(fromIndexes)].sort((a, b) => a - b), 'no chunk is produced twice');
    });
  });

  test('started without input it drives three vehicles from the workflow start', TIMEOUT, async () => {
    const stubs = new Stubs();
    await withWorker(env, stubs, async (taskQueue, track) => {
      const handle = track(await env.client.workflow.start(fleetSimulation, { taskQueue, workflowId: `fleet-${randomUUID()}`, args: [] }));
      const result = await handle.result();
      assert.equal(result.arrived, 3);
      const started = (await handle.describe()).startTime.getTime();
      assert.ok(Math.abs(Date.parse(chunks(stubs)[0]!.fleet.start) - started) < 1000);
    });
  });
});
