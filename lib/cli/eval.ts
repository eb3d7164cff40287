// `tokenrec eval <dir> --stage cf [--split valid|test]`: evaluates a trained stage of a model
// directory. The data is reloaded from the path recorded in the manifest (or --data) and split
// the same way; its fingerprint must match the model's.
import { Option, type Command } from 'commander';
import { loadCfStage, CF_STAGE } from '../cf/store.js';
import { evaluateCf } from '../cf/train.js';
import type { SplitName } from '../eval/evaluate.js';
import { formatMetrics } from '../eval/metrics.js';
import { requireManifest, splitFingerprint } from '../io/manifest.js';
import type { Backend } from '../native/addon.js';
import { parseKs } from './baseline.js';
import type { Split } from '../data/types.js';
import { usersWithTarget } from '../eval/evaluate.js';
import { loadLLMStage, LLM_STAGE } from '../llm/stage.js';
import { evaluateLLM, LLM_SCORINGS, type LLMScoring } from '../llm/train.js';
import type { PromptKind } from '../llm/prompts.js';
import { loadTokenizerCodes } from '../tokenizer/codes.js';
import { loadSplitFromCli, type DataCliOptions } from './data-options.js';

export interface EvalCliOptions {
  stage: string;
  prompt: PromptKind;
  scoring: LLMScoring;
  split: SplitName;
  data?: string;
  ks: number[];
  backend: Backend;
  json?: boolean;
}

type StageEvaluator = (dir: string, o: EvalCliOptions) => Promise<void>;

/** Reloads the data recorded in the manifest (or --data), splits it the same way, checks the fingerprint. */
function splitOf(dir: string, o: EvalCliOptions): Split {
  const manifest = requireManifest(dir);
  const source = o.data ?? manifest.dataset.source;
  if (!source) throw new Error(`${dir}: the manifest does not say where the data came from; pass --data <path>`);
  const splitOpts = (manifest.dataset.split ?? {}) as DataCliOptions & { unseenFraction?: number };
  const { split } = loadSplitFromCli(source, { ...splitOpts, unseen: splitOpts.unseenFraction ?? 0, seed: splitOpts.seed ?? 0 });
  const fp = splitFingerprint(split);
  if (fp !== manifest.dataset.fingerprint) {
    throw new Error(
      `${source} (split as recorded) does not match the data this model was trained on (fingerprint ${fp.slice(0, 12)}…, model ${manifest.dataset.fingerprint.slice(0, 12)}…)`,
    );
  }
  return split;
}

async function evalCfStage(dir: string, o: EvalCliOptions): Promise<void> {
  const manifest = requireManifest(dir);
  const split = splitOf(dir, o);
  const model = loadCfStage(dir);
  const t0 = performance.now();
  const r = await evaluateCf(model, split, o.split, { ks: o.ks, backend: o.backend });
  const seconds = (performance.now() - t0) / 1000;
  if (o.json) {
    console.log(JSON.stringify({ stage: CF_STAGE, dir, dataset: manifest.dataset.name, model: model.config.model, split: o.split, metrics: r.seen, unseenMetrics: r.unseen, seconds }));
    return;
  }
  console.log(`${manifest.dataset.name}: ${model.config.model}, d = ${model.dim}, ${o.split} split, ${r.seen.users} users`);
  console.log(formatMetrics(r.seen));
  if (r.unseen) {
    console.log(`unseen users (fold-in, ${r.unseen.users}):`);
    console.log(formatMetrics(r.unseen));
  }
}

/** LLM4Rec: the trained backbone + projection on the chosen prompt kind and scoring. */
async function evalLlmStage(dir: string, o: EvalCliOptions): Promise<void> {
  const manifest = requireManifest(dir);
  const split = splitOf(dir, o);
  const cf = loadCfStage(dir);
  const codes = loadTokenizerCodes(dir);
  const { model, config } = loadLLMStage(dir);
  try {
    const data = { split, userCodes: codes.users, itemCodes: codes.items, itemVectors: cf.itemVectors, itemDim: cf.dim };
    const t0 = performance.now();
    const seen = await evaluateLLM(model, data, o.split, { kind: o.prompt, cap: config.train.historyCap, scoring: o.scoring, temperature: config.train.temperature, ks: o.ks });
    const unseenUsers = usersWithTarget(split, o.split, 'unseen');
    const unseen = unseenUsers.length ? await evaluateLLM(model, data, o.split, { kind: o.prompt, users: unseenUsers, cap: config.train.historyCap, scoring: o.scoring, temperature: config.train.temperature, ks: o.ks }) : undefined;
    const seconds = (performance.now() - t0) / 1000;
    if (o.json) {
      console.log(JSON.stringify({ stage: LLM_STAGE, dir, dataset: manifest.dataset.name, preset: config.preset, split: o.split, prompt: o.prompt, scoring: o.scoring, metrics: seen.metrics, unseenMetrics: unseen?.metrics, seconds }));
      return;
    }
    console.log(`${manifest.dataset.name}: TokenRec (${config.preset}), ${o.split} split, ${o.prompt} prompt, ${o.scoring} scoring, ${seen.metrics.users} users`);
    console.log(formatMetrics(seen.metrics));
    if (unseen) {
      console.log(`unseen users (${unseen.metrics.users}):`);
      console.log(formatMetrics(unseen.metrics));
    }
  } finally {
    model.dispose();
  }
}

export const EVAL_STAGES: Record<string, StageEvaluator> = { cf: evalCfStage, llm: evalLlmStage };

export function registerEval(program: Command): void {
  program
    .command('eval <dir>')
    .description('evaluate a trained stage of a model directory (full ranking, HR/NDCG@K)')
    .addOption(new Option('--stage <stage>', 'stage to evaluate').choices(Object.keys(EVAL_STAGES)).default('llm'))
    .addOption(new Option('--prompt <kind>', 'llm: prompt template').choices(['seen', 'unseen', 'id-only']).default('seen'))
    .addOption(new Option('--scoring <s>', 'llm: cosine (the paper), dot (keeps popularity), or cosine-bias (cosine + the learned item bias of a softmax-cosine-bias model)').choices([...LLM_SCORINGS]).default('cosine'))
    .addOption(new Option('--split <split>', 'which targets').choices(['valid', 'test']).default('test'))
    .option('--data <path>', 'the interactions file (default: the path recorded in the manifest)')
    .option('--ks <list>', 'cut-offs', parseKs, [10, 20, 30])
    .addOption(new Option('--backend <backend>', 'kernels').choices(['auto', 'cpu', 'cuda']).default('cpu'))
    .option('--json', 'machine-readable output on stdout')
    .action(async (dir: string, o: EvalCliOptions) => {
      await EVAL_STAGES[o.stage](dir, o);
    });
}
