// Latency and throughput of TokenRec's generative retrieval vs the autoregressive beam-search
// baseline on the same backbone preset, the same prompts and the same thread count, in one run.
//
//   TokenRec: one ONNX Runtime run of the LLM4Rec serving graph (prompt -> z: T5 encoder, the P
//             decoder query tokens in one pass, projection MLP) + exact top-K over all item
//             vectors (native ItemIndex, cosine).
//   Baseline: ONNX Runtime AR encoder once per batch (+ cross-attention K/V) + K cached decoder
//             steps with constrained beam search (lib/ar/onnx-beam.ts), beam 20 -> top-k items.
//
// Batch 1 gives per-user latency; batch 32 and 256 give throughput. Every cell: one warm-up run,
// then up to `repeats` timed runs (fewer when a cell exceeds its time budget), median taken per
// component. Used by `tokenrec bench latency` (lib/cli/bench.ts) and runnable directly:
//
//   npx tsc -p . && node dist/bench/latency.js --synthetic --preset t5-mini [--threads 2]
//     [--batches 1,32,256] [--history 40] [--items 3646] [--repeats 5] [--json out.json]
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { T5Model } from '../lib/t5/model.js';
import { t5Config, T5_PRESETS, type T5Config, type T5PresetName } from '../lib/t5/config.js';
import { exportT5Onnx, mlpHead, T5_ONNX_IO } from '../lib/t5/onnx-export.js';
import { exportARDecoderStepOnnx, exportAREncoderOnnx } from '../lib/ar/onnx-export.js';
import { OnnxARBeam, type BeamTimings } from '../lib/ar/onnx-beam.js';
import { CodeTrie } from '../lib/ar/trie.js';
import { OnnxSession } from '../lib/onnx/session.js';
import { decodeModel } from '../lib/onnx/builder.js';
import { readSafetensors } from '../lib/io/safetensors.js';
import { loadCfStage } from '../lib/cf/store.js';
import { TOKENIZER_FILES } from '../lib/tokenizer/stage.js';
import { ItemIndex } from '../lib/retrieval/topk.js';
import { Mlp } from '../lib/nn/mlp.js';
import { Vocabulary } from '../lib/llm/vocab.js';
import { padPrompts, promptTokens, type Codes, type PromptInputs } from '../lib/llm/model.js';
import { seededRandom } from '../lib/data/split.js';
import { setNumThreads } from '../lib/native/addon.js';
import { describeMachine, machineInfo, type MachineInfo } from './machine.js';

/** Everything the two paths need: graphs, codes, item vectors and the vocabulary for prompts. */
export interface LatencySetup {
  /** What was measured (shown in the output). */
  description: string;
  /** Random weights (latency does not depend on the values of the weights). */
  synthetic: boolean;
  config: T5Config;
  vocab: Vocabulary;
  userCodes: Codes;
  itemCodes: Codes;
  /** LLM4Rec serving graph: input_ids, attention_mask, decoder_input_ids -> z (B, itemDim). */
  backbone: Uint8Array | string;
  /** (numItems * itemDim) */
  itemVectors: Float32Array;
  itemDim: number;
  arEncoder: Uint8Array | string;
  arStep: Uint8Array | string;
}

export interface SyntheticSetupOptions {
  preset: T5PresetName;
  /** Items (default 3,646, LastFM's) and users with random distinct K-code tuples. */
  items?: number;
  users?: number;
  K?: number;
  L?: number;
  /** Decoder query tokens P of LLM4Rec (the reference code's 20). */
  queries?: number;
  projHidden?: number[];
  itemDim?: number;
  seed?: number;
}

function randomCodes(n: number, K: number, L: number, rand: () => number): Int32Array {
  if (n > L ** K) throw new RangeError(`${n} distinct code tuples do not fit in ${L}^${K}`);
  const seen = new Set<string>();
  const codes = new Int32Array(n * K);
  for (let i = 0; i < n; ) {
    const t = Array.from({ length: K }, () => Math.floor(rand() * L));
    const key = t.join(',');
    if (seen.has(key)) continue;
    seen.add(key);
    codes.set(t, i * K);
    i++;
  }
  return codes;
}

