// The one way tests and benches wait: poll a probe until it returns a value, or fail naming what
// did not happen.
import { setTimeout as sleep } from 'node:timers/promises';

export interface UntilOptions {
  /** Default 120 s. */
  timeoutMs?: number;
  /** The pause between probes; default 500 ms. */
  everyMs?: number;
}

/** Thrown by a probe to say "not yet, and this is what I saw": `until` polls on, and its timeout error ends with the last such message. */
export class NotYet extends Error {
  override name = 'NotYet';
}

/**
 * Polls `probe` until it returns a value other than undefined; fails naming what did not happen,
 * after how long, and the last value `probe` saw if it described it by throwing NotYet. Any other
 * error of `probe` fails the wait at once.
 */
export async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, options: UntilOptions = {}): Promise<T> {
  const { timeoutMs = 120_000, everyMs = 500 } = options;
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      if (!(err instanceof NotYet)) throw err;
      last = err.message;
    }
    if (Date.now() >= deadline) throw new Error(`timed out after ${Number((timeoutMs / 1000).toFixed(1))} s waiting for ${what}${last ? `; ${last}` : ''}`);
    await sleep(Math.max(0, Math.min(everyMs, deadline - Date.now())));
  }
}

/** A probe for `until`: `read`'s value once `ok` holds of it; until then a timeout shows the last value read. */
export function when<T>(read: () => Promise<T> | T, ok: (value: T) => boolean): () => Promise<T> {
  return async () => {
    const value = await read();
    if (ok(value)) return value;
    throw new NotYet(`last value: ${JSON.stringify(value)}`);
  };
}

/**
 * `promise`'s outcome, or `onTimeout()`'s once `timeoutMs` passed first. The timer is cleared as
 * soon as the race is decided: a `sleep()` left behind in a race holds the test file's process open
 * until it fires, long after its tests ended.
 */
export async function within<T, U>(promise: Promise<T>, timeoutMs: number, onTimeout: () => U | Promise<U>): Promise<T | U> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<U>((resolve, reject) => {
    timer = setTimeout(() => {
      Promise.resolve().then(onTimeout).then(resolve, reject);
    }, timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
