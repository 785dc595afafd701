// One remote AWS operation as one activity: start it (or join the one already started for the
// same work), wait for it with a heartbeat every poll, fetch its result. The heartbeat carries the
// remote handle, so a retried activity reconnects to the run instead of starting a second one.
// Only a cancellation requested by the workflow stops the remote work: a worker shutdown or a
// heartbeat timeout leaves it running for the next attempt to join.
import { Context, log } from '@temporalio/activity';
import { CancelledFailure } from '@temporalio/common';
import type { AwsDeps } from './clients';

export interface RemoteOperation<H, R> {
  /** For messages, e.g. 'Glue job run of smartcity-curate for 2026-…/2026-…'. */
  what: string;
  /** The run already started for the same work, if any (retry safety). */
  find?(): Promise<H | undefined>;
  start(): Promise<H>;
  /** Throws (a non-retryable ApplicationFailure with evidence) when the remote work failed. */
  poll(handle: H): Promise<{ done: false; progress?: unknown } | { done: true; result: R }>;
  cancel(handle: H): Promise<void>;
}

interface Heartbeat<H> {
  handle: H;
  progress?: unknown;
}

function resumedHandle<H>(details: unknown): H | undefined {
  if (typeof details !== 'object' || details === null || !('handle' in details)) return undefined;
  return (details as Heartbeat<H>).handle ?? undefined;
}

/** True only when the workflow asked for the cancellation (not shutdown, timeout, pause or reset). */
function cancelledByWorkflow(err: unknown, ctx: Context): boolean {
  return err instanceof CancelledFailure && err.message === 'CANCELLED' && ctx.cancellationDetails?.cancelRequested !== false;
}

export async function runRemoteOperation<H, R>(deps: AwsDeps, op: RemoteOperation<H, R>): Promise<R> {
  const ctx = Context.current();
  let handle = resumedHandle<H>(ctx.info.heartbeatDetails);
  if (handle !== undefined) {
    log.info(`resuming ${op.what} from the last heartbeat`, { handle });
  } else {
    handle = await op.find?.();
    if (handle !== undefined) log.info(`joining ${op.what}, already started`, { handle });
    else handle = await op.start();
  }
  const heartbeat: Heartbeat<H> = { handle };
  ctx.heartbeat(heartbeat);
  try {
    for (;;) {
      const status = await op.poll(handle);
      if (status.done) return status.result;
      ctx.heartbeat({ handle, ...(status.progress !== undefined && { progress: status.progress }) });
      // Rejects with CancelledFailure as soon as a cancellation arrives with a heartbeat response.
      await ctx.sleep(deps.pollIntervalMs);
    }
  } catch (err) {
    if (cancelledByWorkflow(err, ctx)) {
      log.info(`workflow cancelled: stopping ${op.what}`, { handle });
      try {
        await op.cancel(handle);
      } catch (cancelErr) {
        log.warn(`could not stop ${op.what}`, { handle, error: String(cancelErr) });
      }
    }
    throw err;
  }
}
