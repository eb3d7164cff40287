// ONNX graphs of the autoregressive baseline (lib/ar/model.ts) for cached beam search:
//
//   encoder graph:      input_ids (B, S), attention_mask (B, S)
//                         -> encoder_hidden (B, S, d),
//                            cross_key_{i} (B, H, dKv, S) and cross_value_{i} (B, H, S, dKv) per
//                            decoder layer i (the cross-attention keys/values depend only on the
//                            encoder states, so they are computed once per user, here; keys come
//                            pre-transposed for q @ k^T).
//   decoder-step graph: input_ids (N, 1)   the token fed at this step (start token, then codes),
//                       beam_idx (N)       row of the previous step's cache each row continues,
//                       attention_mask (B, S), cross_key_{i}, cross_value_{i} (from the encoder),
//                       past_key_{i}, past_value_{i} (N', H, t, dKv)
//                         -> log_probs (N, L) over the codes of position t,
//                            present_key_{i}, present_value_{i} (N, H, t + 1, dKv).
//
// Rows are grouped by user: N = B * W with row = user * W + j (W beams per user, the same W for
// every user of a call: the caller pads with dead beams). Cross-attention then needs no copy of
// the encoder states per beam: the W beam queries of a user are attended against that user's
// keys as a (B, H, W, S) score block (cross-attention has no position bias, so the W queries
// play the role of a query sequence).
//
// The step t is the past length (dimension 2 of past_key_0): it selects the position's head
// (the K heads are stacked (K, d, L) and gathered by t, one graph for all steps instead of one
// graph per step) and the relative position of the new query. Its self-attention bias against
// keys 0..t uses the decoder's unidirectional buckets of offsets (key - t), which are exactly
// the last row of the full decoder's (causal) bias; no causal mask is needed because the cache
// holds only past positions. Reordering the cache after pruning is a Gather on the beam axis in
// the graph (HF's reorder_cache), so the caller never copies the cache itself.
import { GraphBuilder } from '../onnx/builder.js';
import { checkT5Tensors, t5GraphParts } from '../t5/onnx-export.js';
import { validateT5Config, type T5Config } from '../t5/config.js';

export const AR_ONNX_IO = {
  inputIds: 'input_ids',
  attentionMask: 'attention_mask',
  encoderHidden: 'encoder_hidden',
  beamIdx: 'beam_idx',
  logProbs: 'log_probs',
  crossKey: (i: number) => `cross_key_${i}`,
  crossValue: (i: number) => `cross_value_${i}`,
  pastKey: (i: number) => `past_key_${i}`,
  pastValue: (i: number) => `past_value_${i}`,
  presentKey: (i: number) => `present_key_${i}`,
  presentValue: (i: number) => `present_value_${i}`,
} as const;

/** The heads: per code position k, weight (L, d) (torch layout) and bias (L). */
export interface ARHeads {
  K: number;
  L: number;
  weights: Float32Array[];
  biases: Float32Array[];
}

function checkHeads(h: ARHeads, d: number): void {
  if (!(Number.isInteger(h.K) && h.K >= 1 && Number.isInteger(h.L) && h.L >= 1)) throw new RangeError(`AR heads: K and L must be positive integers, got ${h.K}, ${h.L}`);
  if (h.weights.length !== h.K || h.biases.length !== h.K) throw new RangeError(`AR heads: need ${h.K} weights and biases, got ${h.weights.length} and ${h.biases.length}`);
  h.weights.forEach((w, k) => {
    if (!(w instanceof Float32Array) || w.length !== h.L * d) throw new RangeError(`AR heads: weight ${k} must be a Float32Array of (L, d) = ${h.L * d} values, got ${w?.length}`);
    if (!(h.biases[k] instanceof Float32Array) || h.biases[k].length !== h.L) throw new RangeError(`AR heads: bias ${k} must be a Float32Array of ${h.L} values`);
    for (const a of [w, h.biases[k]]) for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) throw new RangeError(`AR heads: head ${k} holds a non-finite value`);
  });
}

