// `tokenrec tokenize <vectors.safetensors> --out <dir> [--K 3] [--L 256] [--mask 0.2] [--json]`:
// trains an MQ-Tokenizer on any safetensors file of vectors (2-D F32 tensors). With tensors
// user_vectors / item_vectors (the CF stage's names) it trains a user and an item tokenizer;
// otherwise one per 2-D F32 tensor (or per --tensor). Writes tokenizer_<name>.safetensors,
// tokenizer_codes.safetensors (<name>_codes, <name>_holdout) and manifest.json (stage 'tokenizer').
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { i32, readSafetensors, writeSafetensors, type Tensor } from '../io/safetensors.js';
import { openManifest, recordStage } from '../io/manifest.js';
import { backendInfo, setNumThreads } from '../native/addon.js';
import { resolveTokenizerConfig, type TokenizerConfigInput } from '../tokenizer/config.js';
import { parseTokenizerCliValue, TOKENIZER_STAGE, tokenizerCliOptions } from '../tokenizer/stage.js';
import { trainTokenizer, type TokenizerProgressEvent, type TokenizerStats } from '../tokenizer/train.js';

export interface TokenizeCliOptions extends TokenizerConfigInput {
  out: string;
  tensor?: string[];
  threads?: number;
  json?: boolean;
  progress?: boolean;
}

export interface TokenizeResult {
  dir: string;
  source: string;
  config: ReturnType<typeof resolveTokenizerConfig>;
  files: string[];
  metrics: Record<string, TokenizerStats>;
}

/** Picks the tensors to tokenize: --tensor names, else user_vectors/item_vectors, else every 2-D F32 tensor. */
function pickTensors(tensors: Record<string, Tensor>, wanted: string[] | undefined, path: string): [string, Tensor][] {
  const usable = (name: string, t: Tensor | undefined): t is Tensor => {
    if (!t) throw new Error(`${path}: no tensor '${name}' (it has: ${Object.keys(tensors).join(', ') || 'none'})`);
    if (t.dtype !== 'F32' || t.shape.length !== 2) throw new Error(`${path}: tensor '${name}' must be a 2-D float tensor (rows = ids), got ${t.dtype} [${t.shape}]`);
    return true;
  };
  let names = wanted;
  if (!names?.length) {
    names = ['user_vectors', 'item_vectors'].filter((n) => tensors[n]);
    if (!names.length) names = Object.keys(tensors).filter((n) => tensors[n].dtype === 'F32' && tensors[n].shape.length === 2);
  }
  if (!names.length) throw new Error(`${path}: no 2-D float tensor to tokenize`);
  return names.map((n) => {
    usable(n, tensors[n]);
    return [n, tensors[n]];
  });
}

/** Entity name of a tensor: 'user_vectors' -> 'user'. */
function entityOf(name: string): string {
  return name.replace(/_vectors$/, '').replace(/[^A-Za-z0-9_.-]/g, '_');
}

export async function runTokenize(
  vectorsPath: string,
  o: TokenizeCliOptions,
  hooks: { onProgress?: (e: TokenizerProgressEvent & { entity: string }) => void; signal?: AbortSignal } = {},
): Promise<TokenizeResult> {
  const { out, tensor, threads: _t, json: _j, progress: _p, ...input } = o;
  const config = resolveTokenizerConfig(input);
  const path = resolve(vectorsPath);
  if (!existsSync(path)) throw new Error(`${vectorsPath}: no such file (expected a safetensors file of vectors)`);
  const bytes = readFileSync(path);
  const { tensors } = readSafetensors(path);
  const picked = pickTensors(tensors, tensor, path);
  const fingerprint = createHash('sha256').update(bytes).digest('hex');
  const rows = (n: string) => picked.find(([p]) => entityOf(p) === n)?.[1].shape[0] ?? 0;
  const manifest = openManifest(out, { name: basename(path), fingerprint, users: rows('user'), items: rows('item'), interactions: 0, source: path });
  const metrics: Record<string, TokenizerStats> = {};
  const codeTensors: Record<string, Tensor> = {};
  const files: string[] = [];
  for (const [name, t] of picked) {
    const entity = entityOf(name);
    const trained = await trainTokenizer(t.data as Float32Array, t.shape[1], config, {
      signal: hooks.signal,
      onProgress: hooks.onProgress ? (e) => hooks.onProgress!({ ...e, entity }) : undefined,
    });
    try {
      const file = `tokenizer_${entity}.safetensors`;
      trained.tokenizer.save(join(out, file));
      files.push(file);
      codeTensors[`${entity}_codes`] = i32([t.shape[0], trained.codeWidth], trained.codes);
      codeTensors[`${entity}_holdout`] = i32([trained.heldOut.length], trained.heldOut);
      metrics[entity] = trained.stats;
    } finally {
      trained.tokenizer.dispose();
    }
  }
  writeSafetensors(join(out, 'tokenizer_codes.safetensors'), codeTensors);
  files.push('tokenizer_codes.safetensors');
  recordStage(out, manifest, TOKENIZER_STAGE, { ...config, source: path, tensors: picked.map(([n]) => n) }, files, metrics);
  return { dir: out, source: path, config, files, metrics };
}

