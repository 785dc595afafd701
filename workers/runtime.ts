// The worker process's Temporal Runtime: the one logger (human or JSON lines, logging/) for the
// SDK's, the workflows' and the activities' log calls and for the SDK core's own lines, and, unless
// SMARTCITY_METRICS_PORT is 0, the SDK's Prometheus exporter, which also serves the pipeline's
// metrics (metrics/). Installed once, before the worker connects.
import { Runtime } from '@temporalio/worker';
import type { Config } from '../config';
import { configureLogging } from '../logging';
import { HISTOGRAM_BUCKETS } from '../metrics';

/** The address the worker's metrics are scraped at, or undefined when they are off. */
export function metricsAddress(config: Config): string | undefined {
  return config.metrics.port === 0 ? undefined : `${config.metrics.host}:${config.metrics.port}`;
}

export function installWorkerRuntime(config: Config): void {
  const logger = configureLogging(config);
  const bindAddress = metricsAddress(config);
  try {
    Runtime.install({
      logger,
      telemetryOptions: {
        // Without `forward`, the core prints its lines itself, in its own format.
        logging: { filter: { core: 'WARN', other: 'ERROR' }, forward: {} },
        ...(bindAddress !== undefined && {
          metrics: {
            prometheus: {
              bindAddress,
              // Prometheus conventions: _total on counters, the unit in a histogram's name, seconds.
              countersTotalSuffix: true,
              unitSuffix: true,
              useSecondsForDurations: true,
              histogramBucketOverrides: HISTOGRAM_BUCKETS,
            },
          },
        }),
      },
    });
  } catch (err) {
    if (bindAddress !== undefined && /address already in use/i.test((err as Error).message)) {
      throw new Error(
        `port ${config.metrics.port} (worker metrics) is already in use by another process; choose another port with SMARTCITY_METRICS_PORT, or 0 to serve no metrics`,
        { cause: err },
      );
    }
    throw err;
  }
}
