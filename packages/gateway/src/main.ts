import { isIP, type Server } from "node:net";
import { hostname } from "node:os";
import { resolve } from "node:path";
import { installPinnedUndici } from "@beta9/http/undici-global";
import { BETA9_VERSION, GATEWAY_PORT, parseDuration } from "@beta9/protocol";
import { Command, InvalidArgumentError, Option } from "commander";
import { buildGateway } from "./app.ts";
import { parseRule } from "./auth/oidc/rules.ts";
import { DEFAULT_CHANNEL_IDLE_MS } from "./channel/agent-channel.ts";
import { defaultDataDir, gatewayConfig } from "./config.ts";
import { listenMetrics } from "./http/metrics.ts";
import { TrustedProxies } from "./http/trusted-proxies.ts";
import { DEFAULT_LIVENESS } from "./machines/liveness.ts";
import { keepHeapSmall } from "./memory.ts";

// Before anything allocates: V8's defaults would hold several times the heap a gateway uses.
keepHeapSmall();
installPinnedUndici();

const duration = (v: string) => {
  try {
    return parseDuration(v);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};
/** How the help shows a default duration: as one would write it ("5s", "1m"), not in milliseconds. */
function shownDuration(ms: number): string {
  if (ms === 0) return "0";
  const units: [string, number][] = [
    ["d", 86_400_000],
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1_000],
  ];
  for (const [unit, size] of units) if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}
const durationOption = (flags: string, description: string, defaultMs: number) =>
  new Option(flags, description).argParser(duration).default(defaultMs, shownDuration(defaultMs));

const port = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError("a port is a number from 0 to 65535");
  return n;
};

const url = (v: string) => {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new InvalidArgumentError("a URL such as http://10.0.0.5:1994");
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new InvalidArgumentError("an http(s) URL");
  return u.origin;
};

const trustedProxy = (v: string, previous: string[] = []) => {
  try {
    new TrustedProxies([v]);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message.replace(/^--trusted-proxy takes /, ""));
  }
  return [...previous, v];
};

