import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSafetensors, f32, i32, type TensorMap } from '../lib/io/safetensors.js';
import { loadT5Checkpoint, decodeT5Checkpoint } from '../lib/t5/checkpoint.js';
import { encodeSafetensors } from '../lib/io/safetensors.js';
import { t5Config, t5TensorShapes } from '../lib/t5/config.js';
import { rng } from './helpers/random.js';

const config = t5Config('t5-tiny', 20, { numEncoderLayers: 2 });

function checkpoint(seed = 1): TensorMap {
  const rand = rng(seed);
  const t: TensorMap = {};
  for (const [name, shape] of Object.entries(t5TensorShapes(config))) {
    const n = shape.reduce((a, b) => a * b, 1);
    t[name] = f32(shape, Float32Array.from({ length: n }, () => rand() - 0.5));
  }
  return t;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.byteLength, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.byteLength; }
  return out;
}

describe('loadT5Checkpoint', () => {
  it('reads every tensor of the config from a file, ignoring extras', () => {
    const dir = mkdtempSync(join(tmpdir(), 't5-ckpt-'));
    try {
      const t = checkpoint();
      t['lm_head.weight'] = f32([20, 32], new Float32Array(640));
      const path = join(dir, 'model.safetensors');
      writeSafetensors(path, t);
      const w = loadT5Checkpoint(path, config);
      const names = Object.keys(t5TensorShapes(config));
      expect(Object.keys(w).sort()).toEqual([...names].sort());
      for (const n of names) expect(Array.from(w[n])).toEqual(Array.from(t[n].data));
      expect(() => loadT5Checkpoint(join(dir, 'nope.safetensors'), config)).toThrow(/nope\.safetensors/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names the tensor that is missing, mis-shaped, non-float or non-finite', () => {
    const bytes = (t: TensorMap) => concat(encodeSafetensors(t));
    const missing = checkpoint();
    delete missing['decoder.block.0.layer.1.EncDecAttention.v.weight'];
    expect(() => decodeT5Checkpoint(bytes(missing), config, 'ck')).toThrow(/ck: tensor 'decoder.block.0.layer.1.EncDecAttention.v.weight' is missing/);

    const wrong = checkpoint();
    wrong['encoder.block.1.layer.1.DenseReluDense.wi.weight'] = f32([32, 64], new Float32Array(32 * 64));
    expect(() => decodeT5Checkpoint(bytes(wrong), config, 'ck')).toThrow(/'encoder.block.1.layer.1.DenseReluDense.wi.weight' has shape \[32,64\], expected \[64,32\]/);

    const ints = checkpoint();
    ints['shared.weight'] = i32([20, 32], new Int32Array(640));
    expect(() => decodeT5Checkpoint(bytes(ints), config, 'ck')).toThrow(/'shared.weight' has dtype I32/);

    for (const bad of [NaN, Infinity, -Infinity]) {
      const t = checkpoint();
      (t['decoder.final_layer_norm.weight'].data as Float32Array)[5] = bad;
      expect(() => decodeT5Checkpoint(bytes(t), config, 'ck')).toThrow(/'decoder.final_layer_norm.weight' holds a non-finite value .* index 5/);
    }
  });
});
