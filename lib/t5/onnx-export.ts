// Export of a T5 (v1.0) encoder-decoder backbone, with an optional dense head, to an ONNX graph
// written by hand (lib/onnx/builder.ts). Semantics follow Hugging Face's T5 exactly:
//   - one shared embedding for encoder and decoder tokens, no embedding scaling;
//   - pre-norm blocks with RMS norm (x / sqrt(mean(x^2) + eps) * w: no mean subtraction, no bias);
//   - attention without the 1/sqrt(d) scaling; a relative position bias (bucketed relative
//     positions, bidirectional in the encoder, unidirectional in the decoder) whose table lives
//     in block 0 of each stack and is shared by all layers of that stack; cross-attention has
//     no position bias;
//   - padding mask (from attention_mask) on encoder self-attention and cross-attention, causal
//     mask on decoder self-attention; masked scores get float32's lowest value added, as in HF;
//   - ReLU feed-forward; final RMS norms on both stacks. No dropout (inference).
// Batch size and both sequence lengths are dynamic. The relative-position buckets are computed
// in the graph from the lengths (Range, Sub, Clip, Gather): every offset beyond max_distance
// falls in the last bucket, so the bucket of an offset is a lookup in a table of
// 2 * max_distance + 1 entries computed here with HF's float32 arithmetic. A table keeps the
// bucket boundaries identical to HF's (a Log in the graph would round differently from torch
// at offsets where the formula lands on an integer, e.g. offset 64 in t5-small's encoder).
import { GraphBuilder, type Dim } from '../onnx/builder.js';
import { t5TensorShapes, validateT5Config, type T5Config } from './config.js';

/** One dense layer of the head: y = act(x W^T + b). */
export interface T5HeadLayer {
  /** (outFeatures, inFeatures) row-major, as torch stores nn.Linear weights. */
  weight: Float32Array;
  /** (outFeatures) */
  bias: Float32Array;
  inFeatures: number;
  outFeatures: number;
  activation: 'relu' | 'none';
}

/**
 * The head of an MLP with ReLU between layers and none after the last (the LLM4Rec projection,
 * lib/nn/mlp.ts): sizes [in, h1, ..., out], weights[l] (sizes[l+1], sizes[l]), biases[l] (sizes[l+1]).
 */
export function mlpHead(sizes: number[], weights: Float32Array[], biases: Float32Array[]): T5HeadLayer[] {
  if (weights.length !== sizes.length - 1 || biases.length !== sizes.length - 1) {
    throw new RangeError(`mlpHead: ${sizes.length} sizes need ${sizes.length - 1} weights and biases, got ${weights.length} and ${biases.length}`);
  }
  return weights.map((weight, l) => ({
    weight,
    bias: biases[l],
    inFeatures: sizes[l],
    outFeatures: sizes[l + 1],
    activation: l < weights.length - 1 ? 'relu' : 'none',
  }));
}

export interface T5OnnxExportOptions {
  /**
   * Dense layers applied to the flattened decoder states (B, T * dModel) -> (B, out), output `z`.
   * The first layer's inFeatures fixes the decoder length T = inFeatures / dModel.
   */
  head?: T5HeadLayer[];
  /** Also output `encoder_hidden` (B, S, dModel), the encoder's final-norm output. */
  outputEncoderHidden?: boolean;
  /** dtype of the `attention_mask` input (1 = token, 0 = padding). Default int64. */
  attentionMaskType?: 'int64' | 'float';
  /** ai.onnx opset (13..17). Default 17. */
  opset?: number;
  /** Extra entries for the model's metadata_props. */
  metadata?: Record<string, string>;
}

/** Names of the graph's inputs and outputs. */
export const T5_ONNX_IO = {
  inputIds: 'input_ids',
  attentionMask: 'attention_mask',
  decoderInputIds: 'decoder_input_ids',
  decoderHidden: 'decoder_hidden',
  encoderHidden: 'encoder_hidden',
  z: 'z',
} as const;

