// The local target's long activities work in this process (DuckDB queries, waiting on a
// spark-submit), not in a remote service that reports progress. They heartbeat on a timer while
// they run, so that the server notices a dead worker within the activity's heartbeat timeout
// (then retries it elsewhere) instead of at its start-to-close timeout, and so that a
// cancellation reaches them.
import { asyncLocalStorage, type Context } from '@temporalio/activity';

/** Well inside the workflows' heartbeat timeouts (20 s), even on a loaded machine. */
export const HEARTBEAT_EVERY_MS = 5_000;

/**
 * Runs `run`, heartbeating every HEARTBEAT_EVERY_MS until it settles. Outside an activity (a bench
 * or a test calling the function directly) or in a local activity there is nobody to tell: it just
 * runs.
 */
export async function heartbeating<T>(run: (ctx: Context | undefined) => Promise<T>): Promise<T> {
  const ctx = asyncLocalStorage.getStore();
  if (!ctx) return run(undefined);
  // A local activity has no heartbeat (its workflow task's timeout notices a dead worker), but
  // receives cancellation all the same.
  if (ctx.info.isLocal) return run(ctx);
  ctx.heartbeat();
  const timer = setInterval(() => ctx.heartbeat(), HEARTBEAT_EVERY_MS);
  try {
    return await run(ctx);
  } finally {
    clearInterval(timer);
  }
}
