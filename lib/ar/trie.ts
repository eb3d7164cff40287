// Prefix tree of the valid item code tuples: constrained decoding walks it, so that beam search
// can only ever produce the codes of an item that exists (no "hallucinated" ids).

export class CodeTrie {
  /** Codes per item (tuple length) and codebook size per position. */
  readonly K: number;
  readonly L: number;
  /** children[node] maps a code to the child node; node 0 is the root. */
  private readonly children: Map<number, number>[] = [new Map()];
  /** Items whose full tuple ends at a leaf (several when codes collide). */
  private readonly leafItems = new Map<number, number[]>();

  /** codes: (numItems, K) row-major. */
  constructor(codes: Int32Array, K: number, L: number) {
    if (!Number.isInteger(K) || K < 1) throw new RangeError(`K must be a positive integer, got ${K}`);
    if (codes.length % K !== 0) throw new RangeError(`codes.length (${codes.length}) is not a multiple of K (${K})`);
    this.K = K;
    this.L = L;
    const n = codes.length / K;
    for (let i = 0; i < n; i++) {
      let node = 0;
      for (let k = 0; k < K; k++) {
        const c = codes[i * K + k];
        if (!Number.isInteger(c) || c < 0 || c >= L) throw new RangeError(`codes[${i}][${k}] = ${c} is outside [0, ${L})`);
        let next = this.children[node].get(c);
        if (next === undefined) {
          next = this.children.length;
          this.children.push(new Map());
          this.children[node].set(c, next);
        }
        node = next;
      }
      const list = this.leafItems.get(node);
      if (list) list.push(i);
      else this.leafItems.set(node, [i]);
    }
  }

  get nodes(): number {
    return this.children.length;
  }

  /** Sorted child lists, built on first use (beam search asks for the same nodes many times). */
  private readonly sorted: ([code: number, child: number][] | undefined)[] = [];

  /** Valid next codes after a prefix node, ascending (a shared array: do not modify). */
  next(node: number): readonly [code: number, child: number][] {
    let s = this.sorted[node];
    if (s === undefined) {
      const m = this.children[node];
      if (m === undefined) throw new RangeError(`trie node ${node} does not exist (0..${this.children.length - 1})`);
      s = [...m.entries()].sort((a, b) => a[0] - b[0]);
      this.sorted[node] = s;
    }
    return s;
  }

  /** Items whose code tuple ends at this node (empty for inner nodes). */
  items(node: number): number[] {
    return this.leafItems.get(node) ?? [];
  }

  /** The node reached by a full or partial prefix, or -1 when it is not valid. */
  walk(prefix: ArrayLike<number>): number {
    let node = 0;
    for (let t = 0; t < prefix.length; t++) {
      const n = this.children[node].get(prefix[t]);
      if (n === undefined) return -1;
      node = n;
    }
    return node;
  }
}
