// ops/: the Prometheus config and alert rules pass promtool (config check, and the rule unit tests
// of alerts.test.yml fire every alert), and the Grafana dashboard asks only for metrics the worker
// exports, from the datasource the provisioning defines.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MetricMeter } from '@temporalio/common';
import { parse } from 'yaml';
import { z } from 'zod';
import { PROJECT_ROOT } from '../../config';
import { metricFamilies } from '../../metrics';
import { PROMTOOL } from '../helpers/prometheus';

const ops = (path: string) => join(PROJECT_ROOT, 'ops', path);

function promtool(...args: string[]): string {
  const result = spawnSync(PROMTOOL, args, { encoding: 'utf8', cwd: ops('prometheus') });
  assert.equal(result.status, 0, `promtool ${args.join(' ')}:\n${result.stdout}${result.stderr}`);
  return result.stdout;
}

/** The names the exposition carries for the pipeline's families: what a query can select. */
function exportedNames(): Set<string> {
  const names = new Set<string>();
  const add = (kind: 'counter' | 'histogram' | 'gauge') => (name: string) => {
    if (kind === 'counter') names.add(`${name}_total`);
    else if (kind === 'gauge') names.add(name);
    else for (const part of ['bucket', 'sum', 'count']) names.add(`${name}_seconds_${part}`);
    return { add() {}, record() {}, set() {}, withTags: () => undefined };
  };
  const meter = {
    createCounter: add('counter'),
    createHistogram: add('histogram'),
    createGauge: add('gauge'),
    withTags: () => meter,
  } as unknown as MetricMeter;
  metricFamilies(meter);
  return names;
}

const dashboardSchema = z.object({
  uid: z.string(),
  panels: z.array(
    z.looseObject({
      type: z.string(),
      title: z.string(),
      datasource: z.object({ type: z.literal('prometheus'), uid: z.string() }).optional(),
      targets: z.array(z.object({ expr: z.string(), datasource: z.object({ uid: z.string() }) }).loose()).optional(),
    }),
  ),
});

describe('ops/prometheus', () => {
  test('the scrape config and its rule file pass promtool check config', () => {
    assert.match(promtool('check', 'config', 'prometheus.yml'), /SUCCESS: 10 rules found/);
  });

  test('every alert rule fires on the series alerts.test.yml feeds it', () => {
    promtool('test', 'rules', 'alerts.test.yml');
    const rules = (parse(readFileSync(ops('prometheus/alerts.yml'), 'utf8')) as { groups: { rules: { alert: string }[] }[] }).groups.flatMap((g) => g.rules);
    const tested = new Set([...readFileSync(ops('prometheus/alerts.test.yml'), 'utf8').matchAll(/alertname: (\w+)/g)].map((m) => m[1]));
    const untested = rules.map((r) => r.alert).filter((name) => !tested.has(name));
    // Ratio and quantile rules need many series to fire; they are checked by promtool's syntax pass above.
    assert.deepEqual(untested.sort(), ['SmartcityControllerDown', 'SmartcityMicroBatchSlow', 'SmartcityQuarantineRising']);
  });

  test('the rules ask only for metrics the worker exports', () => {
    const known = exportedNames();
    for (const name of readFileSync(ops('prometheus/alerts.yml'), 'utf8').match(/\bsmartcity_\w+/g) ?? []) assert.ok(known.has(name), `alerts.yml: ${name} is not exported`);
  });
});

describe('ops/grafana', () => {
  const dashboard = dashboardSchema.parse(JSON.parse(readFileSync(ops('grafana/dashboards/smartcity.json'), 'utf8')));
  const datasources = parse(readFileSync(ops('grafana/provisioning/datasources/prometheus.yml'), 'utf8')) as { datasources: { uid: string }[] };

  test('every panel queries the provisioned Prometheus', () => {
    const uid = datasources.datasources[0]!.uid;
    const queried = dashboard.panels.filter((p) => p.type !== 'row');
    assert.ok(queried.length >= 10);
    for (const panel of queried) {
      assert.equal(panel.datasource?.uid, uid, panel.title);
      assert.ok(panel.targets?.length, `${panel.title} has no query`);
      for (const t of panel.targets) assert.equal(t.datasource.uid, uid, panel.title);
    }
  });

  test('the panels ask only for metrics the worker exports, and show every pipeline family', () => {
    const known = exportedNames();
    const asked = new Set(dashboard.panels.flatMap((p) => (p.targets ?? []).flatMap((t) => t.expr.match(/\bsmartcity_\w+/g) ?? [])));
    for (const name of asked) assert.ok(known.has(name), `the dashboard asks for ${name}, which the worker does not export`);
    const families = new Set([...known].map((n) => n.replace(/_(total|seconds_bucket|seconds_sum|seconds_count)$/, '')));
    const shown = new Set([...asked].map((n) => n.replace(/_(total|seconds_bucket|seconds_sum|seconds_count)$/, '')));
    // Produced is acknowledged plus failed, both shown; the consumed total feeds the quarantine alert.
    assert.deepEqual([...families].filter((f) => !shown.has(f)).sort(), ['smartcity_events_produced', 'smartcity_ingest_consumed_records']);
  });
});
