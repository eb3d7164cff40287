// The codes of every user and item, as the tokenizer stage wrote them (tokenizer_codes.safetensors),
// for the language-model stage. With disambiguation an id has K + 1 codes; the extra code's range
// is folded into L (the vocabulary gives every code position L tokens).
import { join } from 'node:path';
import { requireManifest, verifyStage } from '../io/manifest.js';
import { readSafetensors } from '../io/safetensors.js';
import type { Codes } from '../llm/model.js';
import { TOKENIZER_FILES, TOKENIZER_STAGE } from './stage.js';

function toCodes(data: Int32Array, shape: number[], L: number, what: string, source: string): Codes {
  if (shape.length !== 2) throw new Error(`${source}: ${what} must be 2-D (ids, codes), got shape [${shape}]`);
  let max = -1;
  for (const c of data) {
    if (c < 0) throw new Error(`${source}: ${what} holds a negative code (${c})`);
    if (c > max) max = c;
  }
  return { K: shape[1], L: Math.max(L, max + 1), codes: data };
}

export function loadTokenizerCodes(dir: string): { users: Codes; items: Codes } {
  const m = requireManifest(dir);
  verifyStage(dir, m, TOKENIZER_STAGE);
  const L = Number((m.stages[TOKENIZER_STAGE].config as { L?: number }).L);
  if (!Number.isInteger(L) || L < 1) throw new Error(`${dir}: the tokenizer stage records no codebook size L`);
  const path = join(dir, TOKENIZER_FILES.codes);
  const { tensors } = readSafetensors(path);
  const get = (name: string) => {
    const t = tensors[name];
    if (!t || t.dtype !== 'I32') throw new Error(`${path}: int32 tensor '${name}' is missing`);
    if (t.shape[0] !== (name === 'user_codes' ? m.dataset.users : m.dataset.items)) throw new Error(`${path}: '${name}' has ${t.shape[0]} rows for ${name === 'user_codes' ? m.dataset.users + ' users' : m.dataset.items + ' items'}`);
    return toCodes(t.data as Int32Array, t.shape, L, name, path);
  };
  return { users: get('user_codes'), items: get('item_codes') };
}
