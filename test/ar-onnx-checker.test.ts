// The AR baseline's graphs (lib/ar/onnx-export.ts) pass the official ONNX checker (full check,
// strict type and shape inference). Needs Python's `onnx` package; skipped without it.
import { describe, expect, it } from 'vitest';
import { checkOnnxGraphs, HAVE_ONNX_CHECKER } from './helpers/onnx-checker.js';
import { exportARDecoderStepOnnx, exportAREncoderOnnx } from '../lib/ar/onnx-export.js';
import { t5Config, t5TensorShapes } from '../lib/t5/config.js';
import { rng } from './helpers/random.js';

describe.skipIf(!HAVE_ONNX_CHECKER)('ONNX checker on the AR graphs (python3-onnx)', () => {
  it('accepts the encoder and decoder-step graphs', () => {
    const config = t5Config('t5-tiny', 60, { numDecoderLayers: 2 });
    const rand = rng(4);
    const w: Record<string, Float32Array> = {};
    for (const [n, s] of Object.entries(t5TensorShapes(config))) w[n] = Float32Array.from({ length: s.reduce((a, b) => a * b, 1) }, () => rand() - 0.5);
    const K = 3, L = 5;
    const heads = { K, L, weights: Array.from({ length: K }, () => new Float32Array(L * 32).fill(0.1)), biases: Array.from({ length: K }, () => new Float32Array(L)) };
    const r = checkOnnxGraphs({ 'enc.onnx': exportAREncoderOnnx(config, w), 'step.onnx': exportARDecoderStepOnnx(config, w, heads) });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`('cross_key_1', ['batch', 4, 8, 'enc_len'])`);
    expect(r.stdout).toContain(`('log_probs', ['rows', 5])`);
  });
});
