import { CompiledQuery } from "kysely";
import type { Database } from "../schema.ts";
import { powerOfTwoSlices } from "./chunks.ts";
import type { Executor } from "./executor.ts";

/** SQL texts by the dialect's one-row text, then by rows: built by Kysely once per size, in either dialect. */
const texts = new Map<string, Map<number, string>>();

/**
 * A multi-row INSERT of a fixed list of columns for the request path's batches (usage rows, audit
 * events): its SQL is compiled by the executor's dialect once per batch size (powers of two up to
 * `max`) and kept, so a batch costs its values only, where building it with Kysely costs a query tree
 * per row. A column a row leaves out is written as null.
 */
export class RowInserter<T extends keyof Database, Row> {
  readonly #db: Executor;
  readonly #table: T;
  readonly #columns: readonly (keyof Row & string)[];
  readonly #max: number;
  /** This executor's texts (its dialect's), found on the first batch (one compile per transaction). */
  #mine: Map<number, string> | undefined;

  constructor(db: Executor, table: T, columns: readonly (keyof Row & string)[], max: number) {
    this.#db = db;
    this.#table = table;
    this.#columns = columns;
    this.#max = max;
  }

  async insertMany(rows: readonly Row[]): Promise<void> {
    for (const slice of powerOfTwoSlices(rows, this.#max)) {
      const params: unknown[] = [];
      for (const row of slice) for (const c of this.#columns) params.push(row[c] ?? null);
      await this.#db.executeQuery(CompiledQuery.raw(this.#text(slice.length), params));
    }
  }

  #text(rows: number): string {
    if (this.#mine === undefined) {
      const one = this.#compile(1);
      this.#mine = texts.get(one) ?? new Map([[1, one]]);
      texts.set(one, this.#mine);
    }
    let text = this.#mine.get(rows);
    if (text === undefined) {
      text = this.#compile(rows);
      this.#mine.set(rows, text);
    }
    return text;
  }

  #compile(rows: number): string {
    const row = Object.fromEntries(this.#columns.map((c) => [c, null]));
    // The builder's row type is the table's; the template only names its columns (values are params).
    return this.#db
      .insertInto(this.#table)
      .values(Array.from({ length: rows }, () => row) as never)
      .compile().sql;
  }
}
