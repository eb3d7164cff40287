import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GraphBuilder, decodeModel, floatAttr } from '../lib/onnx/builder.js';
import { OnnxSession } from '../lib/onnx/session.js';

// y = relu(E[ids] @ W + b) * scale: exercises float and int64 initializers, attributes,
// symbolic dims shared by two inputs, and a fixed dim.
function tinyModel(): Uint8Array {
  const g = new GraphBuilder('tiny');
  const ids = g.input('ids', 'int64', ['batch', 'len']);
  const x = g.input('x', 'float', ['batch', 'len', 2]);
  const E = g.initializer('E', [4, 2], new Float32Array([0, 0, 1, 2, -3, 4, 5, -6]));
  const W = g.initializer('W', [2, 3], new Float32Array([1, 0, 1, 0, 1, 1]));
  const b = g.initializer('b', [3], new Float32Array([0.5, -0.5, 0]));
  const e = g.op('Gather', [E, ids], { axis: 0 });
  const s = g.op('Add', [e, x]);
  const y = g.op('Relu', [g.op('Add', [g.op('MatMul', [s, W]), b])]);
  const scaled = g.op('Mul', [y, g.float(2)]);
  const lrelu = g.op('LeakyRelu', [scaled], { alpha: floatAttr(0.5) });
  g.output(lrelu, 'y', 'float', ['batch', 'len', 3]);
  return g.toModel({ metadata: { purpose: 'test' } });
}

function expected(ids: number[], x: number[]): number[] {
  const E = [[0, 0], [1, 2], [-3, 4], [5, -6]];
  const out: number[] = [];
  ids.forEach((id, t) => {
    const s = [E[id][0] + x[2 * t], E[id][1] + x[2 * t + 1]];
    const z = [s[0] + 0.5, s[1] - 0.5, s[0] + s[1]];
    for (const v of z) out.push(2 * Math.max(0, v));
  });
  return out;
}

