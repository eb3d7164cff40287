// Running an exported T5 backbone (lib/t5/onnx-export.ts) with ONNX Runtime: typed inputs in,
// decoder states (and z / encoder states when the model has them) out. Used by serving, the
// benchmark and the parity tests.
import { OnnxSession, type OnnxRunner, type OnnxSessionOptions, type OnnxTensor } from './session.js';
import { T5_ONNX_IO } from '../t5/onnx-export.js';

export interface T5OnnxInputs {
  /** (batch, encLen) token ids. */
  inputIds: Int32Array | BigInt64Array;
  /** (batch, encLen): 1 = token, 0 = padding. Converted to the model's mask dtype. */
  attentionMask: Int32Array | BigInt64Array | Float32Array;
  /** (batch, decLen) decoder token ids. */
  decoderInputIds: Int32Array | BigInt64Array;
  batch: number;
  encLen: number;
  decLen: number;
}

export interface T5OnnxOutputs {
  /** (batch, decLen, dModel) */
  decoderHidden: Float32Array;
  /** (batch, encLen, dModel), when the model outputs it. */
  encoderHidden?: Float32Array;
  /** (batch, out), when the model has a head. */
  z?: Float32Array;
}

function maskFor(session: OnnxRunner, mask: T5OnnxInputs['attentionMask']): OnnxTensor['data'] {
  const spec = session.inputs.find((i) => i.name === T5_ONNX_IO.attentionMask);
  if (!spec) throw new Error(`${session.source}: not a T5 export (no '${T5_ONNX_IO.attentionMask}' input)`);
  if (spec.type === 'float32' && !(mask instanceof Float32Array)) return Float32Array.from(mask as ArrayLike<number | bigint>, Number);
  if (spec.type === 'int64' && mask instanceof Float32Array) return BigInt64Array.from(mask, (v) => BigInt(Math.round(v)));
  return mask;
}

function checkIds(ids: Int32Array | BigInt64Array, n: number, vocabSize: number | undefined, name: string): void {
  if (ids.length !== n) throw new RangeError(`${name}: expected ${n} ids for its (batch, length), got ${ids.length}`);
  if (vocabSize === undefined) return;
  for (let i = 0; i < ids.length; i++) {
    const v = Number(ids[i]);
    if (!(v >= 0 && v < vocabSize)) throw new RangeError(`${name}[${i}] = ${v} is outside the vocabulary [0, ${vocabSize})`);
  }
}

export interface RunOnnxT5Options extends OnnxSessionOptions {
  /** When given, ids are checked against [0, vocabSize) before the run (ONNX Runtime's own error is less clear). */
  vocabSize?: number;
}

/**
 * Runs an exported T5 on one batch. `model` is ONNX bytes (an inline session is created with
 * `opts` and disposed afterwards) or an open session, inline or in a worker (left open).
 */
export async function runOnnxT5(model: Uint8Array | OnnxRunner, inputs: T5OnnxInputs, opts: RunOnnxT5Options = {}): Promise<T5OnnxOutputs> {
  const { batch: B, encLen: S, decLen: T } = inputs;
  for (const [k, v] of [['batch', B], ['encLen', S], ['decLen', T]] as const) {
    if (!(Number.isInteger(v) && v >= 1)) throw new RangeError(`runOnnxT5: ${k} must be a positive integer, got ${v}`);
  }
  checkIds(inputs.inputIds, B * S, opts.vocabSize, 'input_ids');
  checkIds(inputs.decoderInputIds, B * T, opts.vocabSize, 'decoder_input_ids');
  const mask = inputs.attentionMask;
  if (mask.length !== B * S) throw new RangeError(`attention_mask: expected ${B * S} values for (batch, encLen), got ${mask.length}`);
  for (let i = 0; i < mask.length; i++) {
    const m = Number(mask[i]);
    if (m !== 0 && m !== 1) throw new RangeError(`attention_mask[${i}] = ${m}: the mask holds 1 (token) or 0 (padding)`);
  }
  const session: OnnxRunner = model instanceof Uint8Array ? await OnnxSession.create(model, opts) : model;
  try {
    const res = await session.run({
      [T5_ONNX_IO.inputIds]: { data: inputs.inputIds, dims: [B, S] },
      [T5_ONNX_IO.attentionMask]: { data: maskFor(session, inputs.attentionMask), dims: [B, S] },
      [T5_ONNX_IO.decoderInputIds]: { data: inputs.decoderInputIds, dims: [B, T] },
    });
    const out: T5OnnxOutputs = { decoderHidden: res[T5_ONNX_IO.decoderHidden].data as Float32Array };
    if (res[T5_ONNX_IO.encoderHidden]) out.encoderHidden = res[T5_ONNX_IO.encoderHidden].data as Float32Array;
    if (res[T5_ONNX_IO.z]) out.z = res[T5_ONNX_IO.z].data as Float32Array;
    return out;
  } finally {
    if (model instanceof Uint8Array) await session.dispose();
  }
}