/**
 * A setup with random weights of a preset: one T5 (shared by both paths: same backbone), the
 * LLM4Rec projection, K linear AR heads, random item codes and vectors.
 */
export function syntheticSetup(o: SyntheticSetupOptions): LatencySetup {
  if (!T5_PRESETS[o.preset]) throw new Error(`unknown preset '${o.preset}' (known: ${Object.keys(T5_PRESETS).join(', ')})`);
  const items = o.items ?? 3646, users = o.users ?? 1090, K = o.K ?? 3, L = o.L ?? 256, P = o.queries ?? 20;
  const itemDim = o.itemDim ?? 64, hidden = o.projHidden ?? [512, 256], seed = o.seed ?? 1;
  const rand = seededRandom(seed);
  const vocab = new Vocabulary({ userK: K, userL: L, itemK: K, itemL: L, decoderQueries: P });
  const config = t5Config(o.preset, vocab.size, { dropoutRate: 0 });
  const t5 = T5Model.create(config, seed);
  let tensors: Record<string, Float32Array>;
  try {
    tensors = t5.getTensors();
  } finally {
    t5.dispose();
  }
  const proj = new Mlp([P * config.dModel, ...hidden, itemDim], seed + 1);
  const heads = Array.from({ length: K }, (_, k) => new Mlp([config.dModel, L], seed + 11 + k));
  const itemVectors = Float32Array.from({ length: items * itemDim }, () => rand() * 2 - 1);
  return {
    description: `synthetic ${o.preset} (random weights; ${items} items, K=${K}, L=${L}, P=${P}, projection [${proj.sizes}])`,
    synthetic: true,
    config,
    vocab,
    userCodes: { K, L, codes: randomCodes(users, K, L, rand) },
    itemCodes: { K, L, codes: randomCodes(items, K, L, rand) },
    backbone: exportT5Onnx(config, tensors, { head: mlpHead(proj.sizes, proj.weights, proj.biases) }),
    itemVectors,
    itemDim,
    arEncoder: exportAREncoderOnnx(config, tensors),
    arStep: exportARDecoderStepOnnx(config, tensors, { K, L, weights: heads.map((h) => h.weights[0]), biases: heads.map((h) => h.biases[0]) }),
  };
}

/**
 * File names in a model directory. The LLM4Rec stage writes backbone.onnx (with the projection
 * head; its metadata holds the T5 config), vocab.json, the codes and the CF item vectors; the
 * AR stage (lib/ar/stage.ts) writes ar-encoder.onnx and ar-step.onnx.
 */
export const LATENCY_FILES = {
  backbone: 'backbone.onnx',
  vocab: 'vocab.json',
  arEncoder: 'ar-encoder.onnx',
  arStep: 'ar-step.onnx',
} as const;

/**
 * A setup from a trained model directory: graphs and vocabulary from the LLM and AR stages,
 * codes from the tokenizer stage (tokenizer_codes.safetensors), item vectors from the CF stage.
 */
