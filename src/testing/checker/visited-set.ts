/**
 * Open-addressing hash set of configurations in flat typed arrays: the hot
 * loop allocates nothing per entry. Entries are verified against the full
 * bitset (and state), so a hash collision costs time, never a wrong answer.
 */
export class VisitedSet<S> {
  private table = new Int32Array(1 << 12).fill(-1);
  private count = 0;
  private meta = new Uint32Array(3 << 12); // h1, h2, state id per entry
  private arena: Uint32Array;
  private readonly states: S[] = [];

  constructor(
    private readonly words: number,
    private readonly equal: ((a: S, b: S) => boolean) | undefined,
  ) {
    this.arena = new Uint32Array(Math.max(1, words) << 12);
  }

  /** Adds the configuration; false if it was already there. */
  add(h1: number, h2: number, sid: number, bits: Uint32Array, state: S): boolean {
    const { words, equal } = this;
    let mask = this.table.length - 1;
    let slot = (h1 ^ Math.imul(sid, 0x9e3779b1)) & mask;
    for (let e = this.table[slot]!; e !== -1; slot = (slot + 1) & mask, e = this.table[slot]!) {
      if (this.meta[3 * e] !== h1 || this.meta[3 * e + 1] !== h2 || this.meta[3 * e + 2] !== sid) continue;
      let same = true;
      for (let w = 0, o = e * words; w < words && same; w++) same = this.arena[o + w] === bits[w];
      if (same && (!equal || equal(this.states[e]!, state))) return false;
    }
    const e = this.count++;
    if ((e + 1) * words > this.arena.length || 3 * (e + 1) > this.meta.length) this.grow();
    this.meta[3 * e] = h1;
    this.meta[3 * e + 1] = h2;
    this.meta[3 * e + 2] = sid;
    this.arena.set(bits, e * words);
    if (equal) this.states[e] = state;
    if (2 * this.count > this.table.length) {
      this.rehash();
      mask = this.table.length - 1;
      slot = (h1 ^ Math.imul(sid, 0x9e3779b1)) & mask;
      while (this.table[slot]! !== -1) slot = (slot + 1) & mask;
    }
    this.table[slot] = e;
    return true;
  }

  private grow(): void {
    const meta = new Uint32Array(this.meta.length * 2);
    meta.set(this.meta);
    this.meta = meta;
    const arena = new Uint32Array(this.arena.length * 2);
    arena.set(this.arena);
    this.arena = arena;
  }

  /** Doubles the table and reinserts all entries but the one being added. */
  private rehash(): void {
    this.table = new Int32Array(this.table.length * 2).fill(-1);
    const mask = this.table.length - 1;
    for (let e = 0; e < this.count - 1; e++) {
      let slot = (this.meta[3 * e]! ^ Math.imul(this.meta[3 * e + 2]!, 0x9e3779b1)) & mask;
      while (this.table[slot]! !== -1) slot = (slot + 1) & mask;
      this.table[slot] = e;
    }
  }
}
