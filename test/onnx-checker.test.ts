// The exported T5 graphs pass the official ONNX checker (full check, strict type and shape
// inference), so they are valid ONNX for any runtime, not only accepted by ONNX Runtime.
// Needs Python's `onnx` package (Debian: apt-get install python3-onnx); skipped without it.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportT5Onnx, type T5HeadLayer } from '../lib/t5/onnx-export.js';
import { t5Config, t5TensorShapes } from '../lib/t5/config.js';
import { rng } from './helpers/random.js';

const PY = '/usr/bin/python3';
const hasOnnx = spawnSync(PY, ['-c', 'import onnx'], { stdio: 'ignore' }).status === 0;

const CHECK = `
import sys, onnx
from onnx import checker, shape_inference
for p in sys.argv[1:]:
    m = onnx.load(p)
    checker.check_model(m, full_check=True)
    inf = shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
    outs = [(o.name, [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim]) for o in inf.graph.output]
    print(p.rsplit('/', 1)[-1], outs)
`;

describe.skipIf(!hasOnnx)('ONNX checker (python3-onnx)', () => {
  it('accepts the T5 exports: plain, with head and encoder output, opset 13 with a float mask', () => {
    const config = t5Config('t5-tiny', 50, { numEncoderLayers: 2, numDecoderLayers: 2 });
    const rand = rng(4);
    const w: Record<string, Float32Array> = {};
    for (const [n, s] of Object.entries(t5TensorShapes(config))) w[n] = Float32Array.from({ length: s.reduce((a, b) => a * b, 1) }, () => rand() - 0.5);
    const head: T5HeadLayer[] = [
      { weight: new Float32Array(3 * 32 * 12).fill(0.01), bias: new Float32Array(12), inFeatures: 96, outFeatures: 12, activation: 'relu' },
      { weight: new Float32Array(12 * 4).fill(0.1), bias: new Float32Array(4), inFeatures: 12, outFeatures: 4, activation: 'none' },
    ];
    const dir = mkdtempSync(join(tmpdir(), 'onnx-check-'));
    try {
      const files = {
        'plain.onnx': exportT5Onnx(config, w),
        'head.onnx': exportT5Onnx(config, w, { head, outputEncoderHidden: true }),
        'opset13.onnx': exportT5Onnx(config, w, { opset: 13, attentionMaskType: 'float' }),
      };
      const paths = Object.entries(files).map(([name, bytes]) => {
        const p = join(dir, name);
        writeFileSync(p, bytes);
        return p;
      });
      const r = spawnSync(PY, ['-c', CHECK, ...paths], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout).toContain(`plain.onnx [('decoder_hidden', ['batch', 'dec_len', 32])]`);
      expect(r.stdout).toContain(`head.onnx [('decoder_hidden', ['batch', 3, 32]), ('encoder_hidden', ['batch', 'enc_len', 32]), ('z', ['batch', 4])]`);
      expect(r.stdout).toContain('opset13.onnx');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
