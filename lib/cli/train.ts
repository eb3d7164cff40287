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
import { stageIsCurrent } from '../io/manifest.js';
import { setNumThreads, type Backend } from '../native/addon.js';
import { addDataOptions, loadSplitFromCli, type DataCliOptions } from './data-options.js';

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
  saveCfStage(o.out, manifest, { config, vectors: result, trainPtr: csr.ptr, trainIdx: csr.idx, metrics });
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

export const STAGES: Record<string, StageRunner> = { cf: trainCfStage };

export function registerTrain(program: Command): void {
  addDataOptions(
    program
      .command('train <data>')
      .description('train a stage of the model into a model directory (stage cf: LightGCN or MF collaborative vectors)')
      .requiredOption('--out <dir>', 'model directory (created; an existing one must hold the same data and split)')
      .addOption(new Option('--stage <stage>', 'stage to train').choices(Object.keys(STAGES)).default('cf'))
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
      .option('--force', 'retrain even when the stage is up to date')
      .option('--no-progress', 'no progress bar')
      .option('--json', 'machine-readable result on stdout'),
  ).action(async (data: string, o: TrainCliOptions) => {
    if (o.threads !== undefined) setNumThreads(o.threads);
    await STAGES[o.stage](data, o);
  });
}
