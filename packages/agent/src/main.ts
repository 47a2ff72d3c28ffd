import { readFile } from "node:fs/promises";
import { hostname } from "node:os";
import { resolve } from "node:path";
import { createLogger } from "@beta9/http";
import {
  describeRelease,
  keepHeapSmall,
  releaseStartupMemory,
  sizeYoungGenerationByWork,
} from "@beta9/http/heap";
import { BETA9_VERSION, CONTROL_PORT } from "@beta9/protocol";
import { Command, InvalidArgumentError } from "commander";
import YAML from "yaml";
import { Agent } from "./agent.ts";
import { GatewayRefused, join } from "./channel/join.ts";
import { GatewayUntrusted } from "./channel/tls.ts";
import {
  type AgentConfig,
  ConfigError,
  configPath,
  gatewayUrl,
  loadConfig,
  newMachineId,
  parseCountry,
  parseGatewayAddress,
  saveConfig,
} from "./config/config-file.ts";
import { LogFeed } from "./dashboard/log-feed.ts";
import type { DashboardHandle } from "./dashboard/start.ts";
import { detectHardware, UsageSampler } from "./hardware/index.ts";
import {
  defaultPlatform,
  installService,
  type ServiceOptions,
  type ServicePlatform,
  serviceLogs,
  serviceStatus,
  uninstallService,
} from "./service/service.ts";

const port = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError("a port is a number from 0 to 65535");
  return n;
};
const country = (v: string) => {
  try {
    return parseCountry(v);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};
const list = (v: string) =>
  v
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);

/**
 * An agent proxies requests and beats; it keeps little. Node 24's default young generation grew to 32 MB
 * at start-up, a quarter of an idle agent's RSS (bench/engine).
 */
const AGENT_YOUNG_GENERATION_CAP = 4 * 1024 * 1024;
/**
 * While it answers requests, the young generation may grow to this: at 4 MB a quarter of the agent's
 * CPU under load was young-generation collections; at 32 MB, 0.79× the CPU per request (bench/gateway).
 */
const AGENT_BUSY_YOUNG_GENERATION_CAP = 32 * 1024 * 1024;
/** No request for this long: back to the idle size, memory given back. */
const AGENT_IDLE_AFTER_MS = 30_000;
/** Long enough for the agent to join and restore what it served: then it waits, and waits small. */
const RELEASE_AFTER_MS = 5_000;

async function run(opts: { tui?: boolean; listen?: string[]; debug?: boolean }): Promise<void> {
  const youngGeneration = keepHeapSmall(AGENT_YOUNG_GENERATION_CAP);
  // undici (and with it the pinned global dispatcher) is loaded at its first use: @beta9/http/undici-lazy.
  const path = configPath();
  const config = await loadConfig(path);
  // The dashboard draws on stdout and reads keys from stdin, so it needs a terminal on both.
  const tui = opts.tui !== false && Boolean(process.stdout.isTTY && process.stdin.isTTY);
  // With the dashboard up, log lines go to its LOGS panel instead of the terminal it draws on.
  const feed = tui ? new LogFeed() : undefined;
  const log = createLogger({
    name: "b9agent",
    ...(opts.debug ? { level: "debug" } : {}),
    ...(feed ? { destination: feed } : {}),
  });
  log.debug({ config: path, gateway: gatewayUrl(config), pool: config.pool }, "loaded the agent config");
  const agent = await Agent.create({ config, configPath: path, log, listen: opts.listen });
  agent.activity.on(
    "change",
    sizeYoungGenerationByWork(youngGeneration, {
      idleCap: AGENT_YOUNG_GENERATION_CAP,
      busyCap: AGENT_BUSY_YOUNG_GENERATION_CAP,
      idleAfterMs: AGENT_IDLE_AFTER_MS,
      onIdle: (released) =>
        log.info(
          { rss_before: released.rssBefore, rss_after: released.rssAfter },
          describeRelease(released, "the memory its requests took"),
        ),
    }),
  );
  setTimeout(() => {
    const released = releaseStartupMemory();
    log.info({ rss_before: released.rssBefore, rss_after: released.rssAfter }, describeRelease(released));
  }, RELEASE_AFTER_MS).unref();
  let dashboard: DashboardHandle | undefined;
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down");
    dashboard?.stopping();
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    const exit = (code: number) => async () => {
      await dashboard?.close();
      process.exit(code);
    };
    agent.stop().then(exit(0), exit(1));
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGHUP", () => stop("SIGHUP"));
  if (feed) {
    // A closed terminal must not crash the agent while it stops its engines.
    process.stdout.on("error", () => {});
    const sampler = new UsageSampler(agent.state.hardware);
    // React's development build is slower and larger; and an agent without a terminal never loads
    // React and Ink at all.
    process.env.NODE_ENV ??= "production";
    const { startDashboard } = await import("./dashboard/start.ts");
    dashboard = startDashboard({
      sources: {
        state: agent.state,
        inference: agent.inference,
        activity: agent.activity,
        pulls: agent.pulls,
        jobs: agent.jobs,
        logs: feed,
        endpoint: () => agent.openaiBaseUrl,
        machineName: config.machine.name,
      },
      sampleUsage: () => sampler.sample(),
      onQuit: () => stop("quit key"),
    });
  }
  try {
    await agent.run();
  } catch (err) {
    await dashboard?.close();
    throw err;
  }
}

