// `tokenrec train <data> --out <dir> --stage cf ...`: trains a stage into a model directory.
// Stages are looked up in STAGES so that later ones (tokenizer, llm, all) plug in beside 'cf'.
import { rmdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import cliProgress from 'cli-progress';
import { Option, type Command } from 'commander';
import { resolveCfConfig, trainingCsr, type CfModelKind } from '../cf/config.js';
import { CF_STAGE, datasetRecord, openModelDir, saveCfStage } from '../cf/store.js';
import { evaluateCf, trainCf, type CfProgressEvent } from '../cf/train.js';
import { evaluatePopularity } from '../baselines/pop.js';
import { usersWithTarget } from '../eval/evaluate.js';
import { trainingInteractions } from '../data/split.js';
import { formatMetrics } from '../eval/metrics.js';
import { requireManifest, stageIsCurrent } from '../io/manifest.js';
import { setNumThreads, type Backend } from '../native/addon.js';
import { addDataOptions, loadSplitFromCli, type DataCliOptions } from './data-options.js';
import { parseTokenizerCliValue, runTokenizerStage, tokenizerCliOptions, type TokenizerStageProgress } from '../tokenizer/stage.js';
import type { TokenizerConfigInput } from '../tokenizer/config.js';
import type { TokenizerStats } from '../tokenizer/train.js';
import { DEFAULT_LLM_STAGE, LLM_STAGE, runLLMStage, type LLMStageConfig } from '../llm/stage.js';
import { LLM_LOSSES, type LLMLoss } from '../llm/loss.js';
import { CODE_EMBEDDINGS, type CodeEmbeddings } from '../llm/code-init.js';
import { T5_PRESETS, type T5PresetName } from '../t5/config.js';
import { writeModelIds } from '../io/ids.js';
import { trainARStage } from '../ar/stage.js';

export interface TrainCliOptions extends DataCliOptions {
  out: string;
  stage: string;
  model: CfModelKind;
  dim?: number;
  layers?: number;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  l2?: number;
  evalEvery?: number;
  patience?: number;
  trainSeed?: number;
  backend: Backend;
  threads?: number;
  force?: boolean;
  json?: boolean;
  progress: boolean;
  /** Tokenizer options (flags from tokenizerCliOptions), as parsed values. */
  tokenizer: TokenizerConfigInput;
  preset: T5PresetName;
  llmEpochs?: number;
  llmBatch?: number;
  llmLr?: number;
  historyCap?: number;
  queries?: number;
  samplesPerUser?: number;
  gamma?: number;
  llmLoss?: LLMLoss;
  temperature?: number;
  llmSeed?: number;
  maxValidUsers?: number;
  llmPatience?: number;
  dropout?: number;
  codeEmbeddings?: CodeEmbeddings;
  beam?: number;
}

function int(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isInteger(n)) throw new Error(`${name} must be an integer, got '${v}'`);
    return n;
  };
}
function num(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new Error(`${name} must be a number, got '${v}'`);
    return n;
  };
}

/** The split options recorded in the manifest, so that `eval` can rebuild the same split. */
export function splitOptionsOf(o: DataCliOptions): Record<string, unknown> {
  return { unseenFraction: o.unseen ?? 0, seed: o.seed ?? 0, format: o.format, userCol: o.userCol, itemCol: o.itemCol, timeCol: o.timeCol };
}

type StageRunner = (data: string, o: TrainCliOptions) => Promise<void>;

