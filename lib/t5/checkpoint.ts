// Loading T5 weights with Hugging Face names from a safetensors file (ours, or a Hugging Face
// checkpoint: F16/BF16 tensors are widened to float32 by the reader). Every tensor the config
// needs must be present with its exact shape and finite values; tensors the config does not
// use (lm_head.weight, encoder.embed_tokens.weight, training state) are ignored.
import { readSafetensors, decodeSafetensors, expectTensor, requireFinite, type TensorMap } from '../io/safetensors.js';
import { t5TensorShapes, validateT5Config, type T5Config } from './config.js';

/** Picks and checks the T5 tensors of `config` out of a decoded safetensors map. */
export function t5TensorsFrom(tensors: TensorMap, config: T5Config, source: string): Record<string, Float32Array> {
  validateT5Config(config);
  const out: Record<string, Float32Array> = {};
  for (const [name, shape] of Object.entries(t5TensorShapes(config))) {
    const t = expectTensor(tensors, name, shape, source);
    if (!(t.data instanceof Float32Array)) throw new Error(`${source}: tensor '${name}' has dtype ${t.dtype}, expected a float tensor (F32, F16 or BF16)`);
    requireFinite(t, name, source);
    out[name] = t.data;
  }
  return out;
}

/** Reads a T5 checkpoint (safetensors, Hugging Face tensor names) for `config`. */
export function loadT5Checkpoint(path: string, config: T5Config): Record<string, Float32Array> {
  return t5TensorsFrom(readSafetensors(path).tensors, config, path);
}

/** The same from bytes already in memory. */
export function decodeT5Checkpoint(bytes: Uint8Array, config: T5Config, source = 'T5 checkpoint'): Record<string, Float32Array> {
  return t5TensorsFrom(decodeSafetensors(bytes, source).tensors, config, source);
}
