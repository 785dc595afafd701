// Seeded pseudo-random numbers for the fleet simulation. Math.random cannot be seeded, and a
// journey must replay identically: a resumed journey is regenerated and its first events skipped.

const GOLDEN_GAMMA = 0x9e3779b9;
const TWO_POW_32 = 4294967296;

/** MurmurHash3's finaliser: every input bit affects every output bit, and it is a bijection. */
function fmix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** FNV-1a over the UTF-16 code units, finalised so that similar labels give unrelated keys. */
function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return fmix32(h);
}

/**
 * A SplitMix32 stream (Weyl sequence through a bit mixer): tiny state, fast, good enough for a
 * simulation, not for cryptography.
 */
export class Rng {
  /** Identifies the stream; children are derived from it, never from the moving state. */
  private readonly key: number;
  private state: number;

  constructor(seed: number | string) {
    this.key = hash32(String(seed));
    this.state = this.key;
  }

  /**
   * An independent stream named by `label`. It depends only on this stream's seed and the label,
   * not on how many numbers were drawn before, so adding a draw somewhere never reshuffles the
   * streams of other vehicles or sources.
   */
  fork(label: string | number): Rng {
    return new Rng(`${this.key}/${label}`);
  }

  uint32(): number {
    this.state = (this.state + GOLDEN_GAMMA) | 0;
    return fmix32(this.state);
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.uint32() / TWO_POW_32;
  }

  /** Uniform in [min, max). */
  range(min: number, max: number): number {
    return min + (max - min) * this.float();
  }

  /** Uniform integer in [min, max], both included. */
  int(min: number, max: number): number {
    return min + Math.floor(this.float() * (max - min + 1));
  }

  chance(probability: number): boolean {
    return this.float() < probability;
  }

  /** Gaussian (Box–Muller). */
  normal(mean = 0, sd = 1): number {
    const u1 = 1 - this.float(); // in (0, 1]: log(0) would be -Infinity
    const u2 = this.float();
    return mean + sd * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** Waiting time to the next arrival of a Poisson process whose mean interval is `mean`. */
  exponential(mean: number): number {
    return -Math.log(1 - this.float()) * mean;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('Rng.pick: no items to pick from');
    return items[Math.floor(this.float() * items.length)]!;
  }

  /** Picks a value with probability proportional to its weight. */
  weighted<T>(entries: readonly (readonly [T, number])[]): T {
    const total = entries.reduce((sum, [, weight]) => sum + weight, 0);
    if (!(total > 0)) throw new Error('Rng.weighted: weights must add up to more than 0');
    let r = this.float() * total;
    for (const [value, weight] of entries) {
      r -= weight;
      if (r < 0) return value;
    }
    return entries[entries.length - 1]![0];
  }

  /**
   * A value in [0, 1) fixed by this stream's seed and the integer coordinates alone, drawing
   * nothing: the lattice of smooth noise fields (weather, traffic) shared by every vehicle.
   */
  unitAt(...coords: number[]): number {
    let h = this.key;
    for (const c of coords) h = fmix32((Math.imul(h ^ (c | 0), 0x01000193) + GOLDEN_GAMMA) | 0);
    return h / TWO_POW_32;
  }
}