export function modelDirSetup(dir: string): LatencySetup {
  const missing = [...Object.values(LATENCY_FILES), TOKENIZER_FILES.codes].filter((f) => !existsSync(join(dir, f)));
  if (missing.length > 0) throw new Error(`${dir}: not a complete model directory for the latency benchmark (missing ${missing.join(', ')}; train the tokenizer, llm and ar stages, or use --synthetic --preset <name>)`);
  const vocab = Vocabulary.fromJSON(JSON.parse(readFileSync(join(dir, LATENCY_FILES.vocab), 'utf8')));
  const step = readFileSync(join(dir, LATENCY_FILES.arStep));
  const { config } = graphConfig(step, join(dir, LATENCY_FILES.arStep));
  const codesPath = join(dir, TOKENIZER_FILES.codes);
  const { tensors } = readSafetensors(codesPath);
  const codes = (name: string, K: number, L: number): Codes => {
    const t = tensors[name];
    if (!t || t.shape.length !== 2 || t.shape[1] !== K) throw new Error(`${codesPath}: '${name}' must be (n, ${K}) to match vocab.json, got [${t?.shape}]`);
    return { K, L, codes: Int32Array.from(t.data as ArrayLike<number>) };
  };
  const cf = loadCfStage(dir);
  return {
    description: `model directory ${dir}`,
    synthetic: false,
    config,
    vocab,
    userCodes: codes('user_codes', vocab.spec.userK, vocab.spec.userL),
    itemCodes: codes('item_codes', vocab.spec.itemK, vocab.spec.itemL),
    backbone: join(dir, LATENCY_FILES.backbone),
    itemVectors: cf.itemVectors,
    itemDim: cf.dim,
    arEncoder: join(dir, LATENCY_FILES.arEncoder),
    arStep: step,
  };
}

function graphConfig(bytes: Uint8Array, source: string): { config: T5Config } {
  // The exporters store the T5 config in the model's metadata_props.
  const entry = decodeModel(bytes).metadataProps.find((m) => m.key === 'tokenrec.t5_config');
  if (!entry?.value) throw new Error(`${source}: no T5 config ('tokenrec.t5_config') in the graph's metadata`);
  return { config: JSON.parse(entry.value) as T5Config };
}

export interface LatencyOptions {
  batches: number[];
  threads: number;
  beam: number;
  /** Items returned per user by both paths. */
  k: number;
  /** History items in each prompt (all prompts the same length: no padding effects). */
  history: number;
  repeats: number;
  /** Stop repeating a cell after this many seconds of timed runs (at least one run). */
  cellSeconds: number;
  seed?: number;
  onProgress?: (line: string) => void;
}

export interface LatencyRow {
  batch: number;
  promptTokens: number;
  runs: number;
  /** Wall-clock ms per batch, and process CPU ms per batch (all threads: steadier than wall time on a loaded machine). */
  tokenrec: { ms: number; cpuMs: number; backboneMs: number; topkMs: number };
  beam: { ms: number; cpuMs: number; encoderMs: number; stepMs: number[]; bookkeepingMs: number };
}

export interface LatencyResult {
  setup: string;
  synthetic: boolean;
  preset: Omit<T5Config, 'vocabSize'> & { vocabSize: number };
  items: number;
  K: number;
  L: number;
  threads: number;
  beam: number;
  k: number;
  history: number;
  machine: MachineInfo;
  rows: LatencyRow[];
}

function cpuMsSince(c0: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(c0);
  return (d.user + d.system) / 1000;
}

function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  const n = s.length;
  return n % 2 ? s[n >> 1] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/** Prompts of `batch` random users with `history` random distinct items each. */
export function latencyPrompts(setup: LatencySetup, batch: number, history: number, seed: number): PromptInputs {
  const rand = seededRandom(seed);
  const numItems = setup.itemCodes.codes.length / setup.itemCodes.K;
  const numUsers = setup.userCodes.codes.length / setup.userCodes.K;
  if (history > numItems) throw new RangeError(`history (${history}) exceeds the number of items (${numItems})`);
  const prompts: number[][] = [];
  for (let b = 0; b < batch; b++) {
    const h = new Set<number>();
    while (h.size < history) h.add(Math.floor(rand() * numItems));
    prompts.push(promptTokens(setup.vocab, setup.userCodes, setup.itemCodes, { user: Math.floor(rand() * numUsers), history: Int32Array.from(h), target: 0 }, 'seen', 0));
  }
  return padPrompts(prompts);
}

