// `tokenrec bench latency [dir] [--synthetic --preset t5-mini|t5-small] [--json]`: per-user latency
// (batch 1) and throughput (batch 32, 256) of TokenRec's generative retrieval (backbone forward +
// exact top-K) vs the autoregressive beam-search baseline (beam 20), in one run, on the same
// preset, prompts and thread count (bench/latency.ts). With a model directory the trained graphs
// are used; --synthetic builds both from random weights of a preset (latency does not depend on
// the weight values).
import { writeFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { formatLatency, modelDirSetup, runLatencyBench, syntheticSetup } from '../../bench/latency.js';
import type { T5PresetName } from '../t5/config.js';

interface LatencyCliOptions {
  synthetic?: boolean;
  preset: T5PresetName[];
  items: number;
  threads: number;
  batches: number[];
  beam: number;
  k: number;
  history: number;
  repeats: number;
  cellSeconds: number;
  json?: boolean;
  out?: string;
  progress: boolean;
}

function positiveInt(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got '${v}'`);
    return n;
  };
}

function intList(name: string) {
  return (v: string) => v.split(',').map((x) => positiveInt(name)(x));
}

export function registerBench(program: Command): void {
  const bench = program.command('bench').description('benchmarks');
  bench
    .command('latency [dir]')
    .description('latency/throughput of generative retrieval (backbone + top-K) vs the beam-search baseline (beam 20), same preset and threads')
    .option('--synthetic', 'random weights of --preset instead of a trained model directory (latency does not depend on weight values)')
    .addOption(new Option('--preset <names>', 'T5 presets for --synthetic, comma-separated').default(['t5-mini']).argParser((v: string) => v.split(',') as T5PresetName[]))
    .option('--items <n>', 'items for --synthetic (LastFM has 3,646)', positiveInt('--items'), 3646)
    .option('--threads <n>', 'ONNX Runtime intra-op and top-K threads', positiveInt('--threads'), 2)
    .option('--batches <list>', 'batch sizes', intList('--batches'), [1, 32, 256])
    .option('--beam <n>', 'beam width of the baseline', positiveInt('--beam'), 20)
    .option('--k <n>', 'items returned per user by both', positiveInt('--k'), 20)
    .option('--history <n>', 'history items per prompt', positiveInt('--history'), 40)
    .option('--repeats <n>', 'timed runs per cell (after one warm-up); medians are reported', positiveInt('--repeats'), 5)
    .option('--cell-seconds <n>', 'stop repeating a cell after this many seconds', positiveInt('--cell-seconds'), 60)
    .option('--json', 'machine-readable output on stdout')
    .option('--out <file>', 'also write the JSON results to a file')
    .option('--no-progress', 'no progress lines on stderr')
    .action(async (dir: string | undefined, o: LatencyCliOptions) => {
      if (!o.synthetic && !dir) throw new Error('bench latency: give a model directory, or --synthetic --preset <name>');
      if (o.synthetic && dir) throw new Error('bench latency: give either a model directory or --synthetic, not both');
      const setups = o.synthetic ? o.preset.map((preset) => () => syntheticSetup({ preset, items: o.items })) : [() => modelDirSetup(dir as string)];
      const results = [];
      for (const make of setups) {
        const setup = make();
        const r = await runLatencyBench(setup, {
          batches: o.batches,
          threads: o.threads,
          beam: o.beam,
          k: o.k,
          history: o.history,
          repeats: o.repeats,
          cellSeconds: o.cellSeconds,
          onProgress: o.progress && !o.json ? (l) => console.error(l) : undefined,
        });
        results.push(r);
        if (!o.json) console.log(formatLatency(r) + '\n');
      }
      if (o.json) console.log(JSON.stringify(results));
      if (o.out) writeFileSync(o.out, JSON.stringify(results, null, 2) + '\n');
    });
}
