// The AR baseline's graphs (lib/ar/onnx-export.ts) pass the official ONNX checker (full check,
// strict type and shape inference). Needs Python's `onnx` package; skipped without it.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportARDecoderStepOnnx, exportAREncoderOnnx } from '../lib/ar/onnx-export.js';
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

describe.skipIf(!hasOnnx)('ONNX checker on the AR graphs (python3-onnx)', () => {
  it('accepts the encoder and decoder-step graphs', () => {
    const config = t5Config('t5-tiny', 60, { numDecoderLayers: 2 });
    const rand = rng(4);
    const w: Record<string, Float32Array> = {};
    for (const [n, s] of Object.entries(t5TensorShapes(config))) w[n] = Float32Array.from({ length: s.reduce((a, b) => a * b, 1) }, () => rand() - 0.5);
    const K = 3, L = 5;
    const heads = { K, L, weights: Array.from({ length: K }, () => new Float32Array(L * 32).fill(0.1)), biases: Array.from({ length: K }, () => new Float32Array(L)) };
    const dir = mkdtempSync(join(tmpdir(), 'ar-onnx-check-'));
    try {
      const paths = Object.entries({ 'enc.onnx': exportAREncoderOnnx(config, w), 'step.onnx': exportARDecoderStepOnnx(config, w, heads) }).map(([name, bytes]) => {
        const p = join(dir, name);
        writeFileSync(p, bytes);
        return p;
      });
      const r = spawnSync(PY, ['-c', CHECK, ...paths], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout).toContain(`('cross_key_1', ['batch', 4, 8, 'enc_len'])`);
      expect(r.stdout).toContain(`('log_probs', ['rows', 5])`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
