// Typed access to the native MQ-Tokenizer kernels (native/binding/tokenizer_binding.cc).
import { addon, nativeFunction } from '../native/addon.js';

export interface NativeStepResult {
  loss: number;
  recon: number;
  codebook: number;
  commitment: number;
  /** Cross-encoder decorrelation term (0 when its weight is 0). */
  decorrelation: number;
  /** (B * K) codes chosen for the batch (masked input). */
  codes: Int32Array;
}

export interface NativeLayout {
  numParams: number;
  encoderOffsets: number[];
  encoderParams: number;
  codebookOffset: number;
  decoderOffset: number;
  decoderParams: number;
  encoderDims: number[];
  decoderDims: number[];
}

export interface NativeMqConfig {
  d: number;
  K: number;
  L: number;
  dc: number;
  encHidden: number[];
  decHidden: number[];
  maskRate: number;
  beta: number;
  decorrelation: number;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  seed: number;
  independentMasks: boolean;
}

/** Native model: parameters, AdamW state and scratch. Calls are serialised natively; dispose() frees it. */
export interface NativeMqTokenizer {
  trainStep(x: Float32Array, rowIds: Int32Array, epoch: number): Promise<NativeStepResult>;
  encode(x: Float32Array, backend?: 'cpu' | 'cuda'): Promise<{ codes: Int32Array; dist: Float32Array }>;
  encoderOutputs(x: Float32Array): Promise<Float32Array>;
  reconstruct(x: Float32Array): Promise<{ recon: Float32Array; codes: Int32Array }>;
  setCodewords(k: number, rows: Int32Array, values: Float32Array): void;
  getParams(): Float32Array;
  setParams(p: Float32Array): void;
  layout(): NativeLayout;
  dispose(): void;
  readonly step: number;
  readonly disposed: boolean;
}

type Ctor = new (c: NativeMqConfig) => NativeMqTokenizer;

export function newNativeTokenizer(c: NativeMqConfig): NativeMqTokenizer {
  const C = addon().MqTokenizer as Ctor | undefined;
  if (typeof C !== 'function') throw new Error("tokenrec: the native addon has no 'MqTokenizer': rebuild it with `npm run build:native`");
  return new C(c);
}

export type VqNearestFn = (o: {
  a: Float32Array;
  codebooks: Float32Array;
  K: number;
  dim: number;
  backend: 'cpu' | 'cuda';
}) => Promise<{ idx: Int32Array; dist: Float32Array }>;

export type KmeansFn = (o: { data: Float32Array; dim: number; L: number; iters: number; seed: number }) => Promise<{
  centroids: Float32Array;
  mse: number;
}>;

export const nativeVqNearest = () => nativeFunction<VqNearestFn>('vqNearest');
export const nativeKmeans = () => nativeFunction<KmeansFn>('kmeans');
