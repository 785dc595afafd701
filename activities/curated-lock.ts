// Curate rewrites whole hour partitions of the curated layer (the window's rows plus its
// neighbours'), and a reader listing an hour folder while Spark swaps it would see it empty. Within
// a worker, a writer of curated data (curate) has the layer to itself; its readers (loads, checks)
// share it. Turns are first come, first served: a waiting curate holds back readers that come
// after it, so a stream of loads never starves it.
type Mode = 'read' | 'write';

let readers = 0;
let writing = false;
const waiting: { mode: Mode; wake: () => void }[] = [];

function admit(): void {
  for (let next = waiting[0]; next; next = waiting[0]) {
    if (writing || (next.mode === 'write' && readers > 0)) return;
    waiting.shift();
    if (next.mode === 'read') readers += 1;
    else writing = true;
    next.wake();
  }
}

/** Runs `run` with the curated layer: `write` alone, `read` beside other readers. */
export async function withCuratedLayer<T>(mode: Mode, run: () => Promise<T>): Promise<T> {
  await new Promise<void>((wake) => {
    waiting.push({ mode, wake });
    admit();
  });
  try {
    return await run();
  } finally {
    if (mode === 'read') readers -= 1;
    else writing = false;
    admit();
  }
}