/** The encoder graph (see the top of this file). */
export function exportAREncoderOnnx(config: T5Config, tensors: Record<string, Float32Array>, opts: { opset?: number } = {}): Uint8Array {
  validateT5Config(config);
  const shapes = checkT5Tensors(config, tensors);
  const io = AR_ONNX_IO;
  const g = new GraphBuilder('ar_encoder');
  const ids = g.input(io.inputIds, 'int64', ['batch', 'enc_len']);
  const mask = g.input(io.attentionMask, 'int64', ['batch', 'enc_len']);
  const t5 = t5GraphParts(g, config, tensors, shapes);
  const enc = t5.encoder(ids, t5.paddingBias(mask, 'int64'));
  g.output(enc, io.encoderHidden, 'float', ['batch', 'enc_len', config.dModel]);
  for (let i = 0; i < config.numDecoderLayers; i++) {
    const [k, v] = t5.crossKv(enc, `decoder.block.${i}.layer.1.EncDecAttention`);
    g.output(t5.heads(k, [0, 2, 3, 1]), io.crossKey(i), 'float', ['batch', config.numHeads, config.dKv, 'enc_len']);
    g.output(t5.heads(v, [0, 2, 1, 3]), io.crossValue(i), 'float', ['batch', config.numHeads, 'enc_len', config.dKv]);
  }
  return g.toModel({ opset: opts.opset ?? 17, docString: 'AR baseline encoder (T5) exported by tokenrec', metadata: { 'tokenrec.model': 'ar-encoder', 'tokenrec.t5_config': JSON.stringify(config) } });
}

