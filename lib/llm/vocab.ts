// The language model's vocabulary: special tokens, the template words, P decoder query tokens
// (the fixed decoder prompt, read in one teacher-forced pass), and the out-of-vocabulary id
// tokens: K*L user code tokens <u{k}-{c}> and K*L item code tokens <v{k}-{c}> (k = 1..K). These
// 2*K*L tokens cover every user and item, including ones never seen in training.
import { templateWords } from './prompts.js';

export const PAD = '<pad>';
export const EOS = '</s>';
export const UNK = '<unk>';

export interface VocabularySpec {
  /** Text words (default: the template words). */
  words?: string[];
  /** Codes per user and codebook size of the user tokenizer. */
  userK: number;
  userL: number;
  itemK: number;
  itemL: number;
  /** Number of decoder query tokens (the reference code uses 20). */
  decoderQueries: number;
}

export class Vocabulary {
  readonly tokens: string[];
  private readonly index = new Map<string, number>();
  readonly spec: Required<VocabularySpec>;
  /** Id of the first user / item code token; user token (k, c) = userBase + k * userL + c. */
  readonly userBase: number;
  readonly itemBase: number;
  readonly queryBase: number;

  constructor(spec: VocabularySpec) {
    for (const k of ['userK', 'userL', 'itemK', 'itemL', 'decoderQueries'] as const) {
      if (!Number.isInteger(spec[k]) || spec[k] < 1) throw new RangeError(`vocabulary: ${k} must be a positive integer, got ${spec[k]}`);
    }
    const words = spec.words ?? templateWords();
    this.spec = { ...spec, words };
    // T5's convention: pad 0, eos 1, unk 2.
    const tokens = [PAD, EOS, UNK, ...words];
    this.queryBase = tokens.length;
    for (let p = 0; p < spec.decoderQueries; p++) tokens.push(`<q${p}>`);
    this.userBase = tokens.length;
    for (let k = 0; k < spec.userK; k++) for (let c = 0; c < spec.userL; c++) tokens.push(`<u${k + 1}-${c}>`);
    this.itemBase = tokens.length;
    for (let k = 0; k < spec.itemK; k++) for (let c = 0; c < spec.itemL; c++) tokens.push(`<v${k + 1}-${c}>`);
    this.tokens = tokens;
    tokens.forEach((t, i) => {
      if (this.index.has(t)) throw new Error(`vocabulary: token '${t}' appears twice`);
      this.index.set(t, i);
    });
  }

  get size(): number {
    return this.tokens.length;
  }
  get pad(): number {
    return 0;
  }
  get eos(): number {
    return 1;
  }
  get unk(): number {
    return 2;
  }

  /** Token ids of user codes (length userK). */
  userTokenIds(codes: ArrayLike<number>): number[] {
    return this.codeIds(codes, this.spec.userK, this.spec.userL, this.userBase, 'user');
  }
  itemTokenIds(codes: ArrayLike<number>): number[] {
    return this.codeIds(codes, this.spec.itemK, this.spec.itemL, this.itemBase, 'item');
  }
  private codeIds(codes: ArrayLike<number>, K: number, L: number, base: number, what: string): number[] {
    if (codes.length !== K) throw new RangeError(`${what} codes: expected ${K} codes, got ${codes.length}`);
    const out: number[] = [];
    for (let k = 0; k < K; k++) {
      const c = codes[k];
      if (!Number.isInteger(c) || c < 0 || c >= L) throw new RangeError(`${what} code ${k} = ${c} is outside [0, ${L})`);
      out.push(base + k * L + c);
    }
    return out;
  }

  /** Decoder input: the P query tokens. */
  decoderQueryIds(): number[] {
    return Array.from({ length: this.spec.decoderQueries }, (_, p) => this.queryBase + p);
  }

  id(token: string): number {
    return this.index.get(token) ?? this.unk;
  }
  has(token: string): boolean {
    return this.index.has(token);
  }
  encode(tokens: string[]): number[] {
    return tokens.map((t) => this.id(t));
  }
  decode(ids: ArrayLike<number>): string[] {
    return Array.from(ids, (i) => {
      if (!Number.isInteger(i) || i < 0 || i >= this.tokens.length) throw new RangeError(`token id ${i} is outside the vocabulary (size ${this.tokens.length})`);
      return this.tokens[i];
    });
  }

  toJSON(): VocabularySpec & { size: number } {
    return { ...this.spec, size: this.size };
  }
  static fromJSON(j: VocabularySpec & { size?: number }): Vocabulary {
    const v = new Vocabulary(j);
    if (j.size !== undefined && j.size !== v.size) throw new Error(`vocabulary: stored size ${j.size} differs from the rebuilt size ${v.size}`);
    return v;
  }
}
