// The safetensors format (8-byte little-endian header length, a JSON header giving each
// tensor's dtype, shape and byte range, then the raw little-endian data). Small enough to
// implement here; we need F32 and I32, and read F16/BF16 as F32 for Hugging Face checkpoints.
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from './atomic.js';

export type TensorDtype = 'F32' | 'I32';

export interface Tensor {
  dtype: TensorDtype;
  shape: number[];
  data: Float32Array | Int32Array;
}

export type TensorMap = Record<string, Tensor>;

export function f32(shape: number[], data: Float32Array): Tensor {
  return { dtype: 'F32', shape, data };
}
export function i32(shape: number[], data: Int32Array): Tensor {
  return { dtype: 'I32', shape, data };
}

function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Serialises tensors (sorted by name) and optional string metadata. */
export function encodeSafetensors(tensors: TensorMap, metadata?: Record<string, string>): Uint8Array[] {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const t = tensors[name];
    if (numel(t.shape) !== t.data.length) {
      throw new RangeError(`tensor '${name}': shape [${t.shape}] holds ${numel(t.shape)} values but data has ${t.data.length}`);
    }
    if ((t.dtype === 'F32') !== t.data instanceof Float32Array) throw new TypeError(`tensor '${name}': dtype ${t.dtype} does not match its data`);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so the data starts 8-byte aligned.
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const head = Buffer.alloc(8 + Buffer.byteLength(json));
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)), 0);
  head.write(json, 8, 'utf8');
  const parts: Uint8Array[] = [head];
  for (const name of names) {
    const d = tensors[name].data;
    parts.push(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }
  return parts;
}

/** Writes a safetensors file atomically. */
export function writeSafetensors(path: string, tensors: TensorMap, metadata?: Record<string, string>): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

function bf16ToF32(src: Uint8Array): Float32Array {
  const out = new Float32Array(src.length / 2);
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < out.length; i++) u[i] = (src[2 * i] | (src[2 * i + 1] << 8)) << 16;
  return out;
}

function f16ToF32(src: Uint8Array): Float32Array {
  const out = new Float32Array(src.length / 2);
  for (let i = 0; i < out.length; i++) {
    const h = src[2 * i] | (src[2 * i + 1] << 8);
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const f = h & 0x3ff;
    out[i] = e === 0 ? s * 2 ** -14 * (f / 1024) : e === 31 ? (f ? NaN : s * Infinity) : s * 2 ** (e - 15) * (1 + f / 1024);
  }
  return out;
}

/**
 * Parses a safetensors buffer. F32/I32 tensors come back as such; F16 and BF16 are widened to
 * F32. Malformed files get an error naming the problem and the source.
 */
export function decodeSafetensors(buf: Uint8Array, source = 'safetensors data'): { tensors: TensorMap; metadata: Record<string, string> } {
  if (buf.byteLength < 8) throw new Error(`${source}: too short to be a safetensors file (${buf.byteLength} bytes)`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const hlen = Number(view.getBigUint64(0, true));
  if (hlen > buf.byteLength - 8) throw new Error(`${source}: header length ${hlen} exceeds the file size`);
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>>;
  try {
    header = JSON.parse(Buffer.from(buf.buffer, buf.byteOffset + 8, hlen).toString('utf8'));
  } catch (e) {
    throw new Error(`${source}: the header is not valid JSON (${(e as Error).message})`);
  }
  const base = 8 + hlen;
  const tensors: TensorMap = {};
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = entry as Record<string, string>;
      continue;
    }
    const { dtype, shape, data_offsets } = entry as { dtype: string; shape: number[]; data_offsets: [number, number] };
    if (!Array.isArray(shape) || !Array.isArray(data_offsets)) throw new Error(`${source}: tensor '${name}' has a malformed header entry`);
    const [a, b] = data_offsets;
    if (!(a >= 0 && b >= a && base + b <= buf.byteLength)) throw new Error(`${source}: tensor '${name}' points outside the file`);
    // A copy (Uint8Array.prototype.slice; Buffer#slice would be a view): aligned, independent of the file buffer.
    const bytes = new Uint8Array(buf.buffer, buf.byteOffset + base + a, b - a).slice();
    const n = numel(shape);
    let data: Float32Array | Int32Array;
    if (dtype === 'F32') data = new Float32Array(bytes.buffer, 0, bytes.byteLength / 4);
    else if (dtype === 'I32') data = new Int32Array(bytes.buffer, 0, bytes.byteLength / 4);
    else if (dtype === 'BF16') data = bf16ToF32(bytes);
    else if (dtype === 'F16') data = f16ToF32(bytes);
    else throw new Error(`${source}: tensor '${name}' has unsupported dtype ${dtype} (F32, I32, F16, BF16 are read)`);
    if (data.length !== n) throw new Error(`${source}: tensor '${name}' has ${data.length} values for shape [${shape}]`);
    tensors[name] = { dtype: data instanceof Int32Array ? 'I32' : 'F32', shape, data };
  }
  return { tensors, metadata };
}

export function readSafetensors(path: string): { tensors: TensorMap; metadata: Record<string, string> } {
  return decodeSafetensors(readFileSync(path), path);
}

/** Gets a tensor by name with the expected shape, or throws naming what differs. */
export function expectTensor(tensors: TensorMap, name: string, shape: number[], source: string): Tensor {
  const t = tensors[name];
  if (!t) throw new Error(`${source}: tensor '${name}' is missing`);
  if (t.shape.length !== shape.length || t.shape.some((s, i) => shape[i] >= 0 && s !== shape[i])) {
    throw new Error(`${source}: tensor '${name}' has shape [${t.shape}], expected [${shape.map((s) => (s < 0 ? '*' : s))}]`);
  }
  return t;
}

/** Throws when a float tensor holds NaN or infinity. */
export function requireFinite(t: Tensor, name: string, source: string): void {
  const d = t.data;
  for (let i = 0; i < d.length; i++) {
    if (!Number.isFinite(d[i])) throw new Error(`${source}: tensor '${name}' holds a non-finite value (${d[i]}) at flat index ${i}`);
  }
}
