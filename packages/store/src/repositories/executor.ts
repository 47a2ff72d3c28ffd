import type { Kysely, Transaction } from "kysely";
import type { Database } from "../schema.ts";

/** A repository runs its queries on the database or inside a transaction, the same either way. */
export type Executor = Kysely<Database> | Transaction<Database>;
