import { describe, expect, it } from 'vitest';
import { ID_ONLY_TEMPLATE, renderTemplate, TRAIN_TEMPLATES, UNSEEN_TEMPLATE, templateWords } from '../lib/llm/prompts.js';
import { Vocabulary } from '../lib/llm/vocab.js';
import { evaluationSample, sampleNegative, shuffledSubset, trainingSample } from '../lib/llm/samples.js';
import { seededRandom, splitLeaveOneOut } from '../lib/data/split.js';
import { syntheticDataset } from '../lib/data/synthetic.js';

describe('prompts and vocabulary', () => {
  const vocab = new Vocabulary({ userK: 3, userL: 4, itemK: 3, itemL: 5, decoderQueries: 20 });

  it('has 10 training templates, a distinct unseen one and an id-only one, all with {user}', () => {
    expect(new Set(TRAIN_TEMPLATES).size).toBe(10);
    expect(TRAIN_TEMPLATES).not.toContain(UNSEEN_TEMPLATE);
    for (const t of [...TRAIN_TEMPLATES, UNSEEN_TEMPLATE]) {
      expect(t).toContain('{user}');
      expect(t).toContain('{history}');
    }
    expect(ID_ONLY_TEMPLATE).not.toContain('{history}');
  });

  it('has 2*K*L id tokens, specials at T5 positions, and P query tokens', () => {
    expect(vocab.size).toBe(3 + templateWords().length + 20 + 3 * 4 + 3 * 5);
    expect(vocab.decode([0, 1, 2])).toEqual(['<pad>', '</s>', '<unk>']);
    expect(vocab.decode(vocab.userTokenIds([0, 3, 1]))).toEqual(['<u1-0>', '<u2-3>', '<u3-1>']);
    expect(vocab.decode(vocab.itemTokenIds([4, 0, 2]))).toEqual(['<v1-4>', '<v2-0>', '<v3-2>']);
    expect(vocab.decoderQueryIds()).toHaveLength(20);
    expect(() => vocab.itemTokenIds([5, 0, 0])).toThrow(/outside \[0, 5\)/);
    expect(() => vocab.userTokenIds([0, 0])).toThrow(/expected 3 codes/);
  });

  it('prompts round-trip through the vocabulary (every template, no <unk>)', () => {
    const user = vocab.decode(vocab.userTokenIds([1, 2, 3]));
    const hist = [vocab.decode(vocab.itemTokenIds([0, 1, 2])), vocab.decode(vocab.itemTokenIds([4, 4, 4]))];
    for (const t of [...TRAIN_TEMPLATES, UNSEEN_TEMPLATE, ID_ONLY_TEMPLATE]) {
      const toks = renderTemplate(t, user, hist);
      const ids = vocab.encode(toks);
      expect(ids).not.toContain(vocab.unk);
      expect(vocab.decode(ids)).toEqual(toks);
    }
    expect(renderTemplate(TRAIN_TEMPLATES[0], user, [])).toContain('nothing');
    const back = Vocabulary.fromJSON(JSON.parse(JSON.stringify(vocab.toJSON())));
    expect(back.tokens).toEqual(vocab.tokens);
  });
});

describe('samples without leakage', () => {
  const split = splitLeaveOneOut(syntheticDataset({ users: 300, items: 150, seed: 9 }));

  it('no test or validation item ever appears in a training prompt or target (whole split, many draws)', () => {
    const rand = seededRandom(1);
    for (let rep = 0; rep < 5; rep++) {
      for (const u of split.trainUsers) {
        const s = trainingSample(split, u, 10, rand);
        const heldOut = new Set([split.valid[u], split.test[u]]);
        expect(heldOut.has(s.target)).toBe(false);
        for (const i of s.history) expect(heldOut.has(i)).toBe(false);
        expect(Array.from(s.history)).not.toContain(s.target);
        expect(s.history.length).toBe(Math.min(10, split.train[u].length - 1));
      }
    }
  });

  it('valid prompts hold training items only; test prompts add the validation item; targets are the held-out ones', () => {
    const rand = seededRandom(2);
    for (const u of split.trainUsers) {
      const v = evaluationSample(split, u, 'valid', 1000, rand);
      expect(v.target).toBe(split.valid[u]);
      expect(new Set(v.history)).toEqual(new Set(split.train[u]));
      const t = evaluationSample(split, u, 'test', 1000, rand);
      expect(t.target).toBe(split.test[u]);
      expect(new Set(t.history)).toEqual(new Set([...split.train[u], split.valid[u]]));
      expect(Array.from(t.history)).not.toContain(split.test[u]);
    }
  });

  it('subsamples uniformly when over the cap and negatives avoid known items', () => {
    const rand = seededRandom(3);
    const counts = new Array(10).fill(0);
    for (let r = 0; r < 5000; r++) for (const i of shuffledSubset([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 3, rand)) counts[i]++;
    for (const c of counts) expect(Math.abs(c - 1500)).toBeLessThan(150);
    const known = new Set([0, 1, 2]);
    for (let r = 0; r < 200; r++) expect(known.has(sampleNegative(5, known, rand))).toBe(false);
    expect(() => sampleNegative(3, known, rand)).toThrow(/no negative/);
  });
});
