// The `smartcity` command. Each subcommand parses its own options (strictly) and returns an exit
// code; errors become one line on stderr: usage and config errors exit 2, failures exit 1.
import { ConfigError, loadConfig, type LogFormat } from '../config';
import { configureLogging, log } from '../logging';
import { UsageError } from './args';
import { awsCommand, AWS_USAGE } from './aws';
import { demoCommand, DEMO_USAGE } from './demo';
import { pipelineCommand, PIPELINE_USAGE } from './pipeline';
import { reportCommand, REPORT_USAGE } from './report';
import { simulateCommand, SIMULATE_USAGE } from './simulate';
import { startCommand, START_USAGE } from './start';
import { stackCommand, STACK_USAGE } from './stack';
import { workerCommand, WORKER_USAGE } from './worker';

interface Command {
  summary: string;
  usage: string;
  run: (argv: string[]) => Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  stack: { summary: 'start, stop or inspect the local Kafka broker and Temporal dev server', usage: STACK_USAGE, run: stackCommand },
  simulate: { summary: 'stream a simulated fleet into Kafka', usage: SIMULATE_USAGE, run: simulateCommand },
  worker: { summary: 'run the Temporal worker (workflows + activities) until stopped', usage: WORKER_USAGE, run: workerCommand },
  pipeline: { summary: 'start, inspect, pause, resume, backfill or stop the pipeline controller', usage: PIPELINE_USAGE, run: pipelineCommand },
  report: { summary: 'rows per source and layer, windows, quality checks, timings, Web UI links (--json, --html)', usage: REPORT_USAGE, run: reportCommand },
  start: { summary: 'run the local pipeline (stack, worker, controller, live fleet) until Ctrl-C', usage: START_USAGE, run: startCommand },
  demo: { summary: 'the whole pipeline in ~3 minutes: live + backfilled windows loaded and checked, then the report', usage: DEMO_USAGE, run: demoCommand },
  aws: { summary: 'write the aws target\'s config from a deployed stack (infra/)', usage: AWS_USAGE, run: awsCommand },
};

function help(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  return [
    'usage: smartcity <command> [options]',
    '',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    'smartcity <command> --help shows a command\'s options.',
  ].join('\n');
}

/**
 * Sets the process's logger from the configuration and returns its format. A configuration that
 * does not load is the command's to report (ConfigError below), in the default format.
 */
function setUpLogging(): LogFormat {
  try {
    const config = loadConfig();
    configureLogging(config);
    return config.log.format;
  } catch {
    return 'human';
  }
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const format = setUpLogging();
  // For people, a failure is one plain line; in JSON a log line like every other, with the command.
  const fail = (text: string) => {
    if (format === 'json') log.error(text, { command: name });
    else console.error(text);
  };
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(help());
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    fail(`smartcity: unknown command "${name}"\n\n${help()}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(command.usage);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      fail(`smartcity ${name}: ${err.message}\n(see \`smartcity ${name} --help\`)`);
      return 2;
    }
    if (err instanceof ConfigError) {
      fail(`smartcity: ${err.message}`);
      return 2;
    }
    fail(`smartcity ${name}: ${(err as Error).message ?? String(err)}`);
    return 1;
  }
}

if (require.main === module) {
  // A promise nobody awaited that rejects is a bug to fix where it happens, but it must not take a
  // long-running command (the worker, start, demo) down with everything it runs: say so, carry on.
  process.on('unhandledRejection', (reason) => {
    console.error('smartcity: unhandled promise rejection (a bug: please report it); carrying on:', reason);
  });
  // `smartcity stack status | head`: the reader went away; that is the end of the output, not a crash.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
