import { loadConfig } from '../config';
import { stackDown, stackStatus, stackUp, type StackInfo } from '../stack';
import { parseCommandLine, UsageError } from './args';
import { z } from 'zod';

export const STACK_USAGE = `smartcity stack up [--metrics] | down | status [--json]

  up       start the Temporal dev server (gRPC, Web UI) and the Kafka broker, wait until both
           answer, create the topics, print the URLs (state kept under .data/); --metrics also
           starts Debian's Prometheus (SMARTCITY_PROMETHEUS_PORT, default 9090) scraping the
           worker's metrics (SMARTCITY_METRICS_PORT) with the alert rules of ops/prometheus
  down     stop exactly what \`up\` started
  status   show each component`;

export function printStack(info: StackInfo, out: (line: string) => void): void {
  for (const c of info.components) {
    const state = c.state === 'running' ? (c.answering ? 'running' : 'running, not answering') : c.answering ? 'stopped (ports answer: another process?)' : 'stopped';
    out(`  ${c.label.padEnd(20)} ${state.padEnd(24)} ports ${c.ports.join(', ')}${c.pid ? `  pid ${c.pid}` : ''}`);
  }
  out(`  Temporal gRPC        ${info.urls.temporal}`);
  out(`  Temporal Web UI      ${info.urls.temporalUi}`);
  out(`  Kafka bootstrap      ${info.urls.kafka}`);
  if (info.urls.prometheus) out(`  Prometheus           ${info.urls.prometheus}`);
}

export async function stackCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(
    argv,
    { json: { type: 'boolean' }, metrics: { type: 'boolean' } },
    z.object({ json: z.boolean().optional(), metrics: z.boolean().optional() }),
    { max: 1 },
  );
  const action = positionals[0];
  const config = loadConfig();
  const out = (line: string) => console.log(line);
  const emit = (info: StackInfo) => (values.json ? out(JSON.stringify(info, null, 2)) : printStack(info, out));
  switch (action) {
    case 'up': {
      const info = await stackUp(config, (line) => console.error(line), { metrics: values.metrics === true });
      if (!values.json) out('stack is up:');
      emit(info);
      return 0;
    }
    case 'down': {
      const stopped = await stackDown(config);
      out(stopped.length ? `stopped: ${stopped.join(', ')}` : 'nothing was running');
      return 0;
    }
    case 'status': {
      const info = await stackStatus(config);
      emit(info);
      return info.components.every((c) => c.state === 'running' && c.answering) ? 0 : 3;
    }
    default:
      throw new UsageError(action === undefined ? `stack needs an action: up, down or status` : `unknown stack action "${action}"; expected up, down or status`);
  }
}