export async function runLatencyBench(setup: LatencySetup, o: LatencyOptions): Promise<LatencyResult> {
  for (const b of o.batches) if (!(Number.isInteger(b) && b >= 1)) throw new RangeError(`batch sizes must be positive integers, got ${b}`);
  for (const [name, v] of [['threads', o.threads], ['beam', o.beam], ['k', o.k], ['history', o.history], ['repeats', o.repeats]] as const) {
    if (!(Number.isInteger(v) && v >= 1)) throw new RangeError(`${name} must be a positive integer, got ${v}`);
  }
  const log = o.onProgress ?? (() => {});
  setNumThreads(o.threads);
  const ort = { intraOpNumThreads: o.threads, interOpNumThreads: 1, allowSpinning: false };
  const backbone = await OnnxSession.create(setup.backbone, ort);
  const index = await ItemIndex.create(setup.itemVectors, { dim: setup.itemDim, similarity: 'cosine' });
  const trie = new CodeTrie(setup.itemCodes.codes, setup.itemCodes.K, setup.itemCodes.L);
  const beam = await OnnxARBeam.create(setup.arEncoder, setup.arStep, setup.config, trie, { start: setup.vocab.pad, itemBase: setup.vocab.itemBase }, ort);
  const queries = setup.vocab.decoderQueryIds();
  const rows: LatencyRow[] = [];
  try {
    for (const B of o.batches) {
      const p = latencyPrompts(setup, B, o.history, (o.seed ?? 0) * 7919 + B);
      const ids = BigInt64Array.from(p.ids, BigInt);
      const mask = BigInt64Array.from(p.mask, BigInt);
      // The serving graph may take a float mask (exportT5Onnx's attentionMaskType option).
      const maskSpec = backbone.inputs.find((i) => i.name === T5_ONNX_IO.attentionMask);
      const backboneMask = maskSpec?.type === 'float32' ? Float32Array.from(p.mask) : mask;
      const dec = new BigInt64Array(B * queries.length);
      for (let b = 0; b < B; b++) for (let j = 0; j < queries.length; j++) dec[b * queries.length + j] = BigInt(queries[j]);
      const tokenrecOnce = async () => {
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        const out = await backbone.run(
          { [T5_ONNX_IO.inputIds]: { data: ids, dims: [B, p.length] }, [T5_ONNX_IO.attentionMask]: { data: backboneMask, dims: [B, p.length] }, [T5_ONNX_IO.decoderInputIds]: { data: dec, dims: [B, queries.length] } },
          [T5_ONNX_IO.z],
        );
        const t1 = performance.now();
        const top = await index.search(out[T5_ONNX_IO.z].data as Float32Array, o.k);
        const t2 = performance.now();
        if (top.ids.length !== B * Math.min(o.k, index.size)) throw new Error('top-K returned an unexpected shape');
        return { ms: t2 - t0, cpuMs: cpuMsSince(c0), backboneMs: t1 - t0, topkMs: t2 - t1 };
      };
      const beamOnce = async () => {
        const tm: BeamTimings = { encoder: 0, steps: [], bookkeeping: 0, total: 0 };
        const c0 = process.cpuUsage();
        const res = await beam.search(p, { beam: o.beam, k: o.k }, tm);
        if (res.length !== B) throw new Error('beam search returned an unexpected number of users');
        return { ms: tm.total, cpuMs: cpuMsSince(c0), encoderMs: tm.encoder, stepMs: tm.steps, bookkeepingMs: tm.bookkeeping };
      };
      // Warm-up (allocations, thread pools), then alternate the two paths so that a burst of load
      // from other processes hits both.
      log(`batch ${B}: prompt ${p.length} tokens, warm-up`);
      await tokenrecOnce();
      await beamOnce();
      const tr: Awaited<ReturnType<typeof tokenrecOnce>>[] = [];
      const bs: Awaited<ReturnType<typeof beamOnce>>[] = [];
      const start = performance.now();
      for (let r = 0; r < o.repeats; r++) {
        tr.push(await tokenrecOnce());
        bs.push(await beamOnce());
        log(`batch ${B}: run ${r + 1}: tokenrec ${tr[r].ms.toFixed(1)} ms, beam ${bs[r].ms.toFixed(1)} ms`);
        if ((performance.now() - start) / 1000 > o.cellSeconds) break;
      }
      const steps = bs[0].stepMs.map((_, s) => median(bs.map((x) => x.stepMs[s])));
      rows.push({
        batch: B,
        promptTokens: p.length,
        runs: tr.length,
        tokenrec: { ms: median(tr.map((x) => x.ms)), cpuMs: median(tr.map((x) => x.cpuMs)), backboneMs: median(tr.map((x) => x.backboneMs)), topkMs: median(tr.map((x) => x.topkMs)) },
        beam: { ms: median(bs.map((x) => x.ms)), cpuMs: median(bs.map((x) => x.cpuMs)), encoderMs: median(bs.map((x) => x.encoderMs)), stepMs: steps, bookkeepingMs: median(bs.map((x) => x.bookkeepingMs)) },
      });
    }
  } finally {
    await backbone.dispose();
    await beam.dispose();
    index.dispose();
  }
  return {
    setup: setup.description,
    synthetic: setup.synthetic,
    preset: setup.config,
    items: setup.itemCodes.codes.length / setup.itemCodes.K,
    K: setup.itemCodes.K,
    L: setup.itemCodes.L,
    threads: o.threads,
    beam: o.beam,
    k: o.k,
    history: o.history,
    machine: machineInfo(),
    rows,
  };
}