/** One line per tokenizer: reconstruction, utilisation per codebook, distinct tuples, collisions. */
export function formatTokenizerStats(entity: string, s: TokenizerStats): string {
  const pct = (x: number) => (100 * x).toFixed(1) + '%';
  const c = s.collisions;
  return [
    `${entity}: ${s.ids} ids, ${s.epochs} epochs (${s.secondsPerEpoch.toFixed(2)} s/epoch)`,
    `  reconstruction MSE train ${s.reconTrain.mse.toExponential(3)} (${pct(s.reconTrain.relative)} of variance)` +
      (s.reconHeldOut ? `, held-out ${s.reconHeldOut.mse.toExponential(3)} (${pct(s.reconHeldOut.relative)}, ${s.reconHeldOut.ids} ids)` : ''),
    `  codebooks: ${s.codebooks.map((b, k) => `#${k} ${pct(b.utilisation)} used, perplexity ${b.perplexity.toFixed(1)}`).join('; ')}`,
    `  K-tuples: ${c.distinctTuples} distinct, ${pct(c.uniqueFraction)} of ids unique, ${c.collisionGroups} shared tuples (${c.collidingIds} ids, largest ${c.maxGroupSize})`,
    ...(s.assignment
      ? [
          `  nearest-codeword codes: ${pct(s.nearestCollisions.uniqueFraction)} of ids unique; ${s.assignment.reassigned} ids moved to the cheapest free tuple ` +
            `(mean ${s.assignment.meanCodesChanged.toFixed(2)} codes changed, quantisation cost +${pct(s.assignment.meanCostIncrease)})`,
        ]
      : []),
    ...(s.extraCodeRange !== undefined ? [`  disambiguated: an extra code in [0, ${s.extraCodeRange}) makes every id's tuple unique`] : []),
  ].join('\n');
}

export function registerTokenize(program: Command): void {
  const cmd = program
    .command('tokenize <vectors>')
    .description('train MQ-Tokenizers on a safetensors file of vectors (user_vectors / item_vectors, or any 2-D float tensors)')
    .requiredOption('--out <dir>', 'output directory (weights, codes, manifest.json)')
    .option('--tensor <name...>', 'tensors to tokenize (default: user_vectors and item_vectors, else every 2-D float tensor)');
  for (const opt of tokenizerCliOptions) {
    if (opt.kind === 'bool') cmd.option(opt.flags, opt.description);
    else cmd.option(opt.flags, opt.description, (v: string) => parseTokenizerCliValue(opt.kind, opt.flags, v));
  }
  cmd
    .option('--epochs <n>', 'same as --tok-epochs', (v: string) => parseTokenizerCliValue('int', '--epochs', v))
    .option('--threads <n>', 'CPU threads for the kernels', (v: string) => parseTokenizerCliValue('int', '--threads', v))
    .option('--no-progress', 'no progress bar')
    .option('--json', 'machine-readable result on stdout')
    .action(async (vectors: string, raw: Record<string, unknown>) => {
      const o: TokenizeCliOptions = { out: raw.out as string, tensor: raw.tensor as string[] | undefined, json: !!raw.json, progress: raw.progress !== false };
      for (const opt of tokenizerCliOptions) {
        // commander's attribute: '--tok-lr' -> tokLr, '--no-standardize' -> standardize (false when given)
        const key = opt.flags.split(' ')[0].slice(2).replace(/^no-/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
        const v = raw[key];
        if (v !== undefined) (o as unknown as Record<string, unknown>)[opt.key] = v;
      }
      if (raw.epochs !== undefined) o.epochs = raw.epochs as number;
      if (raw.threads !== undefined) setNumThreads(raw.threads as number);
      const ac = new AbortController();
      const onSigint = () => ac.abort(Object.assign(new Error('interrupted'), { name: 'AbortError' }));
      process.once('SIGINT', onSigint);
      const bar = o.progress && !o.json
        ? new cliProgress.SingleBar({ format: 'tokenizer {entity} epoch {epoch}/{epochs} |{bar}| {value}/{total} batches  loss {loss}', hideCursor: true, clearOnComplete: true }, cliProgress.Presets.shades_classic)
        : undefined;
      let started = false;
      const onProgress = (e: TokenizerProgressEvent & { entity: string }) => {
        if (!bar || e.phase !== 'batch') return;
        const payload = { entity: e.entity, epoch: e.epoch, epochs: e.epochs, loss: e.loss.toFixed(5) };
        if (!started) {
          bar.start(e.batches, e.batch, payload);
          started = true;
        } else bar.update(e.batch, payload);
      };
      let r: TokenizeResult;
      try {
        r = await runTokenize(vectors, o, { onProgress, signal: ac.signal });
      } finally {
        if (started) bar?.stop();
        process.removeListener('SIGINT', onSigint);
      }
      if (o.json) {
        console.log(JSON.stringify({ stage: TOKENIZER_STAGE, ...r, threads: backendInfo().threads }));
        return;
      }
      for (const [entity, s] of Object.entries(r.metrics)) console.log(formatTokenizerStats(entity, s));
      console.log(`output: ${r.dir} (${r.files.join(', ')})`);
    });
}
