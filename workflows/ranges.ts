// Sets of time as sorted, merged [from, to) ranges of epoch ms: "which windows were loaded" stays a
// handful of numbers however long the pipeline runs, so it survives continue-as-new whole.
export type Range = [number, number];

export function addRange(ranges: readonly Range[], from: number, to: number): Range[] {
  const kept: Range[] = [];
  let [start, end] = [from, to];
  for (const [a, b] of ranges) {
    if (b < start || a > end) kept.push([a, b]);
    else [start, end] = [Math.min(start, a), Math.max(end, b)];
  }
  kept.push([start, end]);
  return kept.sort((x, y) => x[0] - y[0]);
}

export function removeRange(ranges: readonly Range[], from: number, to: number): Range[] {
  return ranges.flatMap(([a, b]): Range[] => {
    if (b <= from || a >= to) return [[a, b]];
    const left: Range[] = a < from ? [[a, from]] : [];
    const right: Range[] = b > to ? [[to, b]] : [];
    return [...left, ...right];
  });
}

export function covers(ranges: readonly Range[], from: number, to: number): boolean {
  return ranges.some(([a, b]) => a <= from && to <= b);
}