describe('GraphBuilder + OnnxSession', () => {
  it('writes a model ONNX Runtime runs, with dynamic dims', async () => {
    const bytes = tinyModel();
    const m = decodeModel(bytes);
    expect(Number(m.irVersion)).toBe(8);
    expect(m.metadataProps[0]).toMatchObject({ key: 'purpose', value: 'test' });
    const s = await OnnxSession.create(bytes, { intraOpNumThreads: 1 });
    expect(s.provider).toBe('cpu');
    expect(s.intraOpNumThreads).toBe(1);
    expect(s.inputs.map((i) => [i.name, i.type, i.shape])).toEqual([
      ['ids', 'int64', ['batch', 'len']],
      ['x', 'float32', ['batch', 'len', 2]],
    ]);
    for (const [B, L] of [[1, 3], [2, 5]]) {
      const ids = Array.from({ length: B * L }, (_, i) => (i * 7 + 1) % 4);
      const x = Array.from({ length: B * L * 2 }, (_, i) => Math.sin(i) * 3);
      const r = await s.run({ ids: { data: BigInt64Array.from(ids, BigInt), dims: [B, L] }, x: { data: Float32Array.from(x), dims: [B, L, 2] } });
      expect(r.y.dims).toEqual([B, L, 3]);
      const want = expected(ids, x);
      Array.from(r.y.data as Float32Array).forEach((v, i) => expect(v).toBeCloseTo(want[i], 5));
    }
    // Int32Array ids are widened to int64.
    const r = await s.run({ ids: { data: new Int32Array([3]), dims: [1, 1] }, x: { data: new Float32Array([0, 0]), dims: [1, 1, 2] } });
    expect(Array.from(r.y.data as Float32Array)).toEqual(expected([3], [0, 0]));
    await s.dispose();
  });

  it('rejects bad inputs with errors naming the input', async () => {
    const s = await OnnxSession.create(tinyModel(), { allowSpinning: false });
    expect(s.allowSpinning).toBe(false);
    const ids = { data: new BigInt64Array(6), dims: [2, 3] };
    const x = { data: new Float32Array(12), dims: [2, 3, 2] };
    await expect(s.run({ ids })).rejects.toThrow(/missing input 'x'/);
    await expect(s.run({ ids, x, z: x })).rejects.toThrow(/unknown input 'z'/);
    await expect(s.run({ ids, x: { data: new Float64Array(12), dims: [2, 3, 2] } })).rejects.toThrow(/input 'x': expected float32.*Float64Array/);
    await expect(s.run({ ids: { data: new Float32Array(6), dims: [2, 3] }, x })).rejects.toThrow(/input 'ids': expected int64/);
    await expect(s.run({ ids, x: { data: new Float32Array(12), dims: [2, 6] } })).rejects.toThrow(/input 'x': expected rank 3/);
    await expect(s.run({ ids, x: { data: new Float32Array(18), dims: [2, 3, 3] } })).rejects.toThrow(/input 'x': dimension 2 must be 2/);
    await expect(s.run({ ids, x: { data: new Float32Array(8), dims: [2, 2, 2] } })).rejects.toThrow(/input 'x': dimension 1 \('len'\) is 2 but input 'ids' has len = 3/);
    await expect(s.run({ ids, x: { data: new Float32Array(11), dims: [2, 3, 2] } })).rejects.toThrow(/hold 12 values but data has 11/);
    await expect(s.run({ ids, x }, ['nope'])).rejects.toThrow(/unknown output 'nope'/);
    // Out-of-range ids are caught by ONNX Runtime; the error is wrapped, not a crash.
    await expect(s.run({ ids: { data: new BigInt64Array(6).fill(9n), dims: [2, 3] }, x })).rejects.toThrow(/ONNX Runtime failed/);
    await s.dispose();
    await expect(s.run({ ids, x })).rejects.toThrow(/disposed/);
    await s.dispose();
  });

  it('builder: rejects duplicate names, non-integer INT attributes, size mismatches, empty graphs', () => {
    const g = new GraphBuilder('bad');
    const x = g.input('x', 'float', [2]);
    expect(() => g.input('x', 'float', [2])).toThrow(/'x' is already used/);
    expect(() => g.op('LeakyRelu', [x], { alpha: 0.5 })).toThrow(/wrap floats with floatAttr/);
    expect(() => g.initializer('w', [2, 2], new Float32Array(3))).toThrow(/holds 4 values but data has 3/);
    expect(() => g.annotate('nope', 'float', [2])).toThrow(/unknown value 'nope'/);
    expect(g.int64([1, 2])).toBe(g.int64([1, 2])); // constants are shared
    expect(g.fresh('relu')).not.toBe(g.fresh('relu'));
    expect(() => g.toModel()).toThrow(/no outputs/);
    const y = g.annotate(g.op('Relu', [x]), 'float', [2]);
    g.output(y, 'y', 'float', [2]);
    expect(decodeModel(g.toModel({ opset: 13 })).graph!.valueInfo.map((v) => v.name)).toEqual([y]);
  });

  it('loads from a file and reports unreadable or invalid models', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'onnx-session-'));
    try {
      const path = join(dir, 'tiny.onnx');
      writeFileSync(path, tinyModel());
      const s = await OnnxSession.create(path);
      expect(s.source).toBe(path);
      expect(s.outputs[0]).toMatchObject({ name: 'y', type: 'float32' });
      await s.dispose();
      await expect(OnnxSession.create(join(dir, 'missing.onnx'))).rejects.toThrow(/missing.onnx' cannot be read/);
      await expect(OnnxSession.create(new Uint8Array([1, 2, 3, 4]))).rejects.toThrow(/could not load/);
      await expect(OnnxSession.create(tinyModel(), { intraOpNumThreads: 0 })).rejects.toThrow(/intraOpNumThreads/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(OnnxSession.runtimeInfo().providers.map((p) => p.name)).toContain('cpu');
  });
});
