import { readFileSync } from "node:fs";
import { createSecureContext } from "node:tls";
import {
  createLogger,
  installErrorHandling,
  installRequestId,
  type Logger,
  serverOptions,
} from "@beta9/http";
import { BETA9_VERSION, Beta9Error, Health, type JobState } from "@beta9/protocol";
import { Store, storeConfigFrom } from "@beta9/store";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import Fastify, { type FastifyInstance } from "fastify";
import type { Registry } from "prom-client";
import { type GatewayAudit, openGatewayAudit } from "./audit/gateway-audit.ts";
import { ApiKeyAuth, OPERATOR_WORKSPACE } from "./auth/api-keys.ts";
import { WorkspaceModels } from "./auth/model-access.ts";
import { installSecurityAudit } from "./auth/security-events.ts";
import { bootstrap } from "./bootstrap.ts";
import type { CarbonSource } from "./carbon/footprint.ts";
import { GridIntensity } from "./carbon/intensity.ts";
import { MachineCarbonFacts } from "./carbon/machine-carbon.ts";
import { channelUpgradeHandler } from "./channel/upgrade.ts";
import type { GatewayConfig } from "./config.ts";
import type { GatewayContext } from "./context.ts";
import { installMetrics } from "./http/metrics.ts";
import { TrustedProxies } from "./http/trusted-proxies.ts";
import { InferencePipeline } from "./inference/pipeline.ts";
import { installJobMetrics } from "./jobs/metrics.ts";
import { JobScheduler } from "./jobs/scheduler.ts";
import { KeyLimits } from "./limits/key-limits.ts";
import { BodyBudget } from "./limits/request-body.ts";
import { MachineRegistry } from "./machines/registry.ts";
import { machineWork } from "./machines/work.ts";
import { InferenceAudit } from "./metering/inference-audit.ts";
import { Metering } from "./metering/metering.ts";
import { UsageRecorder } from "./metering/usage-recorder.ts";
import { UsageRetention } from "./metering/usage-retention.ts";
import { PeerDirectory } from "./peers/directory.ts";
import { installPeerForwarding } from "./peers/forward.ts";
import { auditFacts } from "./reports/audit-facts.ts";
import { Router } from "./router/router.ts";
import { forkCompatRoutes } from "./routes/agent/fork-compat.ts";
import { joinRoutes } from "./routes/agent/join.ts";
import { poolCopyRoutes } from "./routes/agent/pool-copies.ts";
import { authRoutes } from "./routes/auth/index.ts";
import { aiActRoutes } from "./routes/management/ai-act.ts";
import { auditRoutes } from "./routes/management/audit.ts";
import { deploymentPullRoutes } from "./routes/management/deployment-pull.ts";
import { deploymentRoutes } from "./routes/management/deployments.ts";
import { jobRoutes } from "./routes/management/jobs.ts";
import { keyRoutes } from "./routes/management/keys.ts";
import { machineRoutes } from "./routes/management/machines.ts";
import { poolRoutes } from "./routes/management/pools.ts";
import { replicaRoutes } from "./routes/management/replicas.ts";
import { tokenRoutes } from "./routes/management/tokens.ts";
import { usageRoutes } from "./routes/management/usage.ts";
import { workspaceRoutes } from "./routes/management/workspaces.ts";
import { ollamaRoutes } from "./routes/ollama/index.ts";
import { openaiRoutes } from "./routes/openai/index.ts";
import { deploymentSpec } from "./scheduler/deployment-spec.ts";
import { Drains } from "./scheduler/drain.ts";
import { Placements } from "./scheduler/placements.ts";
import { ReplicaManager } from "./scheduler/replicas.ts";
import { dashboardRoutes } from "./ui/dashboard.ts";

export interface Gateway {
  app: FastifyInstance;
  store: Store;
  registry: MachineRegistry;
  log: Logger;
  /** The admin key, only on the first start of an empty store. */
  adminKey?: string | undefined;
  /** Replicas sharing a PostgreSQL store find each other here; undefined on SQLite (one replica). */
  peers: PeerDirectory | undefined;
  /** The Prometheus registry /metrics reads, for a listener of its own (--metrics-listen). */
  metrics: Registry;
  /** This replica's audit chain, and the routes it audits. */
  audit: GatewayAudit;
  close(): Promise<void>;
}

