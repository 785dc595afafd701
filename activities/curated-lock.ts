// Curate rewrites whole hour partitions of the curated layer (the window's rows plus its
// neighbours'), and a reader listing an hour folder while Spark swaps it would see it empty. Within
// a worker, every writer and reader of curated data takes turns through this queue.
let tail: Promise<unknown> = Promise.resolve();

export function withCuratedLayer<T>(run: () => Promise<T>): Promise<T> {
  const result = tail.then(run);
  tail = result.catch(() => undefined);
  return result;
}
