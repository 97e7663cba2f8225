// Contiguous ranges of backend slots in one array map, one range per
// frontend: the service map keeps only the frontend's entry with a slot base
// and a count; slot i (1..count) of the frontend is array index base + i - 1
// of its family's slot array (kinglet.h). Pure.
//
// First fit over a free list kept sorted by start, neighbours coalesced on
// free. Index 0 is never handed out, so a base of 0 can mean "no range".
//
// The agent changes a frontend's slots without a reader ever seeing a
// half-written set:
// - same or smaller count: rewrite the slots in place (one array write each
//   is atomic), write the frontend's new count, then `shrink` gives the tail back;
// - larger count: `extend` when the indexes right after the range are free
//   (write the new slots, then the count); otherwise `alloc` a new range,
//   write it whole, switch the frontend's entry to it in one update, and only
//   then `free` the old one. Until `free` the old range stays allocated, so
//   nothing else is written over slots a reader may still follow.

/** One allocated or free range: indexes start .. start + length - 1. */
export interface SlotRange {
  start: number;
  length: number;
}

export class SlotRanges {
  /** Indexes 1 .. capacity - 1 are managed (0 is reserved). */
  readonly capacity: number;
  // The free list: disjoint, sorted by start, no two adjacent (coalesced).
  #starts: number[] = [];
  #lengths: number[] = [];
  #used = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`slot capacity must be a positive integer, not ${capacity}`);
    this.capacity = capacity;
    if (capacity > 1) {
      this.#starts.push(1);
      this.#lengths.push(capacity - 1);
    }
  }

  /** How many indexes are allocated. */
  get used(): number {
    return this.#used;
  }

  /** The free ranges, by start (a copy). */
  freeRanges(): SlotRange[] {
    return this.#starts.map((start, i) => ({ start, length: this.#lengths[i]! }));
  }

  /** The start of a new range of `n` slots (first fit), or undefined when no free range is that long. */
  alloc(n: number): number | undefined {
    checkCount(n);
    if (n === 0) return 0;
    const starts = this.#starts, lengths = this.#lengths;
    for (let i = 0; i < starts.length; i++) {
      const len = lengths[i]!;
      if (len < n) continue;
      const start = starts[i]!;
      if (len === n) {
        starts.splice(i, 1);
        lengths.splice(i, 1);
      } else {
        starts[i] = start + n;
        lengths[i] = len - n;
      }
      this.#used += n;
      return start;
    }
    return undefined;
  }

  /**
   * Mark a range as allocated (rebuilding the allocation from pinned maps).
   * Throws when any of it is not free (two frontends claiming one slot).
   */
  reserve(start: number, n: number): void {
    checkCount(n);
    if (n === 0) return;
    this.#checkBounds(start, n);
    const i = this.#freeAt(start);
    if (i < 0 || start + n > this.#starts[i]! + this.#lengths[i]!) {
      throw new Error(`slots ${start}..${start + n - 1} are not free (claimed twice?)`);
    }
    this.#take(i, start, n);
  }

  /** Grow the range at `start` from `n` to `m` slots in place if the indexes after it are free; true when done. */
  extend(start: number, n: number, m: number): boolean {
    checkCount(n);
    checkCount(m);
    if (m < n) throw new Error(`extend from ${n} to ${m} slots: use shrink`);
    if (m === n) return true;
    if (n === 0) return false; // no range to extend: alloc one
    this.#checkBounds(start, n);
    const at = start + n, more = m - n;
    if (at + more > this.capacity) return false;
    const i = this.#freeAt(at);
    if (i < 0 || this.#starts[i] !== at || this.#lengths[i]! < more) return false;
    this.#take(i, at, more);
    return true;
  }

  /** Give back the last n - m slots of the range at `start` (after the frontend's count says m). */
  shrink(start: number, n: number, m: number): void {
    checkCount(m);
    if (m > n) throw new Error(`shrink from ${n} to ${m} slots: use extend or alloc`);
    this.free(start + m, n - m);
  }

  /** Give a range (or the tail of one) back. Throws when any of it is already free. */
  free(start: number, n: number): void {
    checkCount(n);
    if (n === 0) return;
    this.#checkBounds(start, n);
    const starts = this.#starts, lengths = this.#lengths;
    // i: the first free range starting after `start`.
    let lo = 0, hi = starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid]! <= start) lo = mid + 1;
      else hi = mid;
    }
    const i = lo;
    const end = start + n;
    const prevEnd = i > 0 ? starts[i - 1]! + lengths[i - 1]! : 0;
    if (prevEnd > start || (i < starts.length && starts[i]! < end)) {
      throw new Error(`slots ${start}..${end - 1} are already free (freed twice?)`);
    }
    const joinPrev = i > 0 && prevEnd === start;
    const joinNext = i < starts.length && starts[i] === end;
    if (joinPrev && joinNext) {
      lengths[i - 1]! += n + lengths[i]!;
      starts.splice(i, 1);
      lengths.splice(i, 1);
    } else if (joinPrev) {
      lengths[i - 1]! += n;
    } else if (joinNext) {
      starts[i] = start;
      lengths[i]! += n;
    } else {
      starts.splice(i, 0, start);
      lengths.splice(i, 0, n);
    }
    this.#used -= n;
  }

  /** Index of the free range holding `index`, or -1. */
  #freeAt(index: number): number {
    const starts = this.#starts;
    let lo = 0, hi = starts.length - 1, found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid]! <= index) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found >= 0 && index < starts[found]! + this.#lengths[found]! ? found : -1;
  }

  /** Remove start .. start + n - 1 from free range i (which holds it whole). */
  #take(i: number, start: number, n: number): void {
    const fs = this.#starts[i]!, fl = this.#lengths[i]!;
    const before = start - fs, after = fs + fl - (start + n);
    if (before > 0 && after > 0) {
      this.#lengths[i] = before;
      this.#starts.splice(i + 1, 0, start + n);
      this.#lengths.splice(i + 1, 0, after);
    } else if (before > 0) {
      this.#lengths[i] = before;
    } else if (after > 0) {
      this.#starts[i] = start + n;
      this.#lengths[i] = after;
    } else {
      this.#starts.splice(i, 1);
      this.#lengths.splice(i, 1);
    }
    this.#used += n;
  }

  #checkBounds(start: number, n: number): void {
    if (!Number.isInteger(start) || start < 1 || start + n > this.capacity) {
      throw new Error(`slots ${start}..${start + n - 1} are outside 1..${this.capacity - 1}`);
    }
  }
}

function checkCount(n: number): void {
  if (!Number.isInteger(n) || n < 0) throw new Error(`a slot count must be a non-negative integer, not ${n}`);
}
