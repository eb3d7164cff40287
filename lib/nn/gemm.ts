// Row-major single-precision matrix product through the native core (OpenBLAS or the built-in
// blocked kernel): C (M, N) = alpha * op(A) * op(B) + beta * C.
import { nativeFunction } from '../native/addon.js';

type SgemmFn = (o: { transA: boolean; transB: boolean; M: number; N: number; K: number; alpha: number; beta: number; A: Float32Array; B: Float32Array; C: Float32Array }) => void;
let fn: SgemmFn | undefined;

export function sgemm(transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number, A: Float32Array, B: Float32Array, beta: number, C: Float32Array): void {
  fn ??= nativeFunction<SgemmFn>('sgemm');
  fn({ transA, transB, M, N, K, alpha, beta, A, B, C });
}
