import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { loadConfig, type Config } from '../config';
import { renderHtml } from '../report/html';
import { gatherReport, type PipelineReport } from '../report/model';
import { renderTerminal } from '../report/terminal';
import { parseCommandLine } from './args';

export const REPORT_USAGE = `smartcity report [--json] [--html FILE]

  The pipeline's state: rows per source in raw, quarantine, curated and the warehouse, every window
  with its status, quality checks and per-stage timings, and links to the runs in the Temporal Web
  UI. Reads the local target's lake, catalog and warehouse files (read-only, beside a running
  worker), or on SMARTCITY_TARGET=aws the Glue catalog, Athena, the quarantine bucket and Redshift
  (queries only; AWS credentials from the default chain), and Temporal when it is up; works before
  anything was loaded too.

  --json        print the report as JSON (per source the rows of each layer, the loaded windows, …)
  --html FILE   also write a self-contained HTML page (opens offline): a map of each vehicle's route
                with incidents and cameras, speed and weather over time, per-window load status`;

/** Writes the HTML report (with its charts' data) and returns its absolute path. */
export async function writeHtmlReport(config: Config, file: string, options: { since?: Date } = {}): Promise<{ path: string; report: PipelineReport }> {
  const report = await gatherReport(config, { ...options, series: true });
  const path = resolve(file);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, renderHtml(report));
  return { path, report };
}

export async function reportCommand(argv: string[]): Promise<number> {
  const { values } = parseCommandLine(
    argv,
    { json: { type: 'boolean' }, html: { type: 'string' } },
    z.object({ json: z.boolean().optional(), html: z.string().min(1, 'needs a file name').optional() }),
  );
  const config = loadConfig();
  let report: PipelineReport;
  if (values.html !== undefined) {
    const written = await writeHtmlReport(config, values.html);
    report = written.report;
    console.error(`HTML report written to ${written.path}`);
  } else {
    report = await gatherReport(config);
  }
  if (values.json) {
    const { series: _series, ...json } = report;
    console.log(JSON.stringify(json, null, 2));
  } else {
    for (const line of renderTerminal(report)) console.log(line);
  }
  return 0;
}
