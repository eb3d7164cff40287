// LLM4Rec (PAPER.md §1.3): a T5 reads the prompt (the user's id tokens and the id tokens of the
// user's items), the decoder reads P fixed query tokens in one teacher-forced pass, and a
// 3-layer MLP maps the flattened decoder states (P * dModel) into the item-vector space.
// Training: the paper's cosine loss against the positive item's vector and a margin loss against
// a negative, or a full softmax over every item (lib/llm/loss.ts).
import { T5Model } from '../t5/model.js';
import type { T5Config } from '../t5/config.js';
import { Mlp } from '../nn/mlp.js';
import { ID_ONLY_TEMPLATE, renderTemplate, TRAIN_TEMPLATES, UNSEEN_TEMPLATE, type PromptKind } from './prompts.js';
import type { Vocabulary } from './vocab.js';
import type { Sample } from './samples.js';
import { ItemBias } from './bias.js';

/** Id codes of every user or item: (n, K) row-major. */
export interface Codes {
  K: number;
  L: number;
  codes: Int32Array;
}

export interface PromptInputs {
  /** (B * S) token ids, (B * S) attention mask. */
  ids: Int32Array;
  mask: Int32Array;
  batch: number;
  length: number;
}

/** Prompt tokens of one sample. `template` is an index into TRAIN_TEMPLATES for 'seen'. */
export function promptTokens(vocab: Vocabulary, userCodes: Codes, itemCodes: Codes, s: Sample, kind: PromptKind, template = 0): number[] {
  const K = userCodes.K;
  const user = vocab.decode(vocab.userTokenIds(userCodes.codes.subarray(s.user * K, s.user * K + K)));
  const IK = itemCodes.K;
  const history = kind === 'id-only' ? [] : Array.from(s.history, (i) => vocab.decode(vocab.itemTokenIds(itemCodes.codes.subarray(i * IK, i * IK + IK))));
  const t = kind === 'id-only' ? ID_ONLY_TEMPLATE : kind === 'unseen' ? UNSEEN_TEMPLATE : TRAIN_TEMPLATES[template];
  if (t === undefined) throw new RangeError(`template ${template} does not exist (0..${TRAIN_TEMPLATES.length - 1})`);
  return [...vocab.encode(renderTemplate(t, user, history)), vocab.eos];
}

/** Pads prompts to the longest one (pad id 0, mask 0). */
export function padPrompts(prompts: number[][]): PromptInputs {
  const B = prompts.length;
  const S = Math.max(1, ...prompts.map((p) => p.length));
  const ids = new Int32Array(B * S);
  const mask = new Int32Array(B * S);
  prompts.forEach((p, b) => {
    ids.set(p, b * S);
    mask.fill(1, b * S, b * S + p.length);
  });
  return { ids, mask, batch: B, length: S };
}

export interface LLM4RecShape {
  t5: T5Config;
  /** Decoder query tokens P. */
  queries: number;
  /** Hidden sizes of the projection (the paper's 3-layer MLP: two hidden layers). */
  projHidden: number[];
  /** Item-vector dimension d. */
  itemDim: number;
  /** Number of items when the model learns a per-item bias ('softmax-cosine-bias', lib/llm/bias.ts); absent otherwise. */
  biasItems?: number;
}

export interface TrainStepOptions {
  lr: number;
  projLr?: number;
  weightDecay?: number;
  clipNorm?: number;
}

/**
 * A loss of the model outputs z (B * itemDim): the mean loss, d loss / d z (B * itemDim) and, for
 * a model with an item bias, d loss / d bias (numItems).
 */
export type Objective = (z: Float32Array) => { loss: number; grad: Float32Array; biasGrad?: Float32Array };

export class LLM4Rec {
  readonly t5: T5Model;
  readonly proj: Mlp;
  readonly shape: LLM4RecShape;
  readonly vocab: Vocabulary;
  /** The learned per-item bias (shape.biasItems set), else undefined. */
  readonly itemBias: ItemBias | undefined;

