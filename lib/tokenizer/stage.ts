// The tokenizer stage of a model directory (`tokenrec train <data> --stage tokenizer`): reads the
// CF stage's vectors, trains a user and an item MQ-Tokenizer, writes their weights and the codes
// of every user and item, and records the statistics in manifest.json.
//
// Files: tokenizer_user.safetensors, tokenizer_item.safetensors (weights, Tokenizer.save) and
// tokenizer_codes.safetensors: user_codes (numUsers, W) and item_codes (numItems, W) int32 with
// W = K (K + 1 with disambiguation), user_holdout / item_holdout (ids left out of training for
// the held-out reconstruction error). Users the CF stage marks as unseen (folded in) are not
// trained on: the frozen tokenizer encodes them, as it would any new user.
import { join } from 'node:path';
import { loadCfStage, CF_STAGE } from '../cf/store.js';
import { i32, writeSafetensors } from '../io/safetensors.js';
import { recordStage, stageIsCurrent, type Manifest } from '../io/manifest.js';
import { resolveTokenizerConfig, type TokenizerConfig, type TokenizerConfigInput } from './config.js';
import { trainTokenizer, type TokenizerProgressEvent, type TokenizerStats, type TrainedTokenizer } from './train.js';

export const TOKENIZER_STAGE = 'tokenizer';
export const TOKENIZER_FILES = {
  user: 'tokenizer_user.safetensors',
  item: 'tokenizer_item.safetensors',
  codes: 'tokenizer_codes.safetensors',
} as const;

export interface TokenizerStageOptions extends TokenizerConfigInput {
  /** Retrain even when the stage is recorded with the same configuration and CF vectors. */
  force?: boolean;
}

export interface TokenizerStageResult {
  dir: string;
  upToDate: boolean;
  config: TokenizerConfig;
  metrics: { user: TokenizerStats; item: TokenizerStats } | Record<string, unknown>;
}

export type TokenizerStageProgress = TokenizerProgressEvent & { entity: 'user' | 'item' };

/**
 * Options of the tokenizer stage for a command line, in one place so that `train --stage tokenizer`
 * and `tokenize` describe them the same way: [flag, description, key, kind].
 */
export const tokenizerCliOptions: ReadonlyArray<{ flags: string; description: string; key: keyof TokenizerConfigInput; kind: 'int' | 'num' | 'list' | 'bool' }> = [
  { flags: '--K <n>', description: 'tokenizer: codebooks = codes per id (default 3)', key: 'K', kind: 'int' },
  { flags: '--L <n>', description: 'tokenizer: codewords per codebook (default 256)', key: 'L', kind: 'int' },
  { flags: '--mask <rate>', description: 'tokenizer: masking probability per element (default 0.2)', key: 'maskRate', kind: 'num' },
  { flags: '--independent-masks', description: 'tokenizer: one mask per encoder (default: one masked input shared by the K encoders, as in the paper)', key: 'independentMasks', kind: 'bool' },
  { flags: '--codebook-dim <n>', description: 'tokenizer: codebook dimension d_c (default 512)', key: 'dc', kind: 'int' },
  { flags: '--enc-hidden <list>', description: 'tokenizer: encoder hidden widths, comma-separated (default 128,256; decoder mirrored)', key: 'encHidden', kind: 'list' },
  { flags: '--dec-hidden <list>', description: 'tokenizer: decoder hidden widths (default: the encoder\'s reversed)', key: 'decHidden', kind: 'list' },
  { flags: '--beta <x>', description: 'tokenizer: commitment weight (default 0.25)', key: 'beta', kind: 'num' },
  { flags: '--decorrelate <x>', description: 'tokenizer: weight of the cross-encoder decorrelation term, beyond the paper (default 3; 0 = the paper\'s loss)', key: 'decorrelation', kind: 'num' },
  { flags: '--tok-lr <x>', description: 'tokenizer: AdamW learning rate (default 1e-3)', key: 'lr', kind: 'num' },
  { flags: '--tok-weight-decay <x>', description: 'tokenizer: AdamW weight decay (default 0.01)', key: 'weightDecay', kind: 'num' },
  { flags: '--tok-epochs <n>', description: 'tokenizer: epochs (default 100)', key: 'epochs', kind: 'int' },
  { flags: '--tok-batch-size <n>', description: 'tokenizer: batch size (default 512)', key: 'batchSize', kind: 'int' },
  { flags: '--tok-seed <n>', description: 'tokenizer: seed (default 1)', key: 'seed', kind: 'int' },
  { flags: '--holdout <fraction>', description: 'tokenizer: fraction of ids held out for the reconstruction check (default 0.05)', key: 'holdout', kind: 'num' },
  { flags: '--reseed-after <n>', description: 'tokenizer: re-seed codewords unused for n epochs (default 2; 0 = never)', key: 'reseedAfter', kind: 'int' },
  { flags: '--no-standardize', description: 'tokenizer: feed the vectors as they are (default: standardise each dimension)', key: 'standardize', kind: 'bool' },
  { flags: '--no-unique-codes', description: 'tokenizer: keep the nearest-codeword codes even where ids share a K-tuple (default: a displaced id takes the cheapest free tuple)', key: 'uniqueCodes', kind: 'bool' },
  { flags: '--disambiguate', description: 'tokenizer: add an extra code to ids that share all K codes', key: 'disambiguate', kind: 'bool' },
];

