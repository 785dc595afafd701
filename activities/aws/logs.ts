// CloudWatch Logs: the tail of a log stream, the evidence a failed Glue job run carries.
import { GetLogEventsCommand } from '@aws-sdk/client-cloudwatch-logs';
import type { AwsDeps } from './clients';
import { awsCall } from './errors';

/**
 * The last `lines` messages of a stream, oldest first; a note instead when the stream cannot be
 * read, because evidence must never hide the failure it explains.
 */
export async function logTail(deps: AwsDeps, logGroupName: string, logStreamName: string, lines = 40): Promise<string> {
  const where = `${logGroupName}/${logStreamName}`;
  try {
    const res = await awsCall(`logs:GetLogEvents on ${where}`, () =>
      deps.clients.logs.send(new GetLogEventsCommand({ logGroupName, logStreamName, startFromHead: false, limit: lines })),
    );
    const messages = (res.events ?? []).map((e) => (e.message ?? '').trimEnd());
    return messages.length > 0 ? messages.join('\n') : `(log stream ${where} is empty)`;
  } catch (err) {
    return `(log stream ${where} could not be read: ${err instanceof Error ? err.message : String(err)})`;
  }
}
