import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeSafetensors, encodeSafetensors, expectTensor, f32, i32, readSafetensors, requireFinite, writeSafetensors } from '../lib/io/safetensors.js';
import { openManifest, recordStage, requireManifest, splitFingerprint, stageIsCurrent, verifyStage, writeManifest } from '../lib/io/manifest.js';
import { writeFileAtomic } from '../lib/io/atomic.js';
import { splitLeaveOneOut } from '../lib/data/split.js';
import { syntheticDataset } from '../lib/data/synthetic.js';
import { tempDir } from './helpers/tmp.js';

const tmp = tempDir();

describe('safetensors', () => {
  it('round-trips F32 and I32 tensors with metadata, 8-byte aligned', () => {
    const p = join(tmp.dir, 'a.safetensors');
    writeSafetensors(p, { w: f32([2, 3], Float32Array.from([1, 2, 3, 4, 5, 6])), codes: i32([3], Int32Array.from([7, -1, 9])) }, { note: 'hi' });
    const buf = readFileSync(p);
    expect(Number(buf.readBigUInt64LE(0)) % 8).toBe(0);
    const { tensors, metadata } = readSafetensors(p);
    expect(metadata).toEqual({ note: 'hi' });
    expect(tensors.w.shape).toEqual([2, 3]);
    expect(Array.from(tensors.w.data)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(tensors.codes.dtype).toBe('I32');
    expect(Array.from(tensors.codes.data)).toEqual([7, -1, 9]);
  });

  it('reads BF16 and F16 as F32 (Hugging Face checkpoints)', () => {
    const header = JSON.stringify({ a: { dtype: 'BF16', shape: [2], data_offsets: [0, 4] }, b: { dtype: 'F16', shape: [2], data_offsets: [4, 8] } });
    const h = Buffer.alloc(8);
    h.writeBigUInt64LE(BigInt(header.length));
    // bf16 1.0 = 0x3f80, -2.0 = 0xc000; f16 1.0 = 0x3c00, 0.5 = 0x3800
    const data = Buffer.from([0x80, 0x3f, 0x00, 0xc0, 0x00, 0x3c, 0x00, 0x38]);
    const { tensors } = decodeSafetensors(Buffer.concat([h, Buffer.from(header), data]));
    expect(Array.from(tensors.a.data)).toEqual([1, -2]);
    expect(Array.from(tensors.b.data)).toEqual([1, 0.5]);
  });

  it('rejects malformed files and wrong shapes clearly', () => {
    expect(() => decodeSafetensors(new Uint8Array(3), 'x')).toThrow(/too short/);
    const bad = Buffer.alloc(16);
    bad.writeBigUInt64LE(1000n);
    expect(() => decodeSafetensors(bad, 'x')).toThrow(/exceeds the file size/);
    const junk = Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{{{{')]);
    expect(() => decodeSafetensors(junk, 'x')).toThrow(/not valid JSON/);
    expect(() => encodeSafetensors({ w: f32([3], new Float32Array(2)) })).toThrow(/holds 3 values but data has 2/);
    const t = { w: f32([2, 2], new Float32Array(4)) };
    expect(() => expectTensor(t, 'w', [2, 3], 'ckpt')).toThrow(/shape \[2,2\], expected \[2,3\]/);
    expect(() => expectTensor(t, 'v', [2], 'ckpt')).toThrow(/'v' is missing/);
    expect(() => requireFinite(f32([2], Float32Array.from([1, NaN])), 'w', 'ckpt')).toThrow(/non-finite/);
  });
});

describe('model directory', () => {
  const split = splitLeaveOneOut(syntheticDataset({ users: 50, items: 30, seed: 1 }));
  const dataset = { name: 'syn', fingerprint: splitFingerprint(split), users: 50, items: 30, interactions: 0 };

  it('fingerprints differ for different data and agree for the same', () => {
    const again = splitLeaveOneOut(syntheticDataset({ users: 50, items: 30, seed: 1 }));
    const other = splitLeaveOneOut(syntheticDataset({ users: 50, items: 30, seed: 2 }));
    expect(splitFingerprint(again)).toBe(dataset.fingerprint);
    expect(splitFingerprint(other)).not.toBe(dataset.fingerprint);
  });

  it('records stages with sha256, verifies them, and refuses another dataset', () => {
    const dir = join(tmp.dir, 'model');
    const m = openManifest(dir, dataset);
    writeSafetensors(join(dir, 'cf.safetensors'), { x: f32([1], Float32Array.from([1])) });
    recordStage(dir, m, 'cf', { dim: 4 }, ['cf.safetensors'], { hr: 1 });
    const back = requireManifest(dir);
    expect(stageIsCurrent(dir, back, 'cf', { dim: 4 })).toBe(true);
    expect(stageIsCurrent(dir, back, 'cf', { dim: 8 })).toBe(false);
    verifyStage(dir, back, 'cf');
    writeFileSync(join(dir, 'cf.safetensors'), 'tampered');
    expect(() => verifyStage(dir, back, 'cf')).toThrow(/corrupted or was changed/);
    expect(() => openManifest(dir, { ...dataset, fingerprint: 'f'.repeat(64) })).toThrow(/another dataset/);
    expect(() => requireManifest(join(tmp.dir, 'nothing'))).toThrow(/not a tokenrec model directory/);
    writeManifest(dir, { ...back, version: 99 });
    expect(() => requireManifest(dir)).toThrow(/version 99/);
  });

  it('atomic writes leave no temporary files and replace whole files', () => {
    const p = join(tmp.dir, 'atomic', 'f.txt');
    writeFileAtomic(p, 'one');
    writeFileAtomic(p, [Buffer.from('tw'), Buffer.from('o')]);
    expect(readFileSync(p, 'utf8')).toBe('two');
    expect(readdirSync(join(tmp.dir, 'atomic'))).toEqual(['f.txt']);
    expect(existsSync(p)).toBe(true);
  });
});

describe('stage order', () => {
  it('recording a stage drops the later stages built on its previous version', () => {
    const split = splitLeaveOneOut(syntheticDataset({ users: 20, items: 10, seed: 1 }));
    const dir = join(tmp.dir, 'order');
    const m = openManifest(dir, { name: 's', fingerprint: splitFingerprint(split), users: 20, items: 10, interactions: 0 });
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'a.bin'), 'x');
    for (const st of ['cf', 'tokenizer', 'llm']) recordStage(dir, m, st, {}, ['a.bin']);
    expect(Object.keys(requireManifest(dir).stages)).toEqual(['cf', 'tokenizer', 'llm']);
    recordStage(dir, requireManifest(dir), 'tokenizer', { v: 2 }, ['a.bin']);
    expect(Object.keys(requireManifest(dir).stages)).toEqual(['cf', 'tokenizer']);
  });
});
