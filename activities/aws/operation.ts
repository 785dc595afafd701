// One remote AWS operation as one activity: start it (or join the one already started for the
// same work), wait for it with a heartbeat every poll, fetch its result. The heartbeat carries the
// remote handle, so a retried activity reconnects to the run instead of starting a second one.
// Only a cancellation requested by the workflow stops the remote work: a worker shutdown or a
// heartbeat timeout leaves it running for the next attempt to join.
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Context, log } from '@temporalio/activity';
import { CancelledFailure } from '@temporalio/common';
import type { AwsDeps } from './clients';

export interface RemoteOperation<H, R> {
  /** For messages, e.g. 'Glue job run of smartcity-curate for 2026-…/2026-…'. */
  what: string;
  /** The run already started for the same work, if any (retry safety). */
  find?(): Promise<H | undefined>;
  start(): Promise<H>;
  /**
   * Throws (a non-retryable ApplicationFailure with evidence) when the remote work failed. A poll
   * that moved the work on to a new remote handle (the next phase of a sequence) returns it as
   * `handle`: from then on it is polled, heartbeated and cancelled instead.
   */
  poll(handle: H): Promise<{ done: false; progress?: unknown; handle?: H } | { done: true; result: R }>;
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
  // A local activity (a chunk's window loading) has no heartbeat: a retry finds the operation with
  // op.find, or starts it again (every operation is safe to repeat).
  const beat = (details: Heartbeat<H>) => ctx.info.isLocal || ctx.heartbeat(details);
  beat({ handle });
  try {
    for (;;) {
      const status = await op.poll(handle);
      if (status.done) return status.result;
      if (status.handle !== undefined) handle = status.handle;
      beat({ handle, ...(status.progress !== undefined && { progress: status.progress }) });
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

/**
 * Runs an operation to its end outside an activity (the CLI's report on the aws target): no
 * heartbeat and nothing to resume from. Past `deadlineMs` it is stopped and the wait fails.
 */
export async function awaitOperation<H, R>(deps: AwsDeps, op: RemoteOperation<H, R>, deadlineMs: number): Promise<R> {
  const deadline = Date.now() + deadlineMs;
  let handle: H = (await op.find?.()) ?? (await op.start());
  for (;;) {
    const status = await op.poll(handle);
    if (status.done) return status.result;
    if (status.handle !== undefined) handle = status.handle;
    if (Date.now() >= deadline) {
      await op.cancel(handle);
      throw new Error(`${op.what} did not finish within ${Math.round(deadlineMs / 1000)} s, so it was stopped`);
    }
    await sleep(deps.pollIntervalMs);
  }
}

/**
 * Several remote operations as one, for an activity that waits on more than one (a load's
 * per-source statements, a quality check's Athena query and Redshift statement): the heartbeat
 * then holds every handle, so a retry resumes all of them rather than mistaking one for another.
 * Cancelling stops each part that has not finished.
 */
type HandleOf<O> = O extends RemoteOperation<infer H, unknown> ? H : never;
type ResultOf<O> = O extends RemoteOperation<unknown, infer R> ? R : never;

export function allOperations<P extends Record<string, RemoteOperation<unknown, unknown>>>(
  what: string,
  parts: P,
): RemoteOperation<{ [K in keyof P]: HandleOf<P[K]> }, { [K in keyof P]: ResultOf<P[K]> }> {
  const keys = Object.keys(parts) as (keyof P & string)[];
  const finished = new Map<string, unknown>();
  type Handles = { [K in keyof P]: HandleOf<P[K]> };
  return {
    what,
    async start() {
      const handles: Record<string, unknown> = {};
      // One after another: a failed start leaves the earlier ones to be joined (by token) on retry.
      for (const key of keys) handles[key] = (await parts[key]!.find?.()) ?? (await parts[key]!.start());
      return handles as Handles;
    },
    async poll(handles) {
      let moved: Handles | undefined;
      for (const key of keys) {
        if (finished.has(key)) continue;
        const status = await parts[key]!.poll((moved ?? handles)[key]);
        if (status.done) finished.set(key, status.result);
        else if (status.handle !== undefined) moved = { ...(moved ?? handles), [key]: status.handle };
      }
      if (finished.size < keys.length) return { done: false, progress: { finished: keys.filter((k) => finished.has(k)) }, ...(moved && { handle: moved }) };
      return { done: true, result: Object.fromEntries(finished) as { [K in keyof P]: ResultOf<P[K]> } };
    },
    async cancel(handles) {
      await Promise.all(keys.filter((k) => !finished.has(k)).map((k) => parts[k]!.cancel(handles[k])));
    },
  };
}

/** Which of a sequence's two operations is running, and its handle. */
export type SequenceHandle<H1, H2> = { phase: 'first'; handle: H1 } | { phase: 'then'; handle: H2 };

/**
 * Two remote operations one after the other, as one (a load's external schema, then its
 * statements): `then` starts once `first` has finished. The handle names the phase, so a retry
 * resumes whichever was running, and a cancel stops that one. `then` is called for the second
 * operation whenever it is needed (also on a resumed attempt): it must give the same one each time.
 */
export function sequenceOperations<H1, H2, R>(what: string, first: RemoteOperation<H1, unknown>, then: () => RemoteOperation<H2, R>): RemoteOperation<SequenceHandle<H1, H2>, R> {
  const startThen = async (): Promise<SequenceHandle<H1, H2>> => {
    const op = then();
    return { phase: 'then', handle: (await op.find?.()) ?? (await op.start()) };
  };
  return {
    what,
    async find() {
      const handle = await first.find?.();
      return handle === undefined ? undefined : { phase: 'first', handle };
    },
    start: async () => ({ phase: 'first', handle: await first.start() }),
    async poll(h) {
      // A handle of another shape (heartbeated by a version that ran the work as one operation)
      // cannot be resumed here: the work starts over, from the first operation.
      if (h?.phase !== 'first' && h?.phase !== 'then') return { done: false, progress: { restarted: true }, handle: { phase: 'first', handle: await first.start() } };
      if (h.phase === 'then') {
        const status = await then().poll(h.handle);
        if (status.done) return status;
        return { done: false, progress: status.progress, ...(status.handle !== undefined && { handle: { phase: 'then', handle: status.handle } }) };
      }
      const status = await first.poll(h.handle);
      if (!status.done) {
        return { done: false, progress: { first: status.progress }, ...(status.handle !== undefined && { handle: { phase: 'first', handle: status.handle } }) };
      }
      return { done: false, progress: { first: 'done' }, handle: await startThen() };
    },
    cancel: (h) => (h.phase === 'first' ? first.cancel(h.handle) : then().cancel(h.handle)),
  };
}

/**
 * The idempotency token (Redshift Data ClientToken, Athena ClientRequestToken) of one request of
 * the current activity: the same for every retry of this activity, different for another workflow
 * run of the same window (a forced backfill) and for different SQL (AWS rejects a reused token
 * with changed parameters). 64 hex characters fit both services' limits.
 */
export function idempotencyToken(purpose: string, sql: string): string {
  const info = Context.current().info;
  const scope = [info.workflowExecution?.workflowId, info.workflowExecution?.runId, info.activityId, purpose, sql];
  return createHash('sha256').update(JSON.stringify(scope)).digest('hex');
}
