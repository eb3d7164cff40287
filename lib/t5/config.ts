// T5 (v1.0) configuration and presets. Tensor names follow the Hugging Face T5 checkpoints
// (shared.weight, encoder.block.{i}.layer.0.SelfAttention.q.weight, ...), so a user who has
// t5-small's safetensors can load them as they are.

export interface T5Config {
  /** Vocabulary size: text tokens + special tokens + the id tokens of users and items. */
  vocabSize: number;
  dModel: number;
  /** Size of each attention head (d_kv in Hugging Face configs); heads * dKv need not equal dModel. */
  dKv: number;
  dFf: number;
  numHeads: number;
  numEncoderLayers: number;
  numDecoderLayers: number;
  /** Relative-position buckets and the distance beyond which all positions share a bucket. */
  relativeAttentionNumBuckets: number;
  relativeAttentionMaxDistance: number;
  dropoutRate: number;
  layerNormEpsilon: number;
}

export type T5PresetName = 't5-small' | 't5-mini' | 't5-tiny';

/** t5-small is the paper's backbone (60M parameters with its 32k vocabulary); the smaller ones train on 2 CPU cores. */
export const T5_PRESETS: Record<T5PresetName, Omit<T5Config, 'vocabSize'>> = {
  't5-small': {
    dModel: 512, dKv: 64, dFf: 2048, numHeads: 8, numEncoderLayers: 6, numDecoderLayers: 6,
    relativeAttentionNumBuckets: 32, relativeAttentionMaxDistance: 128, dropoutRate: 0.1, layerNormEpsilon: 1e-6,
  },
  't5-mini': {
    dModel: 128, dKv: 32, dFf: 512, numHeads: 4, numEncoderLayers: 2, numDecoderLayers: 2,
    relativeAttentionNumBuckets: 32, relativeAttentionMaxDistance: 128, dropoutRate: 0.1, layerNormEpsilon: 1e-6,
  },
  't5-tiny': {
    dModel: 32, dKv: 8, dFf: 64, numHeads: 4, numEncoderLayers: 1, numDecoderLayers: 1,
    relativeAttentionNumBuckets: 8, relativeAttentionMaxDistance: 16, dropoutRate: 0, layerNormEpsilon: 1e-6,
  },
};

export function t5Config(preset: T5PresetName, vocabSize: number, overrides: Partial<T5Config> = {}): T5Config {
  const base = T5_PRESETS[preset];
  if (!base) throw new Error(`unknown T5 preset '${preset}' (known: ${Object.keys(T5_PRESETS).join(', ')})`);
  const cfg: T5Config = { ...base, vocabSize, ...overrides };
  validateT5Config(cfg);
  return cfg;
}

export function validateT5Config(c: T5Config): void {
  const ints: (keyof T5Config)[] = ['vocabSize', 'dModel', 'dKv', 'dFf', 'numHeads', 'numEncoderLayers', 'numDecoderLayers', 'relativeAttentionNumBuckets', 'relativeAttentionMaxDistance'];
  for (const k of ints) {
    const v = c[k];
    if (!Number.isInteger(v) || (v as number) < 1) throw new RangeError(`T5 config: ${k} must be a positive integer, got ${v}`);
  }
  if (!(c.dropoutRate >= 0 && c.dropoutRate < 1)) throw new RangeError(`T5 config: dropoutRate must be in [0, 1), got ${c.dropoutRate}`);
  if (!(c.layerNormEpsilon > 0)) throw new RangeError(`T5 config: layerNormEpsilon must be > 0, got ${c.layerNormEpsilon}`);
}

/**
 * Hugging Face tensor names and shapes ([out, in] for linear layers, as torch stores them) of a
 * T5 with this config. Relative attention bias lives in block 0 of each stack only (shared by the
 * stack's layers).
 */
export function t5TensorShapes(c: T5Config): Record<string, number[]> {
  const inner = c.numHeads * c.dKv;
  const s: Record<string, number[]> = { 'shared.weight': [c.vocabSize, c.dModel] };
  const attn = (p: string) => {
    s[`${p}.q.weight`] = [inner, c.dModel];
    s[`${p}.k.weight`] = [inner, c.dModel];
    s[`${p}.v.weight`] = [inner, c.dModel];
    s[`${p}.o.weight`] = [c.dModel, inner];
  };
  for (let i = 0; i < c.numEncoderLayers; i++) {
    const b = `encoder.block.${i}`;
    attn(`${b}.layer.0.SelfAttention`);
    if (i === 0) s[`${b}.layer.0.SelfAttention.relative_attention_bias.weight`] = [c.relativeAttentionNumBuckets, c.numHeads];
    s[`${b}.layer.0.layer_norm.weight`] = [c.dModel];
    s[`${b}.layer.1.DenseReluDense.wi.weight`] = [c.dFf, c.dModel];
    s[`${b}.layer.1.DenseReluDense.wo.weight`] = [c.dModel, c.dFf];
    s[`${b}.layer.1.layer_norm.weight`] = [c.dModel];
  }
  s['encoder.final_layer_norm.weight'] = [c.dModel];
  for (let i = 0; i < c.numDecoderLayers; i++) {
    const b = `decoder.block.${i}`;
    attn(`${b}.layer.0.SelfAttention`);
    if (i === 0) s[`${b}.layer.0.SelfAttention.relative_attention_bias.weight`] = [c.relativeAttentionNumBuckets, c.numHeads];
    s[`${b}.layer.0.layer_norm.weight`] = [c.dModel];
    attn(`${b}.layer.1.EncDecAttention`);
    s[`${b}.layer.1.layer_norm.weight`] = [c.dModel];
    s[`${b}.layer.2.DenseReluDense.wi.weight`] = [c.dFf, c.dModel];
    s[`${b}.layer.2.DenseReluDense.wo.weight`] = [c.dModel, c.dFf];
    s[`${b}.layer.2.layer_norm.weight`] = [c.dModel];
  }
  s['decoder.final_layer_norm.weight'] = [c.dModel];
  return s;
}
