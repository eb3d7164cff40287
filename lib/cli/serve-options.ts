// Options shared by `recommend`, `score` and `serve`: how the Recommender is opened.
import { Option, type Command } from 'commander';
import type { Backend } from '../native/addon.js';
import type { RecommenderOptions, Scoring } from '../serve/recommender.js';
import { LLM_SCORINGS } from '../llm/train.js';

export interface ServeCliOptions {
  data?: string;
  scoring?: Scoring;
  index?: 'native' | 'faiss';
  backend?: Backend;
  threads?: number;
  batchSize?: number;
}

export function positiveInt(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got '${v}'`);
    return n;
  };
}

export function addRecommenderOptions(cmd: Command): Command {
  return cmd
    .option('--data <path>', "the data the model was trained on, for the dataset's ids (default: the path recorded in the manifest)")
    .addOption(new Option('--scoring <s>', 'cosine, dot, or cosine-bias (softmax-cosine-bias models) (default: the one that scored best on validation)').choices([...LLM_SCORINGS]))
    .addOption(new Option('--index <kind>', 'top-K engine').choices(['native', 'faiss']).default('native'))
    .addOption(new Option('--backend <b>', 'native kernels: auto uses CUDA when usable').choices(['auto', 'cpu', 'cuda']).default('auto'))
    .option('--threads <n>', 'ONNX Runtime threads (default: one per physical core)', positiveInt('--threads'))
    .option('--batch-size <n>', 'users per ONNX Runtime run', positiveInt('--batch-size'));
}

export function recommenderOptions(o: ServeCliOptions, worker: boolean): RecommenderOptions {
  return { data: o.data, scoring: o.scoring, index: o.index, backend: o.backend, threads: o.threads, batchSize: o.batchSize, worker };
}
