/**
 * What was read from a GGUF file's header, kept for the file's next load in the same process: a kept
 * warm engine loads the same models again and again, and parsing the header (the tokenizer's arrays
 * included) is a good part of a small model's start. Keyed by the file's identity (device, inode,
 * size, modification time), so a file replaced or rewritten is read anew; the oldest entry goes first.
 */
export class GgufHeaderCache<T> {
  readonly #entries = new Map<string, Promise<T>>();
  readonly #max: number;

  constructor(max = 8) {
    this.#max = max;
  }

  get(identity: string, read: () => Promise<T>): Promise<T> {
    const hit = this.#entries.get(identity);
    if (hit) {
      // Most recently used last: Map keeps insertion order.
      this.#entries.delete(identity);
      this.#entries.set(identity, hit);
      return hit;
    }
    const p = read();
    this.#entries.set(identity, p);
    p.catch(() => {
      if (this.#entries.get(identity) === p) this.#entries.delete(identity);
    });
    while (this.#entries.size > this.#max) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
    return p;
  }
}