/** Repeated --gateway flags and comma lists add up: every replica of the gateway, in order. */
function gatewayList(value: string, previous: string[] | undefined): string[] {
  const more = value
    .split(",")
    .map((v) => v.trim())
    .filter(Boolean);
  return [...(previous ?? []), ...more];
}

const program = new Command("b9agent")
  .description("Beta9 agent: joins this machine to a gateway's pool and serves its models")
  .version(BETA9_VERSION);

program
  .command("init")
  .description("join the gateway and, once it accepts, write the agent's config")
  .requiredOption(
    "--gateway <host:port>",
    "the gateway's address, e.g. 100.72.101.23:1994; several replicas as A,B or the flag repeated (tried in turn)",
    gatewayList,
  )
  .requiredOption("--token <join-token>", "a join token from `b9 token create`")
  .option("--pool <pool>", "the pool you expect the token to join; init refuses a token for another pool")
  .option(
    "--port <port>",
    "the gateway's port, for a --gateway given without one (the fork's spelling)",
    port,
  )
  .option("--name <name>", "a name for this machine", hostname())
  .option(
    "--country <code>",
    "the country this machine is in, as you see it (ISO 3166, e.g. DE): checked against the join token's; work is placed by the country the operator sets (b9 token create --country)",
    country,
  )
  .option(
    "--ca-file <file>",
    "PEM file of the CA that signed the gateway's (or its TLS proxy's) certificate, when the system does not trust it (gateway.ca_file)",
  )
  .option("--control-port <port>", "port of the control API", port, CONTROL_PORT)
  .option(
    "--listen <addresses>",
    "control API addresses (HOST[:PORT],…); default 127.0.0.1 and the Tailscale address",
    list,
  )
  .action(async (opts) => {
    const path = configPath();
    const previous = await loadConfig(path).catch(() => undefined);
    const name =
      String(opts.name)
        .replace(/[^a-zA-Z0-9._-]/g, "-")
        .replace(/^[^a-zA-Z0-9]+/, "")
        .slice(0, 63) || newMachineId();
    const gateways = (opts.gateway as string[]).map((text) => withPort(text, opts.port));
    const caFile = opts.caFile ? resolve(opts.caFile) : previous?.gateway.ca_file;
    const cfg: AgentConfig = {
      gateway: { ...gateways[0]!, ...(caFile ? { ca_file: caFile } : {}) },
      ...(gateways.length > 1 ? { gateways } : {}),
      // The same machine keeps its id when initialised again (a new token, a moved gateway).
      machine: {
        id: previous?.machine.id ?? newMachineId(),
        name,
        // Kept to present when joining again to the same gateway (it proves the id is this machine's).
        token: previous && sameGateway(previous, gateways[0]!) ? previous.machine.token : "",
        join_token: opts.token,
        hostname: hostname(),
        country: opts.country ?? previous?.machine.country,
      },
      pool: opts.pool ?? "external",
      control: { port: opts.controlPort, listen: opts.listen ?? previous?.control.listen },
      heartbeat_interval_seconds: previous?.heartbeat_interval_seconds ?? 5,
    };
    // Join first and write only a config that works: a failed init leaves the old config (or none).
    let res: Awaited<ReturnType<typeof join>>;
    try {
      res = await join(cfg, await detectHardware());
    } catch (err) {
      if (err instanceof GatewayRefused)
        throw new ConfigError(`the gateway refused the join token: ${err.message}; ${path} was not written`);
      if (err instanceof GatewayUntrusted || err instanceof ConfigError)
        throw new ConfigError(`${err.message}; ${path} was not written`);
      throw new ConfigError(
        `cannot reach the gateway at ${gatewayUrl(cfg)} (${describe(err)}); ${path} was not written. Check the address and port in --gateway, that b9gateway runs there, and that this machine can reach it (e.g. over Tailscale)`,
      );
    }
    if (opts.pool !== undefined && res.pool !== opts.pool) {
      throw new ConfigError(
        `this join token joins pool ${res.pool}, not ${opts.pool}; ${path} was not written. Create a token for ${opts.pool} with \`b9 token create --pool ${opts.pool}\`, or run init without --pool to join ${res.pool}`,
      );
    }
    await saveConfig(
      { ...cfg, pool: res.pool, machine: { ...cfg.machine, token: res.credential, join_token: undefined } },
      path,
    );
    process.stdout.write(
      `joined pool ${res.pool} as ${res.machine_id}; wrote ${path}; start the agent with: b9agent\n`,
    );
  });

