// Machine description printed by every benchmark and stored with its results.
import { cpus, totalmem } from 'node:os';
import { backendInfo, type BackendInfo } from '../lib/native/addon.js';

export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryGiB: number;
  node: string;
  backend: BackendInfo;
  date: string;
}

export function machineInfo(): MachineInfo {
  const c = cpus();
  return {
    cpu: `${c[0]?.model ?? 'unknown'} @ ${c[0]?.speed ?? 0} MHz`,
    cores: c.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    backend: backendInfo(),
    date: new Date().toISOString(),
  };
}

export function describeMachine(m: MachineInfo = machineInfo()): string {
  const b = m.backend;
  return `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}; kernels: ${b.cpuIsa}, ${b.threads} threads, GEMM ${b.gemm}, CUDA ${b.cuda.available ? b.cuda.device : 'not available'}`;
}

/** Median wall time (ms) of `runs` calls after one warm-up. */
export async function timeMs(fn: () => unknown | Promise<unknown>, runs = 3): Promise<number> {
  await fn();
  const t: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    t.push(performance.now() - t0);
  }
  t.sort((a, b) => a - b);
  return t[t.length >> 1];
}

/** Removes `name value` from args and returns the value (undefined when the flag is absent). */
export function takeOption(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
}
