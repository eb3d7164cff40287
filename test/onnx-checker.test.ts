// The exported T5 graphs pass the official ONNX checker (full check, strict type and shape
// inference), so they are valid ONNX for any runtime, not only accepted by ONNX Runtime.
// Needs Python's `onnx` package (Debian: apt-get install python3-onnx); skipped without it.
import { describe, expect, it } from 'vitest';
import { checkOnnxGraphs, HAVE_ONNX_CHECKER } from './helpers/onnx-checker.js';
import { exportT5Onnx, type T5HeadLayer } from '../lib/t5/onnx-export.js';
import { t5Config, t5TensorShapes } from '../lib/t5/config.js';
import { rng } from './helpers/random.js';

describe.skipIf(!HAVE_ONNX_CHECKER)('ONNX checker (python3-onnx)', () => {
  it('accepts the T5 exports: plain, with head and encoder output, opset 13 with a float mask', () => {
    const config = t5Config('t5-tiny', 50, { numEncoderLayers: 2, numDecoderLayers: 2 });
    const rand = rng(4);
    const w: Record<string, Float32Array> = {};
    for (const [n, s] of Object.entries(t5TensorShapes(config))) w[n] = Float32Array.from({ length: s.reduce((a, b) => a * b, 1) }, () => rand() - 0.5);
    const head: T5HeadLayer[] = [
      { weight: new Float32Array(3 * 32 * 12).fill(0.01), bias: new Float32Array(12), inFeatures: 96, outFeatures: 12, activation: 'relu' },
      { weight: new Float32Array(12 * 4).fill(0.1), bias: new Float32Array(4), inFeatures: 12, outFeatures: 4, activation: 'none' },
    ];
    const r = checkOnnxGraphs({
      'plain.onnx': exportT5Onnx(config, w),
      'head.onnx': exportT5Onnx(config, w, { head, outputEncoderHidden: true }),
      'opset13.onnx': exportT5Onnx(config, w, { opset: 13, attentionMaskType: 'float' }),
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`plain.onnx [('decoder_hidden', ['batch', 'dec_len', 32])]`);
    expect(r.stdout).toContain(`head.onnx [('decoder_hidden', ['batch', 3, 32]), ('encoder_hidden', ['batch', 'enc_len', 32]), ('z', ['batch', 4])]`);
    expect(r.stdout).toContain('opset13.onnx');
  });
});