/** `--gateway HOST` with the fork's `--port N`: the port goes with each address that has none. */
function withPort(text: string, gatewayPort: number | undefined): AgentConfig["gateway"] {
  const address = parseGatewayAddress(text);
  if (gatewayPort === undefined) return address;
  const hasPort = /:\d+\/?$/.test(text);
  if (hasPort && address.port !== gatewayPort) {
    throw new ConfigError(
      `--port ${gatewayPort} and --gateway ${text} name different ports; give the port once, as --gateway HOST:PORT`,
    );
  }
  return { ...address, port: gatewayPort };
}

/** A network error in words: its code (ECONNREFUSED) when it has one. */
function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const code = e.code ?? (e.cause as NodeJS.ErrnoException | undefined)?.code;
  return code ? `${code}: ${e.message}` : e.message;
}

function sameGateway(cfg: AgentConfig, gw: AgentConfig["gateway"]): boolean {
  return cfg.gateway.host === gw.host && cfg.gateway.port === gw.port;
}

program
  .command("run", { isDefault: true })
  .description("run the agent (the default command)")
  .option("--no-tui", "plain log lines instead of the dashboard (the default when stdout is not a terminal)")
  .option("--listen <addresses>", "control API addresses (HOST[:PORT],…)", list)
  .option("--debug", "log debug lines too (the same as BETA9_LOG_LEVEL=debug)")
  .action(run);

program
  .command("version")
  .description("print the agent's version (the same as --version)")
  .action(() => {
    process.stdout.write(`b9agent version ${BETA9_VERSION}\n`);
  });

const service = program
  .command("service")
  .description(
    "run the agent as a service: started at boot (or login with --user) and again after a failure",
  );