/** Parses one CLI value of a tokenizer option (commander hands strings). */
export function parseTokenizerCliValue(kind: 'int' | 'num' | 'list' | 'bool', flag: string, v: string): number | number[] | boolean {
  const name = flag.split(' ')[0];
  if (kind === 'bool') return true;
  if (kind === 'list') {
    const parts = v.split(',').map((s) => Number(s.trim()));
    if (!parts.length || parts.some((p) => !Number.isInteger(p) || p < 1)) throw new Error(`${name} must be a comma-separated list of positive integers, got '${v}'`);
    return parts;
  }
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || (kind === 'int' && !Number.isInteger(n))) throw new Error(`${name} must be ${kind === 'int' ? 'an integer' : 'a number'}, got '${v}'`);
  return n;
}

/** Writes both tokenizers and the codes into `dir`; returns the file names. */
export function saveTokenizers(dir: string, trained: Record<'user' | 'item', TrainedTokenizer>): string[] {
  trained.user.tokenizer.save(join(dir, TOKENIZER_FILES.user));
  trained.item.tokenizer.save(join(dir, TOKENIZER_FILES.item));
  const codes = (t: TrainedTokenizer) => i32([t.codes.length / t.codeWidth, t.codeWidth], t.codes);
  writeSafetensors(join(dir, TOKENIZER_FILES.codes), {
    user_codes: codes(trained.user),
    item_codes: codes(trained.item),
    user_holdout: i32([trained.user.heldOut.length], trained.user.heldOut),
    item_holdout: i32([trained.item.heldOut.length], trained.item.heldOut),
  });
  return [TOKENIZER_FILES.user, TOKENIZER_FILES.item, TOKENIZER_FILES.codes];
}

/** Trains the user and item tokenizers of a model directory from its CF vectors. */
export async function runTokenizerStage(
  modelDir: string,
  options: TokenizerStageOptions = {},
  hooks: { onProgress?: (e: TokenizerStageProgress) => void; signal?: AbortSignal } = {},
): Promise<TokenizerStageResult> {
  const { force, ...input } = options;
  const config = resolveTokenizerConfig(input);
  const cf = loadCfStage(modelDir); // verifies manifest, files and values
  const manifest: Manifest = cf.manifest;
  // The CF files are part of the stage's identity: new CF vectors make the tokenizer stale.
  const record = { ...config, cf: manifest.stages[CF_STAGE].files } as unknown as Record<string, unknown>;
  if (!force && stageIsCurrent(modelDir, manifest, TOKENIZER_STAGE, record)) {
    return { dir: modelDir, upToDate: true, config, metrics: manifest.stages[TOKENIZER_STAGE].metrics ?? {} };
  }
  const trained: Partial<Record<'user' | 'item', TrainedTokenizer>> = {};
  try {
    for (const entity of ['user', 'item'] as const) {
      const vectors = entity === 'user' ? cf.userVectors : cf.itemVectors;
      trained[entity] = await trainTokenizer(vectors, cf.dim, config, {
        signal: hooks.signal,
        onProgress: hooks.onProgress ? (e) => hooks.onProgress!({ ...e, entity }) : undefined,
        exclude: entity === 'user' ? cf.userSource : undefined,
      });
    }
    const both = trained as Record<'user' | 'item', TrainedTokenizer>;
    const files = saveTokenizers(modelDir, both);
    const metrics = { user: both.user.stats, item: both.item.stats };
    recordStage(modelDir, manifest, TOKENIZER_STAGE, record, files, metrics);
    return { dir: modelDir, upToDate: false, config, metrics };
  } finally {
    trained.user?.tokenizer.dispose();
    trained.item?.tokenizer.dispose();
  }
}