/** Trains LightGCN or MF into the model directory (see lib/cf/). */
async function trainCfStage(data: string, o: TrainCliOptions): Promise<void> {
  const { dataset, split } = loadSplitFromCli(data, o);
  const config = resolveCfConfig(
    {
      model: o.model,
      dim: o.dim,
      layers: o.layers,
      epochs: o.epochs,
      batchSize: o.batchSize,
      lr: o.lr,
      l2: o.l2,
      evalEvery: o.evalEvery,
      patience: o.patience,
      seed: o.trainSeed,
    },
    trainingInteractions(split),
  );
  const source = data.startsWith('synthetic') ? data : resolve(data);
  const dsRec = datasetRecord(dataset.name, split, source, splitOptionsOf(o));
  const manifest = openModelDir(o.out, dsRec);
  const cfgRecord = config as unknown as Record<string, unknown>;
  const log = (s: string) => (o.json ? process.stderr.write(s + '\n') : console.log(s));
  if (!o.force && stageIsCurrent(o.out, manifest, CF_STAGE, cfgRecord)) {
    const rec = manifest.stages[CF_STAGE];
    if (o.json) console.log(JSON.stringify({ stage: CF_STAGE, upToDate: true, dir: o.out, metrics: rec.metrics }));
    else log(`${o.out}: stage cf is up to date (same data and configuration); --force retrains`);
    return;
  }
  const checkpoint = join(o.out, 'checkpoints', 'cf.safetensors');
  const ac = new AbortController();
  const onSigint = () => ac.abort(Object.assign(new Error(`interrupted; run the same command again to resume from ${checkpoint}`), { name: 'AbortError' }));
  process.once('SIGINT', onSigint);

  const bar = o.progress
    ? new cliProgress.SingleBar(
        { format: 'cf {model} epoch {epoch}/{epochs} |{bar}| {value}/{total} batches  loss {loss}  valid NDCG@20 {ndcg} (best epoch {best})', hideCursor: true, clearOnComplete: true },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  let barStarted = false;
  let lastNdcg = '-', best = '-';
  const onProgress = (e: CfProgressEvent) => {
    if (!bar) return;
    if (e.phase === 'train') {
      const payload = { model: config.model, epoch: e.epoch, epochs: e.epochs, loss: e.loss.toFixed(4), ndcg: lastNdcg, best };
      if (!barStarted) {
        bar.start(e.batches, e.batch, payload);
        barStarted = true;
      } else {
        bar.setTotal(e.batches);
        bar.update(e.batch, payload);
      }
    } else if (e.phase === 'eval') {
      lastNdcg = e.validNdcg20.toFixed(4);
      best = String(e.bestEpoch);
      bar.update({ ndcg: lastNdcg, best });
    }
  };
  const t0 = performance.now();
  let result;
  try {
    result = await trainCf(split, { ...config, backend: o.backend, onProgress, signal: ac.signal, checkpoint });
  } finally {
    if (barStarted) bar?.stop();
    process.removeListener('SIGINT', onSigint);
  }
  const trainSeconds = (performance.now() - t0) / 1000;
  const test = await evaluateCf(result, split, 'test', { backend: o.backend });
  const valid = await evaluateCf(result, split, 'valid', { backend: o.backend });
  const pop = usersWithTarget(split, 'test').length ? (await evaluatePopularity(split, 'test', { backend: o.backend })).metrics : undefined;
  const metrics = {
    valid: valid.seen,
    test: test.seen,
    ...(test.unseen ? { testUnseen: test.unseen, validUnseen: valid.unseen } : {}),
    mostPopularTest: pop,
    bestEpoch: result.bestEpoch,
    epochsRun: result.epochsRun,
    stoppedEarly: result.stoppedEarly,
    resumedFromEpoch: result.resumedFromEpoch,
    secondsPerEpoch: result.secondsPerEpoch,
    trainSeconds,
    threads: (await import('../native/addon.js')).backendInfo().threads,
    history: result.history,
  };
  const csr = trainingCsr(split);
  const idsFile = writeModelIds(o.out, dataset, split, manifest.dataset.fingerprint);
  saveCfStage(o.out, manifest, { config, vectors: result, trainPtr: csr.ptr, trainIdx: csr.idx, metrics, extraFiles: [idsFile] });
  rmSync(checkpoint, { force: true });
  try {
    rmdirSync(join(o.out, 'checkpoints')); // only when empty: other stages may keep theirs there
  } catch {
    // not empty or absent
  }

  if (o.json) {
    console.log(JSON.stringify({ stage: CF_STAGE, dir: o.out, dataset: dataset.name, config, metrics }));
    return;
  }
  console.log(`${dataset.name}: ${config.model === 'mf' ? 'MF' : `LightGCN (${config.layers} layers)`}, d = ${config.dim}, ` +
    `${result.epochsRun} epochs (best ${result.bestEpoch}${result.stoppedEarly ? ', stopped early' : ''}${result.resumedFromEpoch ? `, resumed at ${result.resumedFromEpoch}` : ''}), ` +
    `${result.secondsPerEpoch.toPrecision(3)} s/epoch`);
  console.log(`test (${test.seen.users} users):`);
  console.log(formatMetrics(test.seen));
  if (test.unseen) {
    console.log(`test, unseen users (fold-in, ${test.unseen.users} users):`);
    console.log(formatMetrics(test.unseen));
  }
  if (pop) console.log(`most-popular test: HR@20 ${pop.hr[20]?.toFixed(4)}  NDCG@20 ${pop.ndcg[20]?.toFixed(4)}`);
  console.log(`model directory: ${o.out}`);
}

/** Trains the user and item MQ-Tokenizers on the CF stage's vectors (see lib/tokenizer/). */
async function trainTokenizerStage(data: string, o: TrainCliOptions): Promise<void> {
  requireManifest(o.out);
  const bar = o.progress && !o.json ? new cliProgress.SingleBar({ format: 'tokenizer {entity} epoch {value}/{total} |{bar}| loss {loss}', hideCursor: true, clearOnComplete: true }, cliProgress.Presets.shades_classic) : undefined;
  let current = '';
  const onProgress = (e: TokenizerStageProgress) => {
    if (!bar) return;
    const ev = e as unknown as { entity: string; epoch?: number; epochs?: number; loss?: number };
    if (ev.epoch === undefined || ev.epochs === undefined) return;
    if (current !== ev.entity) {
      if (current) bar.stop();
      bar.start(ev.epochs, 0, { entity: ev.entity, loss: '-' });
      current = ev.entity;
    }
    bar.update(ev.epoch, { entity: ev.entity, loss: ev.loss?.toFixed(4) ?? '-' });
  };
  const t0 = performance.now();
  let r;
  try {
    r = await runTokenizerStage(o.out, { ...o.tokenizer, force: o.force }, { onProgress });
  } finally {
    if (current) bar?.stop();
  }
  const seconds = (performance.now() - t0) / 1000;
  if (o.json) {
    console.log(JSON.stringify({ stage: 'tokenizer', dir: o.out, upToDate: r.upToDate, config: r.config, metrics: r.metrics, seconds }));
    return;
  }
  if (r.upToDate) {
    console.log(`${o.out}: stage tokenizer is up to date; --force retrains`);
    return;
  }
  const m = r.metrics as Record<string, Pick<TokenizerStats, 'codebooks' | 'collisions' | 'nearestCollisions' | 'assignment' | 'reconHeldOut' | 'epochs'>>;
  for (const entity of ['user', 'item']) {
    const s = m[entity];
    const util = s.codebooks.map((c) => `${(100 * c.utilisation).toFixed(0)}%`).join('/');
    const ppl = s.codebooks.map((c) => c.perplexity.toFixed(0)).join('/');
    console.log(
      `tokenizer ${entity}: ${s.collisions.ids} ids, codebook use ${util}, perplexity ${ppl}, ` +
        `${s.collisions.distinctTuples} distinct tuples (${(100 * s.collisions.uniqueFraction).toFixed(1)}% of ids unique` +
        (s.assignment ? `; nearest codes ${(100 * s.nearestCollisions.uniqueFraction).toFixed(1)}%, ${s.assignment.reassigned} ids moved to a free tuple)` : ')') +
        (s.reconHeldOut ? `, held-out relative reconstruction error ${s.reconHeldOut.relative.toFixed(3)}` : ''),
    );
  }
  console.log(`tokenizers trained in ${seconds.toFixed(1)} s`);
}

function llmStageConfig(o: TrainCliOptions): LLMStageConfig {
  const d = DEFAULT_LLM_STAGE;
  const t = d.train;
  return {
    preset: o.preset ?? d.preset,
    queries: o.queries ?? d.queries,
    projHidden: d.projHidden,
    dropout: o.dropout ?? d.dropout,
    // Recorded only when asked for: configurations (and their hashes) without it stay as they were.
    ...(o.codeEmbeddings && o.codeEmbeddings !== 'random' ? { codeEmbeddings: o.codeEmbeddings } : {}),
    train: {
      ...t,
      epochs: o.llmEpochs ?? t.epochs,
      batch: o.llmBatch ?? t.batch,
      lr: o.llmLr ?? t.lr,
      projLr: o.llmLr ?? t.projLr,
      historyCap: o.historyCap ?? t.historyCap,
      samplesPerUser: o.samplesPerUser ?? t.samplesPerUser,
      gamma: o.gamma ?? t.gamma,
      loss: o.llmLoss ?? t.loss,
      temperature: o.temperature ?? t.temperature,
      seed: o.llmSeed ?? t.seed,
      maxValidUsers: o.maxValidUsers ?? t.maxValidUsers,
      patience: o.llmPatience ?? t.patience,
    },
  };
}

/** Trains LLM4Rec (T5 + projection) on the tokenizers' codes and the CF item vectors. */
async function trainLlmStage(data: string, o: TrainCliOptions): Promise<void> {
  const { split } = loadSplitFromCli(data, o);
  const cfg = llmStageConfig(o);
  const manifest = requireManifest(o.out);
  const rec = manifest.stages[LLM_STAGE];
  if (!o.force && rec && stageIsCurrent(o.out, manifest, LLM_STAGE, rec.config) && JSON.stringify({ ...cfg, hash: (rec.config as { hash?: string }).hash }) === JSON.stringify(rec.config)) {
    if (o.json) console.log(JSON.stringify({ stage: LLM_STAGE, upToDate: true, dir: o.out, metrics: rec.metrics }));
    else console.log(`${o.out}: stage llm is up to date; --force retrains`);
    return;
  }
  const ac = new AbortController();
  const onSigint = () => ac.abort();
  process.once('SIGINT', onSigint);
  const bar = o.progress && !o.json ? new cliProgress.SingleBar({ format: 'llm epoch {epoch}/{epochs} |{bar}| {value}/{total} batches  loss {loss}  valid NDCG@20 {ndcg}', hideCursor: true, clearOnComplete: true }, cliProgress.Presets.shades_classic) : undefined;
  let epoch = 1, ndcg = '-', started = false;
  const log = (s: string) => (o.json ? process.stderr.write(s + '\n') : console.log(s));
  let r;
  try {
    r = await runLLMStage(o.out, split, cfg, {
      signal: ac.signal,
      onMessage: log,
      onBatch: (done, total, loss) => {
        if (!bar) return;
        const payload = { epoch, epochs: cfg.train.epochs, loss: loss.toFixed(4), ndcg };
        if (!started) {
          bar.start(total, done, payload);
          started = true;
        } else {
          bar.setTotal(total);
          bar.update(done, payload);
        }
      },
      onEpoch: (e) => {
        epoch = e.epoch + 1;
        if (e.valid) ndcg = e.valid.ndcg20.toFixed(4);
        if (!bar) log(`llm epoch ${e.epoch}: loss ${e.loss.toFixed(4)}, ${e.samplesPerSecond.toFixed(0)} samples/s${e.valid ? `, valid HR@20 ${e.valid.hr20.toFixed(4)} NDCG@20 ${e.valid.ndcg20.toFixed(4)}` : ''}`);
      },
    });
  } finally {
    if (started) bar?.stop();
    process.removeListener('SIGINT', onSigint);
  }
  if (o.json) {
    console.log(JSON.stringify({ stage: LLM_STAGE, dir: o.out, config: cfg, metrics: r.metrics }));
    return;
  }
  const m = r.metrics as unknown as { test: Record<string, { hr: Record<number, number>; ndcg: Record<number, number> }>; testDot: { hr: Record<number, number>; ndcg: Record<number, number> }; testBias?: { hr: Record<number, number>; ndcg: Record<number, number> }; testUnseenUsers?: { hr: Record<number, number>; ndcg: Record<number, number>; users: number }; bestEpoch: number; trainSeconds: number };
  console.log(`LLM4Rec (${cfg.preset}): best epoch ${m.bestEpoch}, ${m.trainSeconds.toFixed(0)} s`);
  for (const kind of ['seen', 'unseen', 'id-only']) console.log(`test, ${kind} prompt:`.padEnd(26) + formatMetrics(m.test[kind] as never).split('\n').join('   '));
  console.log('test, dot-product scoring:'.padEnd(26) + formatMetrics(m.testDot as never).split('\n').join('   '));
  if (m.testBias) console.log('test, cosine + item bias:'.padEnd(26) + formatMetrics(m.testBias as never).split('\n').join('   '));
  if (m.testUnseenUsers) console.log(`test, unseen users (${m.testUnseenUsers.users}):`.padEnd(26) + formatMetrics(m.testUnseenUsers as never).split('\n').join('   '));
  console.log(`model directory: ${o.out}`);
}

/** The autoregressive beam-search baseline (lib/ar/) on the tokenizers' codes: same prompts and samples as LLM4Rec. */
async function trainArStage(data: string, o: TrainCliOptions): Promise<void> {
  const { split } = loadSplitFromCli(data, o);
  const cfg = llmStageConfig(o);
  const log = (s: string) => (o.json ? process.stderr.write(s + '\n') : console.log(s));
  const r = await trainARStage(o.out, split, { ...cfg.train, preset: cfg.preset, t5: { dropoutRate: cfg.dropout }, beam: o.beam ?? 20, decoderQueries: cfg.queries }, {
    onEpoch: (e) => log(`ar epoch ${e.epoch}: loss ${e.loss.toFixed(4)}${e.valid ? `, valid HR@20 ${e.valid.hr20.toFixed(4)} NDCG@20 ${e.valid.ndcg20.toFixed(4)}` : ''}`),
  });
  if (o.json) {
    console.log(JSON.stringify({ stage: 'ar', dir: o.out, bestEpoch: r.bestEpoch, valid: r.valid, test: r.test }));
    return;
  }
  console.log(`AR baseline (${cfg.preset}, beam ${o.beam ?? 20}): best epoch ${r.bestEpoch}`);
  if (r.test) console.log('test:'.padEnd(26) + formatMetrics(r.test).split('\n').join('   '));
}

/** cf, then tokenizer, then llm; each skipped when its artifacts exist and match the configuration. */
async function trainAll(data: string, o: TrainCliOptions): Promise<void> {
  await trainCfStage(data, o);
  await trainTokenizerStage(data, o);
  await trainLlmStage(data, o);
}

export const STAGES: Record<string, StageRunner> = { cf: trainCfStage, tokenizer: trainTokenizerStage, llm: trainLlmStage, all: trainAll, ar: trainArStage };

export function registerTrain(program: Command): void {
  addDataOptions(
    program
      .command('train <data>')
      .description('train a stage of the model into a model directory (stage cf: LightGCN or MF collaborative vectors)')
      .requiredOption('--out <dir>', 'model directory (created; an existing one must hold the same data and split)')
      .addOption(new Option('--stage <stage>', 'stage to train (all: cf, tokenizer, llm in turn; ar: the beam-search baseline, after the tokenizer)').choices(Object.keys(STAGES)).default('all'))
      .addOption(new Option('--model <model>', 'cf: collaborative model').choices(['lightgcn', 'mf']).default('lightgcn'))
      .option('--dim <n>', 'cf: embedding dimension (default 64)', int('--dim'))
      .option('--layers <n>', 'cf: LightGCN layers (default 3)', int('--layers'))
      .option('--epochs <n>', 'cf: maximum epochs (default 300)', int('--epochs'))
      .option('--batch-size <n>', 'cf: BPR triples per step (default: automatic, ~64 steps per epoch, 2048..16384)', int('--batch-size'))
      .option('--lr <x>', 'cf: Adam learning rate (default: 1e-3 * (batch / 2048)^0.75)', num('--lr'))
      .option('--l2 <x>', 'cf: L2 weight on the batch embeddings (default 1e-4)', num('--l2'))
      .option('--eval-every <n>', 'cf: epochs between validation checks (default 5)', int('--eval-every'))
      .option('--patience <n>', 'cf: validation checks without improvement before stopping (default 5)', int('--patience'))
      .option('--train-seed <n>', 'seed for initialisation and sampling (default 0)', int('--train-seed'))
      .addOption(new Option('--backend <backend>', 'kernels').choices(['auto', 'cpu', 'cuda']).default('cpu'))
      .option('--threads <n>', 'CPU threads for the kernels', int('--threads'))
      .addOption(new Option('--preset <name>', 'llm: T5 preset').choices(Object.keys(T5_PRESETS)).default(DEFAULT_LLM_STAGE.preset))
      .option('--llm-epochs <n>', `llm: maximum epochs (default ${DEFAULT_LLM_STAGE.train.epochs})`, int('--llm-epochs'))
      .option('--llm-batch <n>', `llm: batch size (default ${DEFAULT_LLM_STAGE.train.batch})`, int('--llm-batch'))
      .option('--llm-lr <x>', `llm: peak AdamW learning rate (default ${DEFAULT_LLM_STAGE.train.lr})`, num('--llm-lr'))
      .option('--history-cap <n>', `llm: most history items in a prompt (default ${DEFAULT_LLM_STAGE.train.historyCap})`, int('--history-cap'))
      .option('--queries <n>', `llm: decoder query tokens P (default ${DEFAULT_LLM_STAGE.queries})`, int('--queries'))
      .option('--samples-per-user <n>', `llm: training samples per user per epoch (default ${DEFAULT_LLM_STAGE.train.samplesPerUser})`, int('--samples-per-user'))
      .addOption(new Option('--llm-loss <l>', `llm: margin (the paper: cosine to the positive, margin to one random negative), or a softmax over every item scored by softmax-cosine, softmax-dot or softmax-cosine-bias (cosine plus a learned per-item bias) (beyond the paper; default ${DEFAULT_LLM_STAGE.train.loss})`).choices([...LLM_LOSSES]))
      .option('--gamma <x>', `llm: margin of the negative term (default ${DEFAULT_LLM_STAGE.train.gamma})`, num('--gamma'))
      .option('--temperature <x>', `llm: softmax-cosine(-bias) temperature (default ${DEFAULT_LLM_STAGE.train.temperature})`, num('--temperature'))
      .option('--dropout <x>', `llm: dropout (default ${DEFAULT_LLM_STAGE.dropout})`, num('--dropout'))
      .addOption(new Option('--code-embeddings <init>', 'llm: how the code tokens\' embeddings start: random (the paper), codebooks (user and item tokens at a projection of the tokenizers\' codewords) or item-codebooks (item tokens only) (beyond the paper)').choices([...CODE_EMBEDDINGS]))
      .option('--max-valid-users <n>', `llm: validation users for model selection (default ${DEFAULT_LLM_STAGE.train.maxValidUsers})`, int('--max-valid-users'))
      .option('--llm-patience <n>', `llm: validation checks without improvement before stopping (default ${DEFAULT_LLM_STAGE.train.patience}; the learning rate decays linearly to 0 at the last epoch, so a long patience lets it finish)`, int('--llm-patience'))
      .option('--llm-seed <n>', 'llm: seed (default 0)', int('--llm-seed'))
      .option('--beam <n>', 'ar: beam width of the baseline\'s evaluation (default 20)', int('--beam'))
      .option('--force', 'retrain even when the stage is up to date')
      .option('--no-progress', 'no progress bar')
      .option('--json', 'machine-readable result on stdout'),
  );
  const cmd = program.commands.find((c) => c.name() === 'train')!;
  for (const t of tokenizerCliOptions) {
    if (t.kind === 'bool') cmd.option(t.flags, t.description);
    else cmd.option(t.flags, t.description, (v: string) => parseTokenizerCliValue(t.kind, t.flags.split(' ')[0], v));
  }
  cmd.action(async (data: string, o: TrainCliOptions) => {
    const raw = o as unknown as Record<string, unknown>;
    o.tokenizer = {};
    for (const t of tokenizerCliOptions) {
      const attr = t.flags.split(' ')[0].replace(/^--(no-)?/, '').replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
      const v = raw[attr];
      if (t.kind === 'bool') {
        if (t.flags.startsWith('--no-') ? v === false : v === true) (o.tokenizer as Record<string, unknown>)[t.key] = t.flags.startsWith('--no-') ? false : true;
      } else if (v !== undefined) (o.tokenizer as Record<string, unknown>)[t.key] = v;
    }
    if (o.threads !== undefined) setNumThreads(o.threads);
    await STAGES[o.stage](data, o);
  });
}
