// Debian's Prometheus for `smartcity stack up --metrics`: the scrape config and alert rules of
// ops/prometheus, copied under <dataDir>/prometheus with a targets file naming the local worker's
// metrics endpoint; its database in the same folder, its UI and API on SMARTCITY_PROMETHEUS_PORT.
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT, type Config } from '../config';
import { MissingToolError } from './tools';

/** Where Debian's `prometheus` package puts the server. */
export const PROMETHEUS_BINARY = '/usr/bin/prometheus';
const OPS_PROMETHEUS = join(PROJECT_ROOT, 'ops', 'prometheus');

export function prometheusUrl(config: Config): string {
  return `http://127.0.0.1:${config.metrics.prometheusPort}`;
}

export function prometheusCommand(config: Config): string[] {
  if (!existsSync(PROMETHEUS_BINARY)) {
    throw new MissingToolError(
      `Prometheus is not installed (${PROMETHEUS_BINARY}): install Debian's package (apt-get install prometheus), or run Prometheus and Grafana with Docker (see docs/metrics.md)`,
    );
  }
  if (config.metrics.port === 0) throw new Error('SMARTCITY_METRICS_PORT is 0: the worker serves no metrics for Prometheus to scrape');
  const dir = join(config.dataDir, 'prometheus');
  mkdirSync(join(dir, 'targets'), { recursive: true });
  for (const file of ['prometheus.yml', 'alerts.yml']) copyFileSync(join(OPS_PROMETHEUS, file), join(dir, file));
  writeFileSync(join(dir, 'targets', 'local.json'), `${JSON.stringify([{ targets: [`127.0.0.1:${config.metrics.port}`], labels: { deployment: 'local' } }])}\n`);
  return [
    PROMETHEUS_BINARY,
    `--config.file=${join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${config.metrics.prometheusPort}`,
    '--log.level=warn',
  ];
}

export async function prometheusReady(config: Config): Promise<boolean> {
  const response = await fetch(`${prometheusUrl(config)}/-/ready`, { signal: AbortSignal.timeout(1_000) });
  return response.ok;
}
