// Seeded random data for tests (mulberry32).
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomVectors(rand: () => number, n: number, dim: number): Float32Array {
  const v = new Float32Array(n * dim);
  for (let i = 0; i < v.length; i++) v[i] = rand() * 2 - 1;
  return v;
}