const f = (x: number, d = 1) => x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });

/** A Markdown table of the result (ms are per batch; users/s = batch / ms * 1000). */
export function formatLatency(r: LatencyResult): string {
  const lines = [
    `${r.setup}${r.synthetic ? ' — latency does not depend on the weight values' : ''}`,
    `machine: ${describeMachine(r.machine)}`,
    `ONNX Runtime and top-K on ${r.threads} thread(s); beam ${r.beam}, top-${r.k}; ${r.history} history items per prompt; medians`,
    '',
    '| batch | prompt tokens | runs | TokenRec ms | TokenRec users/s | beam ms | beam users/s | beam / TokenRec (wall) | TokenRec CPU ms | beam CPU ms | beam / TokenRec (CPU) | TokenRec: backbone / top-K ms | beam: encoder / decoder steps / bookkeeping ms |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|',
  ];
  for (const row of r.rows) {
    const t = row.tokenrec, b = row.beam;
    lines.push(
      `| ${row.batch} | ${row.promptTokens} | ${row.runs} | ${f(t.ms)} | ${f((row.batch / t.ms) * 1000)} | ${f(b.ms)} | ${f((row.batch / b.ms) * 1000)} | ${f(b.ms / t.ms, 2)}x | ${f(t.cpuMs)} | ${f(b.cpuMs)} | ${f(b.cpuMs / t.cpuMs, 2)}x | ${f(t.backboneMs)} / ${f(t.topkMs, 2)} | ${f(b.encoderMs)} / ${b.stepMs.map((s) => f(s)).join(' + ')} / ${f(b.bookkeepingMs)} |`,
    );
  }
  return lines.join('\n');
}

// ---- direct use: node dist/bench/latency.js --synthetic --preset t5-mini ----
function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { writeFileSync } = await import('node:fs');
  const presets = arg('preset', 't5-mini').split(',') as T5PresetName[];
  const results: LatencyResult[] = [];
  for (const preset of presets) {
    const setup = syntheticSetup({ preset, items: Number(arg('items', '3646')) });
    const r = await runLatencyBench(setup, {
      batches: arg('batches', '1,32,256').split(',').map(Number),
      threads: Number(arg('threads', '2')),
      beam: Number(arg('beam', '20')),
      k: Number(arg('k', '20')),
      history: Number(arg('history', '40')),
      repeats: Number(arg('repeats', '5')),
      cellSeconds: Number(arg('cell-seconds', '60')),
      onProgress: (l) => console.error(`[${preset}] ${l}`),
    });
    console.log(formatLatency(r) + '\n');
    results.push(r);
  }
  const out = arg('json', '');
  if (out) writeFileSync(out, JSON.stringify(results, null, 2) + '\n');
}