/**
 * Hugging Face's relative-position bucket of `relativePosition` (= key position - query
 * position), reproduced with its float32 arithmetic (log of the float32 ratio, division by the
 * float32 log(maxDistance / maxExact), truncation toward zero).
 */
export function t5RelativePositionBucket(relativePosition: number, bidirectional: boolean, numBuckets: number, maxDistance: number): number {
  const f = Math.fround;
  let nb = numBuckets;
  let bucket = 0;
  let rp: number;
  if (bidirectional) {
    nb = Math.floor(nb / 2);
    if (relativePosition > 0) bucket += nb;
    rp = Math.abs(relativePosition);
  } else {
    rp = -Math.min(relativePosition, 0);
  }
  const maxExact = Math.floor(nb / 2);
  if (rp < maxExact) return bucket + rp;
  const logRatio = f(Math.log(f(rp / maxExact)));
  const scaled = f(f(logRatio / f(Math.log(maxDistance / maxExact))) * (nb - maxExact));
  return bucket + Math.min(maxExact + Math.trunc(scaled), nb - 1);
}

/** Buckets of the offsets -maxDistance..maxDistance (index = offset + maxDistance). */
export function t5BucketTable(bidirectional: boolean, numBuckets: number, maxDistance: number): BigInt64Array {
  const t = new BigInt64Array(2 * maxDistance + 1);
  for (let o = -maxDistance; o <= maxDistance; o++) t[o + maxDistance] = BigInt(t5RelativePositionBucket(o, bidirectional, numBuckets, maxDistance));
  return t;
}

export function checkT5Tensors(config: T5Config, tensors: Record<string, Float32Array>): Record<string, number[]> {
  const shapes = t5TensorShapes(config);
  for (const [name, shape] of Object.entries(shapes)) {
    const t = tensors[name];
    const n = shape.reduce((a, b) => a * b, 1);
    if (t === undefined) throw new Error(`exportT5Onnx: tensor '${name}' [${shape}] is missing`);
    if (!(t instanceof Float32Array)) throw new TypeError(`exportT5Onnx: tensor '${name}' must be a Float32Array`);
    if (t.length !== n) throw new RangeError(`exportT5Onnx: tensor '${name}' has ${t.length} values, expected [${shape}] = ${n}`);
    for (let i = 0; i < t.length; i++) {
      if (!Number.isFinite(t[i])) throw new RangeError(`exportT5Onnx: tensor '${name}' holds a non-finite value (${t[i]}) at flat index ${i}`);
    }
  }
  return shapes;
}

export function checkHead(head: T5HeadLayer[], dModel: number): number {
  if (head.length === 0) throw new RangeError('exportT5Onnx: head must have at least one layer when given');
  const first = head[0].inFeatures;
  if (!(Number.isInteger(first) && first > 0 && first % dModel === 0)) {
    throw new RangeError(`exportT5Onnx: head layer 0 inFeatures (${first}) must be a positive multiple of dModel (${dModel}): it sees the flattened (T, dModel) decoder states`);
  }
  head.forEach((l, i) => {
    if (!(Number.isInteger(l.outFeatures) && l.outFeatures > 0)) throw new RangeError(`exportT5Onnx: head layer ${i} outFeatures must be a positive integer, got ${l.outFeatures}`);
    if (i > 0 && l.inFeatures !== head[i - 1].outFeatures) {
      throw new RangeError(`exportT5Onnx: head layer ${i} inFeatures (${l.inFeatures}) must equal layer ${i - 1} outFeatures (${head[i - 1].outFeatures})`);
    }
    if (!(l.weight instanceof Float32Array) || l.weight.length !== l.outFeatures * l.inFeatures) {
      throw new RangeError(`exportT5Onnx: head layer ${i} weight must be a Float32Array of (${l.outFeatures}, ${l.inFeatures}) = ${l.outFeatures * l.inFeatures} values, got ${l.weight?.length}`);
    }
    if (!(l.bias instanceof Float32Array) || l.bias.length !== l.outFeatures) {
      throw new RangeError(`exportT5Onnx: head layer ${i} bias must be a Float32Array of ${l.outFeatures} values, got ${l.bias?.length}`);
    }
    if (l.activation !== 'relu' && l.activation !== 'none') throw new RangeError(`exportT5Onnx: head layer ${i} activation must be 'relu' or 'none', got '${l.activation}'`);
    for (const [what, a] of [['weight', l.weight], ['bias', l.bias]] as const) {
      for (let k = 0; k < a.length; k++) if (!Number.isFinite(a[k])) throw new RangeError(`exportT5Onnx: head layer ${i} ${what} holds a non-finite value at flat index ${k}`);
    }
  });
  return first / dModel;
}