  constructor(shape: LLM4RecShape, vocab: Vocabulary, t5: T5Model, proj: Mlp, itemBias?: ItemBias) {
    if (shape.t5.vocabSize !== vocab.size) throw new Error(`T5 vocabulary size ${shape.t5.vocabSize} differs from the prompt vocabulary (${vocab.size})`);
    const inDim = shape.queries * shape.t5.dModel;
    if (proj.sizes[0] !== inDim || proj.sizes[proj.sizes.length - 1] !== shape.itemDim) {
      throw new Error(`projection sizes [${proj.sizes}] do not map P * dModel = ${inDim} to itemDim = ${shape.itemDim}`);
    }
    if ((shape.biasItems ?? 0) !== (itemBias?.numItems ?? 0)) throw new Error(`the model's shape wants an item bias of ${shape.biasItems ?? 0} items, got ${itemBias?.numItems ?? 0}`);
    this.shape = shape;
    this.vocab = vocab;
    this.t5 = t5;
    this.proj = proj;
    this.itemBias = itemBias;
  }

  static create(shape: LLM4RecShape, vocab: Vocabulary, seed: number): LLM4Rec {
    const t5 = T5Model.create(shape.t5, seed);
    const proj = new Mlp([shape.queries * shape.t5.dModel, ...shape.projHidden, shape.itemDim], seed + 1);
    return new LLM4Rec(shape, vocab, t5, proj, shape.biasItems ? new ItemBias(shape.biasItems) : undefined);
  }

  private decoderIds(B: number): Int32Array {
    const q = this.vocab.decoderQueryIds();
    const out = new Int32Array(B * q.length);
    for (let b = 0; b < B; b++) out.set(q, b * q.length);
    return out;
  }

  /** z (B * itemDim) for padded prompts, inference mode. */
  async embed(p: PromptInputs): Promise<Float32Array> {
    const h = await this.t5.forward({ inputIds: p.ids, attentionMask: p.mask, decoderInputIds: this.decoderIds(p.batch), batchSize: p.batch, train: false });
    return this.proj.forward(h, p.batch);
  }

  /** One optimisation step on a batch of prompts against `objective` (cosineMarginLoss, ItemSoftmax). Returns the mean loss. */
  async trainStep(p: PromptInputs, objective: Objective, o: TrainStepOptions): Promise<{ loss: number; gradNorm: number }> {
    await this.t5.zeroGrad();
    this.proj.zeroGrad();
    const h = await this.t5.forward({ inputIds: p.ids, attentionMask: p.mask, decoderInputIds: this.decoderIds(p.batch), batchSize: p.batch, train: true });
    const z = this.proj.forward(h, p.batch, true);
    const { loss, grad, biasGrad } = objective(z);
    if (!Number.isFinite(loss)) throw new Error(`training diverged: loss is ${loss}`);
    if ((biasGrad !== undefined) !== (this.itemBias !== undefined)) throw new Error(this.itemBias ? 'the objective gave no gradient for the item bias' : 'the objective gave an item-bias gradient to a model without one');
    const gh = this.proj.backward(grad);
    await this.t5.backward(gh);
    // Clip the projection on its own norm; the backbone clips inside its step.
    if (o.clipNorm) {
      const n = Math.sqrt(this.proj.gradSquaredNorm());
      if (n > o.clipNorm) this.proj.scaleGrad(o.clipNorm / n);
    }
    const { gradNorm } = await this.t5.step({ lr: o.lr, weightDecay: o.weightDecay ?? 0, clipNorm: o.clipNorm ?? 0 });
    this.proj.step({ lr: o.projLr ?? o.lr, weightDecay: o.weightDecay ?? 0 });
    if (biasGrad) this.itemBias!.step(biasGrad, o.projLr ?? o.lr);
    return { loss, gradNorm };
  }

  dispose(): void {
    this.t5.dispose();
  }
}
