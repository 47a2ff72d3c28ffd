import { type Dialect, Kysely, Migrator, sql } from "kysely";
import { postgresDialect } from "./dialects/postgres.ts";
import { sqliteDialect } from "./dialects/sqlite.ts";
import { migrationProvider } from "./migrations/index.ts";
import { ApiKeyRepository } from "./repositories/api-keys.ts";
import { AuditRepository } from "./repositories/audit.ts";
import { DeploymentRepository } from "./repositories/deployments.ts";
import type { Executor } from "./repositories/executor.ts";
import { GatewayReplicaRepository } from "./repositories/gateway-replicas.ts";
import { JobRunRepository } from "./repositories/job-runs.ts";
import { JobRepository } from "./repositories/jobs.ts";
import { JoinTokenRepository } from "./repositories/join-tokens.ts";
import { MachineRepository } from "./repositories/machines.ts";
import { ModelProvenanceRepository } from "./repositories/model-provenance.ts";
import { PlacementRepository } from "./repositories/placements.ts";
import { PoolRepository } from "./repositories/pools.ts";
import { SettingRepository } from "./repositories/settings.ts";
import { UsageRepository } from "./repositories/usage.ts";
import { WorkspaceRepository } from "./repositories/workspaces.ts";
import type { Database } from "./schema.ts";

export type StoreConfig =
  | { kind: "sqlite"; path: string }
  | { kind: "postgres"; url: string; schema?: string; maxConnections?: number };

/** The repositories, bound to the database or to one transaction. */
export class Repositories {
  readonly workspaces: WorkspaceRepository;
  readonly pools: PoolRepository;
  readonly tokens: JoinTokenRepository;
  readonly machines: MachineRepository;
  readonly keys: ApiKeyRepository;
  readonly deployments: DeploymentRepository;
  readonly placements: PlacementRepository;
  readonly settings: SettingRepository;
  readonly usage: UsageRepository;
  readonly gatewayReplicas: GatewayReplicaRepository;
  readonly jobs: JobRepository;
  readonly jobRuns: JobRunRepository;
  readonly modelProvenance: ModelProvenanceRepository;
  readonly audit: AuditRepository;
  constructor(db: Executor) {
    this.workspaces = new WorkspaceRepository(db);
    this.pools = new PoolRepository(db);
    this.tokens = new JoinTokenRepository(db);
    this.machines = new MachineRepository(db);
    this.keys = new ApiKeyRepository(db);
    this.deployments = new DeploymentRepository(db);
    this.placements = new PlacementRepository(db);
    this.settings = new SettingRepository(db);
    this.usage = new UsageRepository(db);
    this.gatewayReplicas = new GatewayReplicaRepository(db);
    this.jobs = new JobRepository(db);
    this.jobRuns = new JobRunRepository(db);
    this.modelProvenance = new ModelProvenanceRepository(db);
    this.audit = new AuditRepository(db);
  }
}

/**
 * The gateway's store: one schema and one set of migrations over SQLite (default, a file in the data
 * dir) or PostgreSQL (several gateway replicas).
 */
export class Store extends Repositories {
  readonly db: Kysely<Database>;
  readonly kind: StoreConfig["kind"];

  readonly #schema: string | undefined;

  private constructor(db: Kysely<Database>, kind: StoreConfig["kind"], schema?: string) {
    super(db);
    this.db = db;
    this.kind = kind;
    this.#schema = schema;
  }

  static async open(config: StoreConfig): Promise<Store> {
    let dialect: Dialect;
    if (config.kind === "sqlite") dialect = sqliteDialect(config.path);
    else dialect = postgresDialect(config.url, config);
    const store = new Store(
      new Kysely<Database>({ dialect }),
      config.kind,
      config.kind === "postgres" ? config.schema : undefined,
    );
    try {
      if (config.kind === "postgres" && config.schema) {
        await sql`CREATE SCHEMA IF NOT EXISTS ${sql.id(config.schema)}`.execute(store.db);
      }
      await store.migrate();
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  async migrate(): Promise<void> {
    const migrator = new Migrator({
      db: this.db,
      provider: migrationProvider,
      ...(this.#schema ? { migrationTableSchema: this.#schema } : {}),
    });
    for (let attempt = 1; ; attempt++) {
      const { error, results } = await migrator.migrateToLatest();
      if (!error) return;
      // Before migrating, Kysely lists the tables of every schema in the database; a column another
      // session adds or drops meanwhile (another gateway replica migrating) can vanish mid-listing.
      // Nothing has run then, so the listing is tried again.
      if (attempt < 5 && (results ?? []).length === 0 && isCatalogRace(error)) {
        await new Promise((r) => setTimeout(r, 50 * attempt));
        continue;
      }
      const failed = results?.find((r) => r.status === "Error")?.migrationName;
      throw new Error(`database migration ${failed ?? ""} failed: ${String(error)}`, { cause: error });
    }
  }

  /** Run fn in one transaction: either all of its writes land or none do. */
  async transaction<T>(fn: (tx: Repositories) => Promise<T>): Promise<T> {
    return this.db.transaction().execute((trx) => fn(new Repositories(trx)));
  }

  async ping(): Promise<void> {
    await sql`select 1`.execute(this.db);
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}

/** `postgres://…` → PostgreSQL; anything else is refused with the accepted forms. */
export function storeConfigFrom(opts: { databaseUrl?: string; dataDir: string }): StoreConfig {
  if (opts.databaseUrl) {
    if (!/^postgres(ql)?:\/\//.test(opts.databaseUrl)) {
      throw new Error(
        `--database-url must start with postgres:// or postgresql:// (got ${opts.databaseUrl.split(":")[0]}:…); leave it out to use SQLite in the data dir`,
      );
    }
    return { kind: "postgres", url: opts.databaseUrl };
  }
  return { kind: "sqlite", path: `${opts.dataDir}/beta9.db` };
}

/** PostgreSQL's "undefined column" or "undefined table", met while reading the catalog. */
function isCatalogRace(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return code === "42703" || code === "42P01";
}