/** The options every `service` subcommand takes. */
function serviceCommand(name: string, description: string): Command {
  return service
    .command(name)
    .description(description)
    .option("--user", "a service of your user (systemd --user, a LaunchAgent) rather than the system's")
    .option(
      "--config <path>",
      "the agent config the service runs with (default: B9AGENT_CONFIG or ~/.b9agent/config.yaml)",
    )
    .option("--dir <dir>", "write the unit in this folder instead of the service manager's (to package it)")
    .option(
      "--platform <systemd|launchd>",
      "the service manager (default: systemd on Linux, launchd on macOS)",
      (v) => {
        if (v !== "systemd" && v !== "launchd") throw new InvalidArgumentError("systemd or launchd");
        return v;
      },
    );
}

interface ServiceFlags {
  user?: boolean;
  config?: string;
  dir?: string;
  platform?: ServicePlatform;
  start?: boolean;
  force?: boolean;
}

function serviceOptions(f: ServiceFlags): ServiceOptions {
  return {
    platform: f.platform ?? defaultPlatform(),
    user: f.user === true,
    config: f.config ?? configPath(),
    dir: f.dir,
    // A unit written elsewhere (--dir) is not one the service manager knows: never started from there.
    start: f.start !== false && f.dir === undefined,
    force: f.force,
  };
}

serviceCommand("install", "write and enable the service that runs `b9agent run --no-tui` with this config")
  .option("--no-start", "only write the unit; print how to enable and start it")
  .option("--force", "replace a service installed before")
  .action(async (f: ServiceFlags) => {
    process.stdout.write(await installService(serviceOptions(f)));
  });
serviceCommand("uninstall", "stop the service and remove its unit").action(async (f: ServiceFlags) => {
  process.stdout.write(await uninstallService(serviceOptions(f)));
});
serviceCommand("status", "where the service's unit is and what the service manager says of it").action(
  async (f: ServiceFlags) => {
    process.exitCode = await serviceStatus(serviceOptions(f), (s) => process.stdout.write(s));
  },
);
serviceCommand("logs", "the service's last log lines (-f: follow)")
  .option("-f, --follow", "keep printing new lines")
  .action(async (f: ServiceFlags & { follow?: boolean }) => {
    process.exitCode = await serviceLogs(serviceOptions(f), f.follow === true);
  });

program
  .command("config")
  .description("print the agent's config, with its secrets hidden")
  .action(async () => {
    const path = configPath();
    await loadConfig(path); // refuses a missing, unreadable or malformed config in a sentence
    const doc = YAML.parse(await readFile(path, "utf8"));
    process.stdout.write(`# ${path}\n${YAML.stringify(hideSecrets(doc))}`);
  });

/** Every `token`-like value replaced by its prefix, so the kind of secret shows but never the secret. */
function hideSecrets(value: unknown, key = ""): unknown {
  if (Array.isArray(value)) return value.map((v) => hideSecrets(v));
  if (value && typeof value === "object")
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, hideSecrets(v, k)]));
  if (typeof value === "string" && value && /token|credential|secret|key$/i.test(key)) {
    const prefix = /^b9[a-z]?_/.exec(value)?.[0] ?? "";
    return `${prefix}… (hidden)`;
  }
  return value;
}

/**
 * The fork's Go flags written as `--tui=false` or `--debug=true`: Go's boolean syntax, which
 * commander reads as an unknown option.
 */
function forkArgs(argv: string[]): string[] {
  return argv.flatMap((arg) => {
    const m = /^--?(tui|debug)=(true|false|1|0)$/.exec(arg);
    if (!m) return [arg];
    const on = m[2] === "true" || m[2] === "1";
    if (m[1] === "tui") return on ? [] : ["--no-tui"];
    return on ? ["--debug"] : [];
  });
}

program.parseAsync(forkArgs(process.argv)).catch((err: unknown) => {
  const e = err as NodeJS.ErrnoException;
  if (err instanceof ConfigError) process.stderr.write(`b9agent: ${e.message}\n`);
  else if (e.code === "EADDRINUSE") {
    process.stderr.write(
      `b9agent: ${e.message}: another process uses the control port; choose one with --listen 127.0.0.1:PORT\n`,
    );
  } else process.stderr.write(`b9agent: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