/** (rows, cols) row-major -> (cols, rows) row-major. */
function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c];
  return t;
}

/** The building blocks of T5 graphs (full encoder-decoder here, encoder and decoder step in lib/ar/onnx-export.ts). */
export type T5GraphParts = ReturnType<typeof t5GraphParts>;

/**
 * Graph pieces of a T5 over `g`, weights from HF-named `tensors` (checked against `shapes`).
 * Weights become initializers on first use (once each).
 */
export function t5GraphParts(g: GraphBuilder, config: T5Config, tensors: Record<string, Float32Array>, shapes: Record<string, number[]>) {
  const { dModel: d, numHeads: H, dKv, layerNormEpsilon: eps } = config;
  const inner = H * dKv;
  const NEG = -3.4028234663852886e38; // torch.finfo(torch.float32).min, HF's mask value
  const made = new Map<string, string>();
  const once = (key: string, make: () => string) => {
    let v = made.get(key);
    if (v === undefined) {
      v = make();
      made.set(key, v);
    }
    return v;
  };
  // Weights: HF names; linear weights stored transposed ((in, out), name + '.T') so that x @ W^T is
  // one MatMul.
  const param = (name: string) => once(name, () => g.initializer(name, shapes[name], tensors[name]));
  const linearT = (name: string) =>
    once(`${name}.T`, () => {
      const [out, inn] = shapes[name];
      return g.initializer(`${name}.T`, [inn, out], transpose(tensors[name], out, inn));
    });

  const rmsNorm = (x: string, weightName: string, hint: string) => {
    // Written as Pow -> ReduceMean -> Add -> Sqrt -> Div -> Mul, the pattern ONNX Runtime fuses
    // into one SimplifiedLayerNormalization kernel.
    const variance = g.op('ReduceMean', [g.op('Pow', [x, g.float(2)])], { axes: [-1], keepdims: 1 }, `${hint}.variance`);
    const rms = g.op('Sqrt', [g.op('Add', [variance, g.float(eps)])]);
    return g.op('Mul', [g.op('Div', [x, rms]), param(weightName)], {}, hint);
  };
  // (B, L, inner) -> (B, H, L, dKv), or (B, H, dKv, L) for keys (ready for q @ k^T).
  const heads = (x: string, perm: number[]) =>
    g.op('Transpose', [g.op('Reshape', [x, g.int64([0, 0, H, dKv])])], { perm });
  // q, k, v projections as one MatMul against the concatenated (d, 3 * inner) weight (k, v only
  // for cross-attention, whose q comes from the decoder), split afterwards: one larger GEMM
  // instead of three small ones.
  const fusedT = (names: string[], hint: string) =>
    once(hint, () => {
      const parts = names.map((n) => transpose(tensors[n], inner, d)); // each (d, inner)
      const w = new Float32Array(d * inner * parts.length);
      for (let r = 0; r < d; r++) parts.forEach((p, j) => w.set(p.subarray(r * inner, (r + 1) * inner), (r * parts.length + j) * inner));
      return g.initializer(hint, [d, inner * parts.length], w);
    });
  const split = (x: string, n: number) => g.node('Split', [x, g.int64(Array(n).fill(inner))], { axis: -1 }, { nOutputs: n });
  /** Self-attention q, k, v (B, L, inner) of a normalised input (B, L, d). */
  const selfQkv = (x: string, prefix: string) => split(g.op('MatMul', [x, fusedT(['q', 'k', 'v'].map((p) => `${prefix}.${p}.weight`), `${prefix}.qkv.weight.T`)]), 3);
  /** Cross-attention k, v (B, S, inner) of the encoder states (B, S, d). */
  const crossKv = (enc: string, prefix: string) => split(g.op('MatMul', [enc, fusedT(['k', 'v'].map((p) => `${prefix}.${p}.weight`), `${prefix}.kv.weight.T`)]), 2);
  /** Attention core: probs = softmax(q k^T + bias) (no 1/sqrt(dKv): T5 folds it into the q init); ctx = probs v, merged and projected. */
  const attend = (qh: string, kT: string, vh: string, bias: string, prefix: string) => {
    const scores = g.op('Add', [g.op('MatMul', [qh, kT]), bias], {}, `${prefix}.scores`);
    const probs = g.op('Softmax', [scores], { axis: -1 });
    return g.op('MatMul', [probs, vh]);
  };
  const merge = (ctxHeads: string, prefix: string) => {
    const ctx = g.op('Reshape', [g.op('Transpose', [ctxHeads], { perm: [0, 2, 1, 3] }), g.int64([0, 0, inner])]);
    return g.op('MatMul', [ctx, linearT(`${prefix}.o.weight`)], {}, `${prefix}.out`);
  };
  const attention = (xq: string, xkv: string | null, prefix: string, bias: string) => {
    let q: string, k: string, v: string;
    if (xkv === null) {
      [q, k, v] = selfQkv(xq, prefix);
    } else {
      q = g.op('MatMul', [xq, linearT(`${prefix}.q.weight`)]);
      [k, v] = crossKv(xkv, prefix);
    }
    return merge(attend(heads(q, [0, 2, 1, 3]), heads(k, [0, 2, 3, 1]), heads(v, [0, 2, 1, 3]), bias, prefix), prefix);
  };
  const feedForward = (x: string, prefix: string) => {
    const h = g.op('Relu', [g.op('MatMul', [x, linearT(`${prefix}.wi.weight`)])]);
    return g.op('MatMul', [h, linearT(`${prefix}.wo.weight`)], {}, `${prefix}.out`);
  };

  // Relative offsets (key - query) of a length-L sequence: (L, L) int64.
  const lengthOf = (ids: string, hint: string, axis = 1) => g.op('Gather', [g.op('Shape', [ids]), g.int64([axis], [])], { axis: 0 }, hint);
  const relativeOffsets = (len: string, hint: string) => {
    const pos = g.op('Range', [g.int64([0], []), len, g.int64([1], [])]);
    const query = g.op('Unsqueeze', [pos, g.int64([1])]);
    const key = g.op('Unsqueeze', [pos, g.int64([0])]);
    return g.op('Sub', [key, query], {}, hint);
  };
  // Position bias (1, H, Q, L) of offsets (Q, L) from the stack's table (numBuckets, H).
  const positionBias = (offsets: string, tableName: string, bidirectional: boolean, hint: string) => {
    const maxD = config.relativeAttentionMaxDistance;
    const buckets = g.constant(`${hint}.bucket_of_offset`, [2 * maxD + 1], t5BucketTable(bidirectional, config.relativeAttentionNumBuckets, maxD));
    const idx = g.op('Add', [g.op('Clip', [offsets, g.int64([-maxD], []), g.int64([maxD], [])]), g.int64([maxD], [])]);
    const bucket = g.op('Gather', [buckets, idx], { axis: 0 }, `${hint}.buckets`);
    const bias = g.op('Gather', [param(tableName), bucket], { axis: 0 }); // (Q, L, H)
    return g.op('Unsqueeze', [g.op('Transpose', [bias], { perm: [2, 0, 1] }), g.int64([0])], {}, hint);
  };
  // Padding mask, additive: (B, 1, 1, S), 0 for tokens and float32's lowest value for padding.
  const paddingBias = (attentionMask: string, maskType: 'int64' | 'float') => {
    const maskF = maskType === 'float' ? attentionMask : g.op('Cast', [attentionMask], { to: 1 });
    const padAdd = g.op('Mul', [g.op('Sub', [g.float(1), maskF]), g.float(NEG)]);
    return g.op('Unsqueeze', [padAdd, g.int64([1, 2])], {}, 'encoder.padding_bias');
  };
  /** The encoder stack: ids (B, S) -> final-norm states (B, S, d). */
  const encoder = (inputIds: string, padBias: string) => {
    const encOffsets = relativeOffsets(lengthOf(inputIds, 'enc_len'), 'encoder.offsets');
    const encPos = positionBias(encOffsets, 'encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight', true, 'encoder.position_bias');
    const encBias = g.op('Add', [encPos, padBias], {}, 'encoder.attention_bias'); // (B, H, S, S)
    let x = g.op('Gather', [param('shared.weight'), inputIds], { axis: 0 }, 'encoder.embeddings');
    for (let i = 0; i < config.numEncoderLayers; i++) {
      const b = `encoder.block.${i}`;
      const n0 = rmsNorm(x, `${b}.layer.0.layer_norm.weight`, `${b}.layer.0.norm`);
      x = g.op('Add', [x, attention(n0, null, `${b}.layer.0.SelfAttention`, encBias)], {}, `${b}.layer.0.residual`);
      const n1 = rmsNorm(x, `${b}.layer.1.layer_norm.weight`, `${b}.layer.1.norm`);
      x = g.op('Add', [x, feedForward(n1, `${b}.layer.1.DenseReluDense`)], {}, `${b}.layer.1.residual`);
    }
    return rmsNorm(x, 'encoder.final_layer_norm.weight', 'encoder.final_norm');
  };
  return { NEG, inner, param, linearT, rmsNorm, heads, selfQkv, crossKv, attend, merge, attention, feedForward, lengthOf, relativeOffsets, positionBias, paddingBias, encoder };
}