/** The decoder-step graph (see the top of this file). */
export function exportARDecoderStepOnnx(config: T5Config, tensors: Record<string, Float32Array>, heads: ARHeads, opts: { opset?: number } = {}): Uint8Array {
  validateT5Config(config);
  const shapes = checkT5Tensors(config, tensors);
  const { dModel: d, numHeads: H, dKv } = config;
  checkHeads(heads, d);
  const { K, L } = heads;
  const io = AR_ONNX_IO;
  const g = new GraphBuilder('ar_decoder_step');
  const t5 = t5GraphParts(g, config, tensors, shapes);
  const inner = t5.inner;

  const ids = g.input(io.inputIds, 'int64', ['rows', 1]);
  const beamIdx = g.input(io.beamIdx, 'int64', ['rows']);
  const mask = g.input(io.attentionMask, 'int64', ['batch', 'enc_len']);
  const cross: [string, string][] = [];
  const past: [string, string][] = [];
  for (let i = 0; i < config.numDecoderLayers; i++) {
    cross.push([g.input(io.crossKey(i), 'float', ['batch', H, dKv, 'enc_len']), g.input(io.crossValue(i), 'float', ['batch', H, 'enc_len', dKv])]);
  }
  for (let i = 0; i < config.numDecoderLayers; i++) {
    past.push([g.input(io.pastKey(i), 'float', ['past_rows', H, 'past_len', dKv]), g.input(io.pastValue(i), 'float', ['past_rows', H, 'past_len', dKv])]);
  }

  // t = past length (scalar int64): the position of the new token.
  const t = t5.lengthOf(past[0][0], 'step', 2);
  // Offsets of keys 0..t from the query at t: (1, t + 1), all <= 0.
  const keys = g.op('Range', [g.int64([0], []), g.op('Add', [t, g.int64([1], [])]), g.int64([1], [])]);
  const offsets = g.op('Unsqueeze', [g.op('Sub', [keys, t]), g.int64([0])], {}, 'decoder.offsets');
  const selfBias = t5.positionBias(offsets, 'decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight', false, 'decoder.position_bias'); // (1, H, 1, t + 1)
  const padBias = t5.paddingBias(mask, 'int64'); // (B, 1, 1, S)
  // Cross-attention reshapes (N, 1, inner) <-> (B, W, H, dKv) with B from the mask.
  const batch = t5.lengthOf(mask, 'batch', 0);
  const byUser = g.op('Concat', [g.op('Unsqueeze', [batch, g.int64([0])]), g.int64([-1, H, dKv])], { axis: 0 }, 'cross.by_user_shape');

  let y = g.op('Gather', [t5.param('shared.weight'), ids], { axis: 0 }, 'decoder.embeddings'); // (N, 1, d)
  for (let i = 0; i < config.numDecoderLayers; i++) {
    const b = `decoder.block.${i}`;
    // Self-attention over the cache plus the new position.
    const sa = `${b}.layer.0.SelfAttention`;
    const n0 = t5.rmsNorm(y, `${b}.layer.0.layer_norm.weight`, `${b}.layer.0.norm`);
    const [q, k, v] = t5.selfQkv(n0, sa);
    const pk = g.op('Gather', [past[i][0], beamIdx], { axis: 0 }, `${b}.past_key.reordered`);
    const pv = g.op('Gather', [past[i][1], beamIdx], { axis: 0 }, `${b}.past_value.reordered`);
    const presentK = g.op('Concat', [pk, t5.heads(k, [0, 2, 1, 3])], { axis: 2 }, `${b}.present_key`); // (N, H, t + 1, dKv)
    const presentV = g.op('Concat', [pv, t5.heads(v, [0, 2, 1, 3])], { axis: 2 }, `${b}.present_value`);
    g.output(presentK, io.presentKey(i), 'float', ['rows', H, 'present_len', dKv]);
    g.output(presentV, io.presentValue(i), 'float', ['rows', H, 'present_len', dKv]);
    const kT = g.op('Transpose', [presentK], { perm: [0, 1, 3, 2] });
    y = g.op('Add', [y, t5.merge(t5.attend(t5.heads(q, [0, 2, 1, 3]), kT, presentV, selfBias, sa), sa)], {}, `${b}.layer.0.residual`);
    // Cross-attention: the W beams of a user against that user's encoder keys.
    const ca = `${b}.layer.1.EncDecAttention`;
    const n1 = t5.rmsNorm(y, `${b}.layer.1.layer_norm.weight`, `${b}.layer.1.norm`);
    const cq = g.op('MatMul', [n1, t5.linearT(`${ca}.q.weight`)]); // (N, 1, inner)
    const qu = g.op('Transpose', [g.op('Reshape', [cq, byUser])], { perm: [0, 2, 1, 3] }); // (B, H, W, dKv)
    const ctx = t5.attend(qu, cross[i][0], cross[i][1], padBias, ca); // (B, H, W, dKv)
    const ctxRows = g.op('Reshape', [g.op('Transpose', [ctx], { perm: [0, 2, 1, 3] }), g.int64([-1, 1, inner])]); // (N, 1, inner)
    y = g.op('Add', [y, g.op('MatMul', [ctxRows, t5.linearT(`${ca}.o.weight`)], {}, `${ca}.out`)], {}, `${b}.layer.1.residual`);
    const n2 = t5.rmsNorm(y, `${b}.layer.2.layer_norm.weight`, `${b}.layer.2.norm`);
    y = g.op('Add', [y, t5.feedForward(n2, `${b}.layer.2.DenseReluDense`)], {}, `${b}.layer.2.residual`);
  }
  const h = g.op('Reshape', [t5.rmsNorm(y, 'decoder.final_layer_norm.weight', 'decoder.final_norm'), g.int64([-1, d])], {}, 'decoder.last'); // (N, d)

  // Head of position t: stacked (K, d, L) weights and (K, L) biases, gathered by t.
  const wAll = new Float32Array(K * d * L);
  for (let k = 0; k < K; k++) {
    const w = heads.weights[k]; // (L, d)
    for (let c = 0; c < L; c++) for (let j = 0; j < d; j++) wAll[k * d * L + j * L + c] = w[c * d + j];
  }
  const bAll = new Float32Array(K * L);
  heads.biases.forEach((b, k) => bAll.set(b, k * L));
  const wT = g.op('Gather', [g.initializer('heads.weight.T', [K, d, L], wAll), t], { axis: 0 }, 'head.weight'); // (d, L)
  const bias = g.op('Gather', [g.initializer('heads.bias', [K, L], bAll), t], { axis: 0 }, 'head.bias'); // (L)
  const logits = g.op('Add', [g.op('MatMul', [h, wT]), bias], {}, 'head.logits');
  g.output(g.op('LogSoftmax', [logits], { axis: -1 }), io.logProbs, 'float', ['rows', L]);

  return g.toModel({
    opset: opts.opset ?? 17,
    docString: 'AR baseline decoder step (T5 with KV cache, one head per code position) exported by tokenrec',
    metadata: { 'tokenrec.model': 'ar-decoder-step', 'tokenrec.t5_config': JSON.stringify(config), 'tokenrec.codes': JSON.stringify({ K, L }) },
  });
}
