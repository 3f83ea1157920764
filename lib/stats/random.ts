/** A small seeded pseudo-random generator and two distributions, so statistical tests are repeatable. */

/**
 * Mulberry32: a 32-bit generator returning uniform numbers in [0, 1). Fast and good enough for
 * simulations in tests; not for cryptography. The same seed always gives the same sequence.
 */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One draw from the normal distribution with the given mean and standard deviation (Box–Muller). */
export function normal(random: () => number, mean = 0, sd = 1): number {
  // 1 − u lies in (0, 1], so the logarithm is finite.
  const radius = Math.sqrt(-2 * Math.log(1 - random()));
  return mean + sd * radius * Math.cos(2 * Math.PI * random());
}

/** One draw from the exponential distribution with the given rate (mean 1 / rate), by inversion. */
export function exponential(random: () => number, rate = 1): number {
  return -Math.log(1 - random()) / rate;
}