/**
 * Builds the ONNX model of a T5 backbone from Hugging Face-named float32 tensors (shapes as in
 * t5TensorShapes(config); extra tensors such as lm_head.weight are ignored).
 *
 * Inputs: input_ids int64 (B, S); attention_mask int64 or float (B, S), 1 = token, 0 = padding;
 * decoder_input_ids int64 (B, T). Outputs: decoder_hidden float (B, T, dModel); with a head,
 * z float (B, out); optionally encoder_hidden float (B, S, dModel).
 */
export function exportT5Onnx(config: T5Config, tensors: Record<string, Float32Array>, opts: T5OnnxExportOptions = {}): Uint8Array {
  validateT5Config(config);
  const shapes = checkT5Tensors(config, tensors);
  const opset = opts.opset ?? 17;
  if (!(Number.isInteger(opset) && opset >= 13 && opset <= 17)) throw new RangeError(`exportT5Onnx: opset must be 13..17, got ${opset}`);
  const maskType = opts.attentionMaskType ?? 'int64';
  if (maskType !== 'int64' && maskType !== 'float') throw new RangeError(`exportT5Onnx: attentionMaskType must be 'int64' or 'float', got '${maskType}'`);
  const headT = opts.head ? checkHead(opts.head, config.dModel) : undefined;

  const { dModel: d } = config;
  const g = new GraphBuilder('t5');
  const io = T5_ONNX_IO;
  const decLen: Dim = headT ?? 'dec_len';
  const inputIds = g.input(io.inputIds, 'int64', ['batch', 'enc_len']);
  const attentionMask = g.input(io.attentionMask, maskType, ['batch', 'enc_len']);
  const decoderInputIds = g.input(io.decoderInputIds, 'int64', ['batch', decLen]);
  const t5 = t5GraphParts(g, config, tensors, shapes);
  const { param, attention, feedForward, rmsNorm, relativeOffsets, lengthOf, positionBias, NEG } = t5;
  const shared = param('shared.weight');
  const padBias = t5.paddingBias(attentionMask, maskType);
  const encoderHidden = t5.encoder(inputIds, padBias);

  // ---- decoder ----
  const decOffsets = relativeOffsets(lengthOf(decoderInputIds, 'dec_len'), 'decoder.offsets');
  const decPos = positionBias(decOffsets, 'decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight', false, 'decoder.position_bias');
  const causal = g.op('Where', [g.op('Greater', [decOffsets, g.int64([0], [])]), g.float(NEG), g.float(0)]); // (T, T): future keys masked
  const decBias = g.op('Add', [decPos, causal], {}, 'decoder.self_attention_bias'); // (1, H, T, T)
  let y = g.op('Gather', [shared, decoderInputIds], { axis: 0 }, 'decoder.embeddings');
  for (let i = 0; i < config.numDecoderLayers; i++) {
    const b = `decoder.block.${i}`;
    const n0 = rmsNorm(y, `${b}.layer.0.layer_norm.weight`, `${b}.layer.0.norm`);
    y = g.op('Add', [y, attention(n0, null, `${b}.layer.0.SelfAttention`, decBias)], {}, `${b}.layer.0.residual`);
    const n1 = rmsNorm(y, `${b}.layer.1.layer_norm.weight`, `${b}.layer.1.norm`);
    y = g.op('Add', [y, attention(n1, encoderHidden, `${b}.layer.1.EncDecAttention`, padBias)], {}, `${b}.layer.1.residual`);
    const n2 = rmsNorm(y, `${b}.layer.2.layer_norm.weight`, `${b}.layer.2.norm`);
    y = g.op('Add', [y, feedForward(n2, `${b}.layer.2.DenseReluDense`)], {}, `${b}.layer.2.residual`);
  }
  const decoderHidden = rmsNorm(y, 'decoder.final_layer_norm.weight', 'decoder.final_norm');
  g.output(decoderHidden, io.decoderHidden, 'float', ['batch', decLen, d]);
  if (opts.outputEncoderHidden) g.output(encoderHidden, io.encoderHidden, 'float', ['batch', 'enc_len', d]);

  // ---- head on the flattened decoder states ----
  if (opts.head) {
    let h = g.op('Reshape', [decoderHidden, g.int64([0, -1])], {}, 'head.input'); // (B, T * d)
    opts.head.forEach((l, i) => {
      const w = g.initializer(`head.${i}.weight`, [l.outFeatures, l.inFeatures], l.weight);
      const bias = g.initializer(`head.${i}.bias`, [l.outFeatures], l.bias);
      h = g.op('Gemm', [h, w, bias], { transB: 1 }, `head.${i}`);
      if (l.activation === 'relu') h = g.op('Relu', [h]);
    });
    g.output(h, io.z, 'float', ['batch', opts.head[opts.head.length - 1].outFeatures]);
  }

  return g.toModel({
    opset,
    docString: 'T5 (v1.0) backbone exported by tokenrec',
    metadata: {
      'tokenrec.model': 't5',
      'tokenrec.t5_config': JSON.stringify(config),
      'tokenrec.head': JSON.stringify((opts.head ?? []).map((l) => ({ in: l.inFeatures, out: l.outFeatures, activation: l.activation }))),
      ...opts.metadata,
    },
  });
}
