// fleetSimulation on the time-skipping server with stub activities: the pipeline's worker on the
// test's task queue and a second worker on its fleet queue, as workers/worker.ts runs them.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { FleetSliceInput, JourneyChunkInput } from '../../activities/types';
import { loadConfig } from '../../config';
import { createTimeSkippingEnv } from '../helpers/temporal';
import { fleetPauseSignal, fleetProgressSignal, fleetResumeSignal, fleetSimulation, fleetStatusQuery, MAX_SLICES } from '../../workflows';
import { fleetTaskQueue } from '../../workflows/ids';
import { MINUTE, POLL, Stubs, TIMEOUT, counts, recordHistory, withWorker, workflowBundle, type Track } from './stubs';
import { until, when } from '../helpers/until';

const start = '2024-05-01T08:00:00.000Z';
const slices = (stubs: Stubs) => stubs.callsOf('produceFleetSlice').map((c) => c.input as FleetSliceInput);

describe('fleetSimulation', () => {
  let env: TestWorkflowEnvironment;
  before(async () => {
    [env] = await Promise.all([createTimeSkippingEnv(loadConfig()), workflowBundle()]);
  });
  after(() => env?.teardown());

  /** withWorker, plus a worker serving the stubs on the fleet's own task queue. */
  function withFleetWorker<T>(stubs: Stubs, fn: (taskQueue: string, track: Track) => Promise<T>): Promise<T> {
    return withWorker(env, stubs, async (taskQueue, track) => {
      const fleetWorker = await Worker.create({
        connection: env.nativeConnection,
        namespace: env.namespace ?? 'default',
        taskQueue: fleetTaskQueue(taskQueue),
        activities: stubs.activities,
      });
      return fleetWorker.runUntil(fn(taskQueue, track));
    });
  }

  test('runs every slice to arrival on the fleet queue; pause holds them at a chunk boundary and shifts the pacing anchor', TIMEOUT, async () => {
    const stubs = new Stubs();
    let release = () => {};
    stubs.chunkGate = new Promise<void>((resolve) => (release = resolve));
    await withFleetWorker(stubs, async (taskQueue, track) => {
      const handle = track(
        await env.client.workflow.start(fleetSimulation, {
          taskQueue,
          workflowId: `fleet-${randomUUID()}`,
          args: [{ vehicles: 3, seed: 7, start, speedup: 60, slices: 2 }],
        }),
      );
      await until('every slice is producing its first chunk', when(async () => slices(stubs).length, (n) => n === 2), POLL);
      await handle.signal(fleetPauseSignal);
      stubs.chunkGate = undefined;
      release();
      await until('the first chunks are in', when(() => handle.query(fleetStatusQuery), (s) => s.paused && s.parts.every((p) => p.nextIndex > 0 && !p.running)), POLL);
      await env.sleep('10 minutes');
      assert.equal(slices(stubs).length, 2, 'no chunk starts while paused');

      await handle.signal(fleetResumeSignal);
      const result = await handle.result();
      assert.deepEqual(result, { totals: counts(0, { vehicle: 36, gps: 36 }), vehicles: 3, arrived: 3, endedBy: 'arrival' });

      const calls = slices(stubs);
      assert.ok(stubs.callsOf('produceFleetSlice').every((c) => c.taskQueue === fleetTaskQueue(taskQueue)), 'slices run on the fleet queue');
      assert.equal(stubs.callsOf('produceJourneyChunk').length, 0);
      // Slice 0 merges vehicles 0 and 1 (24 events), slice 1 is vehicle 2 (12 events).
      const expected = [
        { firstVehicle: 0, vehicles: 2, chunks: [0, 9, 19] },
        { firstVehicle: 2, vehicles: 1, chunks: [0, 3, 8] },
      ];
      for (const [index, slice] of expected.entries()) {
        const mine = calls.filter((c) => c.slice.index === index);
        assert.deepEqual(mine[0]!.slice, { index, firstVehicle: slice.firstVehicle, vehicles: slice.vehicles });
        assert.deepEqual(
          mine.map((c) => [c.chunk, c.fromIndex, c.untilEventTime]),
          slice.chunks.map((fromIndex, chunk) => [chunk, fromIndex, new Date(Date.parse(start) + (chunk + 1) * 5 * MINUTE).toISOString()]),
        );
      }
      const [first, afterResume] = [calls[0]!.pacing!, calls[2]!.pacing!];
      assert.equal(first.speedup, 60);
      assert.equal(first.simAnchorMs, Date.parse(start));
      assert.ok(afterResume.wallAnchorMs - first.wallAnchorMs >= 10 * MINUTE, 'the anchor moved by the time spent paused');

      const status = await handle.query(fleetStatusQuery);
      assert.equal(status.paused, false);
      assert.deepEqual(
        status.parts.map((p) => [p.firstVehicle, p.vehicles, p.nextIndex, p.arrived, p.running]),
        [
          [0, 2, 24, true, false],
          [2, 1, 12, true, false],
        ],
      );
      assert.deepEqual(status.totals, result.totals);
      await recordHistory(handle, 'fleetSimulation-slices');
    });
  });

  test("a running chunk's progress reports count in the status once, only forward, until its result replaces them", TIMEOUT, async () => {
    const stubs = new Stubs();
    let release = () => {};
    stubs.chunkGate = new Promise<void>((resolve) => (release = resolve));
    await withFleetWorker(stubs, async (taskQueue, track) => {
      const handle = track(
        await env.client.workflow.start(fleetSimulation, { taskQueue, workflowId: `fleet-${randomUUID()}`, args: [{ vehicles: 3, seed: 7, start, speedup: 60 }] }),
      );
      await until('the slice is producing its first chunk', when(async () => slices(stubs).length, (n) => n === 1), POLL);
      const total = async () => (await handle.query(fleetStatusQuery)).totals.vehicle;
      assert.equal(await total(), 0);
      await handle.signal(fleetProgressSignal, { slice: 0, chunk: 0, acked: counts(0, { vehicle: 4, gps: 4 }) });
      await until('the report counts', when(total, (n) => n === 4), POLL);
      // Repeated, late (smaller), for another chunk, for a slice that does not exist, malformed: all ignored.
      await handle.signal(fleetProgressSignal, { slice: 0, chunk: 0, acked: counts(0, { vehicle: 4, gps: 4 }) });
      await handle.signal(fleetProgressSignal, { slice: 0, chunk: 0, acked: counts(0, { vehicle: 2, gps: 2 }) });
      await handle.signal(fleetProgressSignal, { slice: 0, chunk: 3, acked: counts(0, { vehicle: 9, gps: 9 }) });
      await handle.signal(fleetProgressSignal, { slice: 5, chunk: 0, acked: counts(0, { vehicle: 9, gps: 9 }) });
      await handle.signal(fleetProgressSignal, { slice: 0, chunk: 0, acked: { vehicle: -1 } } as never);
      const status = await handle.query(fleetStatusQuery);
      assert.deepEqual(status.totals, counts(0, { vehicle: 4, gps: 4 }));
      assert.equal(status.parts[0]!.running, true);

      // The next chunk waits at a gate of its own, so the first chunk's result is seen before it moves on.
      let releaseRest = () => {};
      stubs.chunkGate = new Promise<void>((resolve) => (releaseRest = resolve));
      release();
      // The first chunk's result (12 events: 5 + 4 + 3 of vehicles 0, 1, 2 before 08:05) replaces its reports.
      await until('the first chunk is in', when(() => handle.query(fleetStatusQuery), (s) => s.parts[0]!.nextIndex === 12), POLL);
      await handle.signal(fleetProgressSignal, { slice: 0, chunk: 0, acked: counts(0, { vehicle: 11, gps: 11 }) });
      stubs.chunkGate = undefined;
      releaseRest();
      const result = await handle.result();
      assert.deepEqual(result.totals, counts(0, { vehicle: 36, gps: 36 }));
      assert.deepEqual((await handle.query(fleetStatusQuery)).totals, result.totals, 'a report arriving after its chunk ended is not counted');
      await recordHistory(handle, 'fleetSimulation-slice-progress');
    });
  });

  test('durationMinutes ends the journeys early; asFastAsPossible sends without pacing', TIMEOUT, async () => {
    const stubs = new Stubs();
    await withFleetWorker(stubs, async (taskQueue) => {
      const result = await env.client.workflow.execute(fleetSimulation, {
        taskQueue,
        workflowId: `fleet-${randomUUID()}`,
        args: [{ vehicles: 3, start, durationMinutes: 7, asFastAsPossible: true }],
      });
      // Vehicle i leaves i minutes after the start and sends one event a minute until minute 7.
      assert.deepEqual(result, { totals: counts(0, { vehicle: 18, gps: 18 }), vehicles: 3, arrived: 0, endedBy: 'duration' });
      assert.ok(slices(stubs).every((c) => c.pacing === undefined));
      assert.equal(Math.max(...slices(stubs).map((c) => Date.parse(c.untilEventTime))), Date.parse(start) + 7 * MINUTE);
    });
  });

  test('continues as new past its history threshold without losing a slice position', TIMEOUT, async () => {
    const stubs = new Stubs();
    stubs.journeyEvents = 60;
    await withFleetWorker(stubs, async (taskQueue, track) => {
      const handle = track(
        await env.client.workflow.start(fleetSimulation, {
          taskQueue,
          workflowId: `fleet-${randomUUID()}`,
          args: [{ vehicles: 2, start, asFastAsPossible: true, historyThreshold: 50 }],
        }),
      );
      const result = await handle.result();
      assert.deepEqual(result.totals, counts(0, { vehicle: 120, gps: 120 }));
      assert.ok((await handle.query(fleetStatusQuery)).continuedAsNewCount >= 1);
      const calls = slices(stubs);
      assert.deepEqual(
        calls.map((c) => c.chunk),
        calls.map((_, i) => i),
        'chunk numbers go on across continue-as-new',
      );
      const fromIndexes = calls.map((c) => c.fromIndex);
      assert.deepEqual(fromIndexes, [...new Set(fromIndexes)].sort((a, b) => a - b), 'no chunk is produced twice');
    });
  });

  test('a fleet of 10 000 vehicles is eight slice activities at a time', TIMEOUT, async () => {
    const stubs = new Stubs();
    await withFleetWorker(stubs, async (taskQueue) => {
      const result = await env.client.workflow.execute(fleetSimulation, {
        taskQueue,
        workflowId: `fleet-${randomUUID()}`,
        args: [{ vehicles: 10_000, start, durationMinutes: 5, asFastAsPossible: true }],
      });
      assert.equal(result.vehicles, 10_000);
      const calls = slices(stubs);
      assert.equal(calls.length, MAX_SLICES);
      assert.deepEqual(
        calls.map((c) => c.slice).sort((a, b) => a.index - b.index),
        Array.from({ length: MAX_SLICES }, (_, index) => ({ index, firstVehicle: index * 1250, vehicles: 1250 })),
      );
    });
  });

  test('a run started before slicing keeps producing per vehicle on the workflow queue, across continue-as-new', TIMEOUT, async () => {
    const stubs = new Stubs();
    await withFleetWorker(stubs, async (taskQueue, track) => {
      // What a pre-slicing run carries into continue-as-new: one entry per vehicle.
      const vehicles = [0, 1].map((vehicleIndex) => ({ vehicleIndex, nextIndex: 0, arrived: false, producedUntilMs: Date.parse(start), sent: counts(0) }));
      const handle = track(
        await env.client.workflow.start(fleetSimulation, {
          taskQueue,
          workflowId: `fleet-${randomUUID()}`,
          args: [{ vehicles: 2, start, asFastAsPossible: true, state: { vehicles, paused: false, wallAnchorMs: 0, continuedAsNewCount: 1 } }],
        }),
      );
      const result = await handle.result();
      assert.deepEqual(result.totals, counts(0, { vehicle: 24, gps: 24 }));
      assert.equal(stubs.callsOf('produceFleetSlice').length, 0);
      const chunks = stubs.callsOf('produceJourneyChunk');
      assert.ok(chunks.every((c) => c.taskQueue === taskQueue));
      assert.deepEqual(
        chunks.filter((c) => (c.input as JourneyChunkInput).vehicleIndex === 1).map((c) => (c.input as JourneyChunkInput).fromIndex),
        [0, 4, 9],
      );
      const status = await handle.query(fleetStatusQuery);
      assert.deepEqual(
        status.parts.map((p) => [p.firstVehicle, p.vehicles, p.arrived]),
        [
          [0, 1, true],
          [1, 1, true],
        ],
      );
    });
  });

  test('started without input it drives three vehicles from the workflow start', TIMEOUT, async () => {
    const stubs = new Stubs();
    await withFleetWorker(stubs, async (taskQueue, track) => {
      const handle = track(await env.client.workflow.start(fleetSimulation, { taskQueue, workflowId: `fleet-${randomUUID()}`, args: [] }));
      const result = await handle.result();
      assert.equal(result.arrived, 3);
      const started = (await handle.describe()).startTime.getTime();
      assert.ok(Math.abs(Date.parse(slices(stubs)[0]!.fleet.start) - started) < 1000);
    });
  });
});
