// Loads the native addon (build/Release/tokenrec.node, built by `npm run build:native`) and
// gives typed access to its functions. Each area of the library declares the signatures it
// uses with nativeFunction<T>(name), so there is no central list to keep in step.
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export type Backend = 'auto' | 'cpu' | 'cuda';

export interface BackendInfo {
  /** Backends compiled into the addon: always 'cpu', plus 'cuda' when nvcc was found at build time. */
  compiled: string[];
  cuda: { available: boolean; device?: string; computeCapability?: string; memoryBytes?: number; reason?: string };
  /** CPU instruction set the kernels were compiled for, e.g. "avx2+fma". */
  cpuIsa: string;
  /** "openblas" or "builtin". */
  gemm: string;
  /** CPU threads the kernels use (TOKENREC_NUM_THREADS or the core count). */
  threads: number;
}

interface CoreAddon {
  backendInfo(): BackendInfo;
  setNumThreads(n: number): number;
  [name: string]: unknown;
}

/** The package root: the nearest folder above this file whose package.json is tokenrec's. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if ((JSON.parse(readFileSync(pj, 'utf8')) as { name?: string }).name === 'tokenrec') return dir;
      } catch {
        // not ours; keep looking
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('tokenrec: cannot find the package root (package.json) above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

let cached: CoreAddon | undefined;

/** Loads the addon once. TOKENREC_ADDON may point at another build of tokenrec.node. */
export function addon(): CoreAddon {
  if (cached) return cached;
  const path = process.env.TOKENREC_ADDON
    ? resolve(process.env.TOKENREC_ADDON)
    : join(packageRoot(), 'build', 'Release', 'tokenrec.node');
  if (!existsSync(path)) {
    throw new Error(`tokenrec: the native addon is not built (${path} is missing). Run \`npm run build\` first.`);
  }
  const require = createRequire(import.meta.url);
  cached = require(path) as CoreAddon;
  return cached;
}

/** A typed native function; throws a clear error when the addon lacks it (an old build). */
export function nativeFunction<F extends (...args: never[]) => unknown>(name: string): F {
  const fn = addon()[name];
  if (typeof fn !== 'function') {
    throw new Error(`tokenrec: the native addon has no function '${name}': rebuild it with \`npm run build:native\``);
  }
  return fn as F;
}

export function backendInfo(): BackendInfo {
  return addon().backendInfo();
}

/** Sets the number of CPU threads the native kernels use; returns the count now in force. */
export function setNumThreads(n: number): number {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`threads must be a non-negative integer, got ${n}`);
  return addon().setNumThreads(n);
}

let warnedFallback = false;

/**
 * Resolves the backend for a call. TOKENREC_BACKEND overrides 'auto'. 'auto' uses CUDA when a
 * device is usable, else the CPU (with a one-time warning when CUDA was compiled in but no device
 * answered). An explicit 'cuda' without a device is an error.
 */
export function resolveBackend(requested: Backend = 'auto'): 'cpu' | 'cuda' {
  let want: string = requested;
  if (want === 'auto' && process.env.TOKENREC_BACKEND) want = process.env.TOKENREC_BACKEND;
  if (want !== 'auto' && want !== 'cpu' && want !== 'cuda') {
    throw new TypeError(`backend must be 'auto', 'cpu' or 'cuda', got '${want}'`);
  }
  const info = backendInfo();
  if (want === 'cpu') return 'cpu';
  if (want === 'cuda') {
    if (!info.cuda.available) throw new Error(`backend 'cuda' was requested but is not usable: ${info.cuda.reason ?? 'unknown reason'}`);
    return 'cuda';
  }
  if (info.cuda.available) return 'cuda';
  if (info.compiled.includes('cuda') && !warnedFallback) {
    warnedFallback = true;
    process.emitWarning(`tokenrec: CUDA kernels are compiled in but no device is usable (${info.cuda.reason}); using the CPU`);
  }
  return 'cpu';
}
