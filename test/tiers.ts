// Which test file runs in which tier, and how (scripts/test.sh → test/runner.ts). Every
// *.test.ts file not named here is in the fast tier (`npm test`) and may run beside another file.

/**
 * The system tier (`npm run test:system`): long tests that must run against real time — whole
 * processes started and stopped as a user would, fleets at real speed, a dashboard filling up.
 */
export const SYSTEM_FILES: readonly string[] = [
  'test/e2e/demo.test.ts',
  'test/integration/broker-outage.test.ts',
  'test/integration/curate-failover.test.ts',
  'test/integration/duplicates.test.ts',
  'test/integration/fleet-capacity.test.ts',
  'test/integration/metrics.test.ts',
  'test/integration/spark-cluster.test.ts',
  'test/integration/stop-paths.test.ts',
];

/**
 * Files that run with nothing beside them: they measure time or capacity on the machine, or stop
 * and start a shared component other files use.
 */
export const SOLO_FILES: readonly string[] = [
  // SIGKILLs the test stack's Spark Connect server, which other files' curates use.
  'test/integration/spark-runner.test.ts',
  // Measures how soon activities start beside a 1,000-vehicle fleet.
  'test/integration/fleet-capacity.test.ts',
];

/** Files started first, longest first, so the long ones do not end the run alone. */
export const LONG_FILES: readonly string[] = [
  'test/integration/spark-runner.test.ts',
  'test/integration/fleet-capacity.test.ts',
  'test/integration/metrics.test.ts',
  'test/integration/broker-outage.test.ts',
  'test/integration/curate-failover.test.ts',
  'test/e2e/demo.test.ts',
  'test/integration/logs.test.ts',
  'test/e2e/pipeline.test.ts',
  'test/integration/backfill-chunk.test.ts',
];