const oidcRule = (v: string, previous: ReturnType<typeof parseRule>[] = []) => {
  try {
    return [...previous, parseRule(v)];
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};

const hostPort = (v: string) => {
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(v);
  const p = m ? Number(m[2]) : Number.NaN;
  if (!m || !Number.isInteger(p) || p > 65535)
    throw new InvalidArgumentError("HOST:PORT, e.g. 127.0.0.1:9464");
  return { host: m[1]!.replace(/^\[|\]$/g, ""), port: p };
};

/** Where peers reach this replica by default: the address it listens on, or its host name on every address. */
function advertisedUrl(host: string, address: ReturnType<Server["address"]>, tls: boolean): string {
  const port = typeof address === "object" && address ? address.port : GATEWAY_PORT;
  const name = host === "0.0.0.0" || host === "::" ? hostname() : host;
  return `${tls ? "https" : "http"}://${name.includes(":") ? `[${name}]` : name}:${port}`;
}

/** Only this host can reach an address in 127.0.0.0/8 or ::1; anything else is a network. */
function loopback(host: string): boolean {
  return host === "localhost" || host === "::1" || (isIP(host) === 4 && host.startsWith("127."));
}

const program = new Command("b9gateway")
  .description("Beta9 gateway: machines join it, users call models through it")
  .version(BETA9_VERSION)
  .option("--host <host>", "address to listen on", "0.0.0.0")
  .option("--port <port>", "port to listen on", port, GATEWAY_PORT)
  .option("--data-dir <dir>", "where the SQLite store and admin-key live", defaultDataDir())
  .option(
    "--database-url <url>",
    "PostgreSQL URL (postgres://…) instead of SQLite, for several gateway replicas",
  )
  .option(
    "--advertise-url <url>",
    "where the other gateway replicas on the same --database-url reach this one (default: http://HOST:PORT)",
    url,
  )
  .addOption(
    durationOption(
      "--heartbeat-interval <duration>",
      "how often agents send heartbeats",
      DEFAULT_LIVENESS.heartbeatIntervalMs,
    ),
  )
  .addOption(
    durationOption(
      "--unhealthy-after <duration>",
      "silence after which a machine is UNHEALTHY",
      DEFAULT_LIVENESS.unhealthyAfterMs,
    ),
  )
  .addOption(
    durationOption(
      "--offline-after <duration>",
      "silence after which a machine is OFFLINE",
      DEFAULT_LIVENESS.offlineAfterMs,
    ),
  )
  .addOption(
    durationOption(
      "--keepalive-ttl <duration>",
      "how long a fork agent (60 s keepalives) stays known without one: UNHEALTHY after half, OFFLINE after all",
      DEFAULT_LIVENESS.keepaliveTtlMs,
    ),
  )
  .addOption(
    durationOption(
      "--channel-idle-after <duration>",
      "how long an agent's channel stays HTTP/2 with no request before it goes back to heartbeat lines (agents of protocol 2)",
      DEFAULT_CHANNEL_IDLE_MS,
    ),
  )
  .addOption(
    durationOption(
      "--cold-start-timeout <duration>",
      "how long a request may wait while its model is pulled and loaded from zero",
      300_000,
    ),
  )
  .addOption(
    durationOption(
      "--usage-retention <duration>",
      "how long usage rows are kept (b9 usage, /api/v1/usage); 0 keeps them forever",
      gatewayConfig().usageRetentionMs,
    ),
  )
  .addOption(
    durationOption(
      "--audit-retention <duration>",
      "how long audit events are kept (pruning signs a checkpoint first); 0 keeps them forever",
      gatewayConfig().auditRetentionMs,
    ),
  )
  .option(
    "--convert-on <machine>",
    "the machine (by name) that makes a deployment's conversion (--quantize, safetensors sources) for the pool, e.g. an agent on this host with the converters; the others copy it",
    process.env.BETA9_CONVERT_ON,
  )
  .option("--tls-cert <file>", "serve HTTPS with this PEM certificate (chain); needs --tls-key")
  .option("--tls-key <file>", "the PEM private key of --tls-cert")
  .option(
    "--trusted-proxy <cidr>",
    "a reverse proxy (address or CIDR) whose X-Forwarded-For names the client; repeat for several",
    trustedProxy,
  )
  .option(
    "--metrics-listen <host:port>",
    "also serve /metrics without a key on this address, e.g. 127.0.0.1:9464 (on the main port it takes an operator key)",
    hostPort,
  )
  .addOption(
    durationOption(
      "--shutdown-grace <duration>",
      "on SIGTERM, how long answers under way may take to finish (new requests get 503 meanwhile)",
      30_000,
    ),
  )
  .addOption(
    durationOption(
      "--client-stall-timeout <duration>",
      "stop a generation whose client has not read its answer for this long (frees the engine's slot); 0 never",
      gatewayConfig().clientStallTimeoutMs,
    ),
  )
  .option(
    "--key-concurrency <n>",
    "requests one API key may have under way at once (more get 429); 0 for no bound",
    (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError("a whole number, 0 for no bound");
      return n;
    },
    gatewayConfig().keyConcurrency ?? 0,
  )
  .option(
    "--carbon-intensity-url <url>",
    "a live grid-intensity source answering Electricity Maps' or Energy-Charts' JSON, with {zone} (or {zone_lower}) for the machine's country; its token from BETA9_CARBON_INTENSITY_TOKEN. Without it: Ember's yearly figures shipped with the gateway",
    liveIntensityUrl,
  )
  .addOption(
    durationOption(
      "--session-ttl <duration>",
      "how long a dashboard or CLI sign-in lasts before signing in again",
      gatewayConfig().sessionTtlMs,
    ),
  )
  .option("--oidc-issuer <url>", "single sign-on: the OpenID Connect provider's issuer URL", (v: string) => {
    // Unlike url(): an issuer keeps its path (Keycloak's /realms/NAME).
    if (!URL.canParse(v) || !/^https?:$/.test(new URL(v).protocol))
      throw new InvalidArgumentError("an http(s) URL such as https://id.example.com/realms/main");
    return v;
  })
  .option("--oidc-client-id <id>", "the gateway's client id at the provider")
  .option(
    "--oidc-client-secret <secret>",
    "the gateway's client secret (or BETA9_OIDC_CLIENT_SECRET); none for a public client",
  )
  .option(
    "--oidc-groups-claim <path>",
    "where the groups are in the ID token or userinfo, a dotted path (Keycloak: realm_access.roles)",
    "groups",
  )
  .option(
    "--oidc-rule <GROUP=WORKSPACE:ROLE>",
    "members of GROUP sign in to WORKSPACE as admin, member or viewer; repeat; no matching rule: refused",
    oidcRule,
  )
  .action(async (opts) => {
    if (Boolean(opts.oidcIssuer) !== Boolean(opts.oidcClientId))
      throw new InvalidArgumentError("--oidc-issuer and --oidc-client-id go together: pass both, or neither");
    if (Boolean(opts.tlsCert) !== Boolean(opts.tlsKey))
      throw new InvalidArgumentError("--tls-cert and --tls-key go together: pass both, or neither");
    const config = gatewayConfig({
      host: opts.host,
      port: opts.port,
      dataDir: resolve(opts.dataDir),
      databaseUrl: opts.databaseUrl ?? process.env.BETA9_DATABASE_URL,
      advertiseUrl: opts.advertiseUrl,
      coldStartTimeoutMs: opts.coldStartTimeout,
      convertOn: opts.convertOn || undefined,
      shutdownGraceMs: opts.shutdownGrace,
      usageRetentionMs: opts.usageRetention,
      auditRetentionMs: opts.auditRetention,
      tls: opts.tlsCert ? { certFile: resolve(opts.tlsCert), keyFile: resolve(opts.tlsKey) } : undefined,
      trustedProxies: opts.trustedProxy ?? [],
      metricsListen: opts.metricsListen,
      clientStallTimeoutMs: opts.clientStallTimeout,
      keyConcurrency: opts.keyConcurrency === 0 ? null : opts.keyConcurrency,
      carbonIntensity: opts.carbonIntensityUrl
        ? { url: opts.carbonIntensityUrl, token: process.env.BETA9_CARBON_INTENSITY_TOKEN }
        : undefined,
      sessionTtlMs: opts.sessionTtl,
      oidc: opts.oidcIssuer
        ? {
            issuer: opts.oidcIssuer,
            clientId: opts.oidcClientId,
            clientSecret: opts.oidcClientSecret ?? process.env.BETA9_OIDC_CLIENT_SECRET,
            groupsClaim: opts.oidcGroupsClaim,
            rules: opts.oidcRule ?? [],
          }
        : undefined,
      liveness: {
        heartbeatIntervalMs: opts.heartbeatInterval,
        unhealthyAfterMs: opts.unhealthyAfter,
        offlineAfterMs: Math.max(opts.offlineAfter, opts.unhealthyAfter),
        keepaliveTtlMs: opts.keepaliveTtl,
        channelIdleMs: opts.channelIdleAfter,
      },
    });
    const gw = await buildGateway(config);
    if (gw.adminKey) {
      process.stdout.write(
        `\nAdmin API key (shown once; also in ${config.dataDir}/admin-key):\n\n  ${gw.adminKey}\n\n`,
      );
    }
    if (!config.tls && !loopback(config.host) && config.trustedProxies.length === 0) {
      // Said before "listening", so whoever waits for that line has seen it too.
      gw.log.warn(
        { host: config.host },
        `listening on ${config.host} without TLS: API keys and machine credentials cross the network readable by anyone on the path; pass --tls-cert and --tls-key, or listen on 127.0.0.1 behind a TLS proxy (--trusted-proxy)`,
      );
    }
    const address = await gw.app.listen({ host: config.host, port: config.port });
    gw.log.info({ address, store: gw.store.kind }, `b9gateway ${BETA9_VERSION} listening on ${address}`);
    const metricsServer = config.metricsListen
      ? await listenMetrics(gw.metrics, config.metricsListen)
      : undefined;
    if (metricsServer)
      gw.log.info({ address: metricsServer.address }, `metrics on http://${metricsServer.address}/metrics`);
    await gw.peers?.start(
      config.advertiseUrl ?? advertisedUrl(config.host, gw.app.server.address(), config.tls !== undefined),
    );
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        // A second signal: the person does not want to wait for answers under way.
        gw.log.warn({ signal }, "stopping now");
        process.exit(1);
      }
      stopping = true;
      gw.log.info({ signal }, "shutting down");
      const force = setTimeout(() => process.exit(1), config.shutdownGraceMs + 10_000);
      force.unref();
      metricsServer?.server.close();
      gw.close().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
  });

program.parseAsync().catch((err: unknown) => {
  const e = err as NodeJS.ErrnoException;
  const hint =
    e.code === "EADDRINUSE"
      ? " (another process uses that port; pick one with --port)"
      : e.code === "ECONNREFUSED"
        ? " (is PostgreSQL running at --database-url?)"
        : "";
  process.stderr.write(`b9gateway: ${e.message}${hint}\n`);
  process.exit(1);
});

/** --carbon-intensity-url: an http(s) URL that names the zone, so each machine's country is asked for. */
function liveIntensityUrl(v: string): string {
  let url: URL;
  try {
    url = new URL(v.replaceAll("{zone}", "FR").replaceAll("{zone_lower}", "fr"));
  } catch {
    throw new InvalidArgumentError(
      "not a URL: give e.g. https://api.electricitymaps.com/v3/carbon-intensity/latest?zone={zone}",
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new InvalidArgumentError("the live intensity source must be an http or https URL");
  if (!v.includes("{zone}") && !v.includes("{zone_lower}"))
    throw new InvalidArgumentError(
      "put {zone} (or {zone_lower}) where the machine's country goes, e.g. ?zone={zone}",
    );
  return v;
}
