// LLM4Rec's cosine loss (PAPER.md §1.3): for a positive item 1 - cos(z, q); for a negative
// max(0, cos(z, q) - gamma). Returns the mean loss over the batch and d loss / d z.

/**
 * z: (B, d) model outputs; pos, neg: (B, d) item vectors (neg may be empty: no negatives).
 * Zero vectors have cosine 0 and no gradient.
 */
export function cosineMarginLoss(z: Float32Array, pos: Float32Array, neg: Float32Array | undefined, d: number, gamma: number): { loss: number; grad: Float32Array } {
  const B = z.length / d;
  if (!Number.isInteger(B) || pos.length !== z.length || (neg && neg.length !== z.length)) {
    throw new RangeError(`loss: z (${z.length}), pos (${pos.length}) and neg (${neg?.length}) must all be (B * ${d})`);
  }
  const grad = new Float32Array(z.length);
  let loss = 0;
  // d cos(z, q) / dz = q / (|z||q|) - cos * z / |z|^2
  const addCos = (b: number, q: Float32Array, sign: number, margin: number | undefined) => {
    let zz = 0, qq = 0, zq = 0;
    for (let k = 0; k < d; k++) {
      const a = z[b * d + k], c = q[b * d + k];
      zz += a * a;
      qq += c * c;
      zq += a * c;
    }
    if (zz === 0 || qq === 0) return margin === undefined ? 1 : Math.max(0, -margin);
    const nz = Math.sqrt(zz), nq = Math.sqrt(qq);
    const cos = zq / (nz * nq);
    if (margin !== undefined && cos - margin <= 0) return 0;
    for (let k = 0; k < d; k++) grad[b * d + k] += (sign / B) * (q[b * d + k] / (nz * nq) - (cos * z[b * d + k]) / zz);
    return margin === undefined ? 1 - cos : cos - margin;
  };
  for (let b = 0; b < B; b++) {
    loss += addCos(b, pos, -1, undefined);
    if (neg) loss += addCos(b, neg, +1, gamma);
  }
  return { loss: B ? loss / B : 0, grad };
}