/** Build the gateway without listening: tests call `app.inject()`, main.ts calls `listen()`. */
export async function buildGateway(
  config: GatewayConfig,
  opts: { store?: Store; log?: Logger } = {},
): Promise<Gateway> {
  const log = opts.log ?? createLogger({ name: "b9gateway" });
  const store = opts.store ?? (await Store.open(storeConfigFrom(config)));
  const { adminKey } = await bootstrap(store, config.dataDir, log);
  // Before anything can change: a missing or corrupt audit key stops the start here.
  const audit = await openGatewayAudit(store, {
    dataDir: config.dataDir,
    log,
    retentionMs: config.auditRetentionMs,
  });
  const registry = new MachineRegistry(store, log, config.liveness);
  await registry.load();

  const proxies = new TrustedProxies(config.trustedProxies);
  const app = Fastify({
    ...serverOptions(log, config.bodyLimit),
    ...(config.tls ? { https: tlsFiles(config.tls) } : {}),
    // req.ip (logs, security events) is the client a listed proxy names, never one a client claims.
    trustProxy: proxies.trusts,
    // Agents' channels are upgraded sockets outside this timeout; only ordinary requests are timed.
    requestTimeout: 120_000,
    // While it shuts down the gateway refuses new requests itself, in its own error shape (below).
    return503OnClosing: false,
  }).withTypeProvider<TypeBoxTypeProvider>();

  installErrorHandling(app);
  installRequestId(app);
  installSecurityAudit(app, { audit: audit.audit, store });
  let closing = false;
  // A callback hook: every request passes it, and an async one costs a promise each time.
  app.addHook("onRequest", (req, reply, done) => {
    if (!closing) return done();
    reply.header("retry-after", "5");
    if (req.raw.httpVersionMajor !== 2) reply.header("connection", "close");
    done(
      new Beta9Error(
        "unavailable",
        "this gateway is shutting down; retry in a few seconds (another replica of it, if you run several, takes the request now)",
      ),
    );
  });
  // Several replicas share only a PostgreSQL store; before the routes, so it sees every inference route.
  // A key's limits: counted here, and shared with the other replicas on the same PostgreSQL.
  const limits = new KeyLimits();
  const peers = store.kind === "postgres" ? new PeerDirectory(store, registry, log, { limits }) : undefined;
  const closeForwarding = peers
    ? installPeerForwarding(app, {
        directory: peers,
        registry,
        headersTimeoutMs: config.coldStartTimeoutMs + 30_000,
      })
    : undefined;
  const ctx: GatewayContext = {
    store,
    registry,
    auth: new ApiKeyAuth(store),
    log,
    audit: audit.audit,
  };
  const router = new Router(registry);
  const placements = new Placements(store);
  await placements.load();
  const operator = await store.workspaces.byName(OPERATOR_WORKSPACE);
  // Footprints of answers and jobs: the grid where the machine is, its PUE (b9 machine set --country --pue).
  const carbon: CarbonSource = {
    intensity: new GridIntensity(config.carbonIntensity, log),
    machine: (id) => {
      const m = registry.get(id);
      return m && { country: m.country, pue: m.pue };
    },
  };
  // What low-carbon placement reads: each machine's measured Wh per 1,000 tokens and its grid.
  const carbonFacts = new MachineCarbonFacts(store, carbon.intensity, log);
  const replicas = new ReplicaManager({
    registry,
    placements,
    operatorWorkspaceId: operator?.id ?? "",
    sharedStore: store.kind === "postgres",
    log,
    traffic: router,
    coldStartTimeoutMs: config.coldStartTimeoutMs,
    convertOn: config.convertOn,
    deployments: async () => (await store.deployments.listAll()).map(deploymentSpec),
    carbonOf: carbonFacts.carbonOf,
    provenance: store.modelProvenance,
  });
  const metrics = installMetrics(app, registry, replicas, ctx.auth);
  // Before the routes: every management route registered after this writes its one event.
  audit.install(app, metrics.registry);
  const recorder = new UsageRecorder(store.usage, log);
  const retention = new UsageRetention(store.usage, log, config.usageRetentionMs);
  const metering = new Metering(
    recorder,
    limits,
    { inference: metrics.inference, servedNow: (model) => registry.serving(model).length > 0 },
    {
      keyConcurrency: config.keyConcurrency,
      carbon,
      log,
      // BETA9_AUDIT_INFERENCE=off: no inference events, the baseline of bench/gateway's audit figure.
      audit:
        process.env.BETA9_AUDIT_INFERENCE === "off"
          ? undefined
          : new InferenceAudit(audit.audit, (id) => registry.get(id)?.country),
    },
  );
  // Inference routes: one pipeline for both APIs (limits, lookup, cold start, machines, retries,
  // metering), bodies held at once, and how long a client may leave its answer untaken.
  const inference = {
    inference: new InferencePipeline({
      router,
      metering,
      replicas,
      models: new WorkspaceModels(store, registry),
      registry,
      log,
    }),
    bodyBudget: new BodyBudget(config.inferenceBodyBudget),
    clientStallMs: config.clientStallTimeoutMs,
  };
  // Keys whose buckets are full again are forgotten; the map holds only keys spending their limits.
  const pruneLimits = setInterval(() => limits.prune(), 60_000);
  pruneLimits.unref();
  app.get("/health", { schema: { response: { 200: Health } } }, async () => ({
    status: "ok" as const,
    version: BETA9_VERSION,
  }));
  await app.register(authRoutes, { ...ctx, config });
  await app.register(tokenRoutes, ctx);
  await app.register(keyRoutes, ctx);
  await app.register(poolRoutes, ctx);
  // Replicas of a removed deployment go now, not at the next sweep.
  const unloadRemoved = () =>
    void replicas.sweep().catch((err: unknown) => log.warn({ err }, "could not unload a removed deployment"));
  await app.register(workspaceRoutes, { ...ctx, onDeploymentsRemoved: unloadRemoved });
  await app.register(deploymentRoutes, { ...ctx, onRemoved: unloadRemoved });
  // The scheduler counts its transitions on the metrics, which read its gauges: bound once both exist.
  let countTransition = (_to: JobState) => {};
  const jobs = new JobScheduler({
    store,
    registry,
    log,
    onTransition: (to) => countTransition(to),
    carbon,
    carbonOf: carbonFacts.carbonOf,
    peersHoldMachines: () => (peers?.peers ?? []).some((p) => p.machines > 0),
    audit: audit.audit,
  });
  countTransition = installJobMetrics(metrics.registry, jobs);
  await app.register(jobRoutes, {
    ...ctx,
    jobs,
    bodyBudget: inference.bodyBudget,
    clientStallMs: config.clientStallTimeoutMs,
  });
  const drains = new Drains({
    registry,
    log,
    inFlight: (id) => router.outstanding(id),
    deployments: async () => (await store.deployments.listAll()).map(deploymentSpec),
    replicas: (dep) => replicas.serving(dep),
    keepMinimums: () => replicas.sweep(),
    unload: (m, model, why) => replicas.unload(m, model, why),
  });
  await app.register(machineRoutes, { ...ctx, router, drains });
  peers?.showWork((id) => machineWork({ router, drains }, id, registry.status(id)));
  await app.register(joinRoutes, ctx);
  await app.register(forkCompatRoutes, ctx);
  await app.register(poolCopyRoutes, { ...ctx, copies: replicas.copies });
  await app.register(usageRoutes, { ...ctx, metering });
  await app.register(auditRoutes, { ...ctx, publicKey: audit.audit.publicKey });
  await app.register(aiActRoutes, { ...ctx, metering, ...auditFacts(store, audit.audit.publicKey) });
  await app.register(openaiRoutes, { ...ctx, ...inference });
  await app.register(replicaRoutes, { ...ctx, router, replicas });
  const prePullDeps = { registry, pulled: replicas.pulled, log, replicas };
  await app.register(deploymentPullRoutes, { ...ctx, prePull: prePullDeps });
  await app.register(ollamaRoutes, { ...ctx, ...inference, prePull: prePullDeps });

  await app.register(dashboardRoutes);
  app.server.on("upgrade", channelUpgradeHandler({ ...ctx, proxies }));
  // Agent channels are long-lived upgraded sockets fastify does not track; end them before close()
  // waits for connections to drain, or it would wait forever.
  app.addHook("preClose", async () => {
    closing = true;
    // New requests already get 503 (fastify is closing); answers under way finish first, within the
    // grace, or a restart would cut every stream in flight.
    const graceEnds = Date.now() + config.shutdownGraceMs;
    if (router.inFlight() > 0) log.info({ in_flight: router.inFlight() }, "waiting for answers under way");
    while (router.inFlight() > 0 && Date.now() < graceEnds) await new Promise((r) => setTimeout(r, 50));
    await peers?.stop();
    replicas.stop();
    drains.stop();
    await jobs.stop();
    await registry.stop();
  });
  // After every request has ended (close waits for them), before the store closes: nothing recorded
  // is lost on a clean shutdown.
  app.addHook("onClose", async () => {
    clearInterval(pruneLimits);
    await retention.stop();
    await recorder.close();
    await audit.audit.close();
    await closeForwarding?.();
  });
  registry.start();
  replicas.start();
  drains.start();
  jobs.start();
  retention.start();
  audit.audit.start();

  return {
    app,
    store,
    registry,
    log,
    adminKey,
    peers,
    metrics: metrics.registry,
    audit,
    async close() {
      await app.close();
      await store.close();
    },
  };
}

/** The PEM files of --tls-cert and --tls-key, with a sentence naming the one that cannot be read. */
function tlsFiles(tls: NonNullable<GatewayConfig["tls"]>): { cert: Buffer; key: Buffer } {
  const read = (path: string, flag: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new Error(`cannot read ${flag} ${path}: ${(err as Error).message}`);
    }
  };
  const files = { cert: read(tls.certFile, "--tls-cert"), key: read(tls.keyFile, "--tls-key") };
  try {
    createSecureContext(files);
  } catch (err) {
    throw new Error(
      `--tls-cert ${tls.certFile} and --tls-key ${tls.keyFile} are not a PEM certificate and its own key (${(err as Error).message})`,
    );
  }
  return files;
}
