import { chmodSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "@beta9/test-utils";
import { describe, expect, it } from "vitest";
import {
  type AgentConfig,
  ConfigError,
  gatewayAddresses,
  gatewayUrl,
  loadConfig,
  parseCountry,
  parseGatewayAddress,
  saveConfig,
} from "./config-file.ts";

const cfg: AgentConfig = {
  gateway: { host: "100.72.101.23", port: 1994, tls: false },
  machine: { id: "1c1b50c8", name: "studio", token: "b9m_secret", hostname: "studio" },
  pool: "external",
  control: { port: 9999 },
  heartbeat_interval_seconds: 5,
};

describe("agent config file", () => {
  it("round-trips the fork's keys, written 0600", async () => {
    const path = join(tempDir(), "sub", "config.yaml");
    await saveConfig(cfg, path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const text = readFileSync(path, "utf8");
    for (const key of [
      "gateway:",
      "host: 100.72.101.23",
      "port: 1994",
      "machine:",
      "id: 1c1b50c8",
      "token: b9m_secret",
      "hostname: studio",
      "pool: external",
    ]) {
      expect(text).toContain(key);
    }
    expect(await loadConfig(path)).toEqual({
      ...cfg,
      machine: { ...cfg.machine, join_token: undefined },
      control: { port: 9999, listen: undefined },
      models: { dir: undefined, allowed_dirs: undefined, huggingface_url: undefined },
      inference: { engine: undefined },
    });
  });

  it("keeps several gateway replicas in order, and reads a hand-written gateways list alone", async () => {
    const path = join(tempDir(), "config.yaml");
    const b = { host: "10.0.0.2", port: 1995, tls: false };
    await saveConfig({ ...cfg, gateways: [cfg.gateway, b] }, path);
    expect(readFileSync(path, "utf8")).toContain("- 10.0.0.2:1995");
    const loaded = await loadConfig(path);
    expect(loaded.gateway).toEqual(cfg.gateway);
    expect(gatewayAddresses(loaded)).toEqual([cfg.gateway, b]);

    writeFileSync(
      path,
      "gateways: [10.0.0.1:1994, https://gw.example:443]\nmachine: {id: m1, token: b9m_x}\n",
      { mode: 0o600 },
    );
    const listed = await loadConfig(path);
    expect(gatewayUrl(listed)).toBe("http://10.0.0.1:1994");
    expect(gatewayAddresses(listed).map((g) => g.host)).toEqual(["10.0.0.1", "gw.example"]);

    writeFileSync(path, "gateways: [10.0.0.1:1994, 'ftp://x']\nmachine: {id: m1, token: b9m_x}\n", {
      mode: 0o600,
    });
    await expect(loadConfig(path)).rejects.toThrow(/gateways: each address must use http or https/);
  });

  it("keeps machine.country, upper-cases a hand-written one, and refuses one that is not a code", async () => {
    const path = join(tempDir(), "config.yaml");
    await saveConfig({ ...cfg, machine: { ...cfg.machine, country: "DE" } }, path);
    expect(readFileSync(path, "utf8")).toContain("country: DE");
    expect((await loadConfig(path)).machine.country).toBe("DE");
    await saveConfig(cfg, path);
    expect(readFileSync(path, "utf8")).not.toContain("country");
    expect((await loadConfig(path)).machine.country).toBeUndefined();

    const base = "gateway:\n  host: x\nmachine:\n  id: m1\n  token: t\n";
    writeFileSync(path, `${base}  country: fr\n`, { mode: 0o600 });
    expect((await loadConfig(path)).machine.country).toBe("FR");
    writeFileSync(path, `${base}  country: Germany\n`, { mode: 0o600 });
    await expect(loadConfig(path)).rejects.toThrow(/machine.country: .*two-letter ISO 3166 country code/);
  });

  it("keeps models.huggingface_token (a private hub's token) across a rewrite, in the 0600 file", async () => {
    const path = join(tempDir(), "config.yaml");
    await saveConfig({ ...cfg, models: { huggingface_token: "hf_private" } }, path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect((await loadConfig(path)).models?.huggingface_token).toBe("hf_private");
    const base = "gateway:\n  host: x\nmachine:\n  id: m1\n  token: t\n";
    writeFileSync(path, `${base}models:\n  huggingface_token: ""\n`, { mode: 0o600 });
    expect((await loadConfig(path)).models?.huggingface_token).toBeUndefined();
  });

  it("keeps inference.keep_engine_warm and refuses one that is not true or false", async () => {
    const path = join(tempDir(), "config.yaml");
    await saveConfig({ ...cfg, inference: { keep_engine_warm: true } }, path);
    expect(readFileSync(path, "utf8")).toContain("keep_engine_warm: true");
    expect((await loadConfig(path)).inference?.keep_engine_warm).toBe(true);
    await saveConfig(cfg, path);
    expect((await loadConfig(path)).inference?.keep_engine_warm).toBeUndefined();

    const base = "gateway:\n  host: x\nmachine:\n  id: m1\n  token: t\n";
    writeFileSync(path, `${base}inference:\n  keep_engine_warm: "yes"\n`, { mode: 0o600 });
    await expect(loadConfig(path)).rejects.toThrow(/inference.keep_engine_warm must be true or false/);
  });

  it("keeps jobs.rootfs_dirs and jobs.podman across a rewrite, and refuses ulimits podman would not take", async () => {
    const path = join(tempDir(), "config.yaml");
    const jobs = {
      rootfs_dirs: ["/srv/rootfs"],
      podman: { runtime: "runc", ulimits: ["nofile=4096:4096"] },
    };
    await saveConfig({ ...cfg, jobs }, path);
    expect((await loadConfig(path)).jobs).toEqual({
      rootfs_dirs: ["/srv/rootfs"],
      podman: {
        runtime: "runc",
        cgroup_manager: undefined,
        storage_driver: undefined,
        ulimits: ["nofile=4096:4096"],
      },
    });
    const base = "gateway:\n  host: x\nmachine:\n  id: m1\n  token: t\n";
    writeFileSync(path, `${base}jobs:\n  podman:\n    ulimits: ["nofile 4096"]\n`, { mode: 0o600 });
    await expect(loadConfig(path)).rejects.toThrow(/jobs.podman.ulimits must be a list such as/);
    writeFileSync(path, `${base}jobs:\n  podman:\n    runtime: "runc --debug"\n`, { mode: 0o600 });
    await expect(loadConfig(path)).rejects.toThrow(/jobs.podman.runtime must be a single word/);
  });

  it("keeps jobs.package_index and jobs.find_links, and refuses what uv could not take", async () => {
    const path = join(tempDir(), "config.yaml");
    const jobs = { package_index: "http://10.0.0.1:8000/simple", find_links: ["/srv/wheels"] };
    await saveConfig({ ...cfg, jobs }, path);
    expect((await loadConfig(path)).jobs).toMatchObject(jobs);
    const base = "gateway:\n  host: x\nmachine:\n  id: m1\n  token: t\n";
    writeFileSync(path, `${base}jobs:\n  package_index: pypi.example.org\n`, { mode: 0o600 });
    await expect(loadConfig(path)).rejects.toThrow(/jobs.package_index must be an http\(s\) URL/);
    writeFileSync(path, `${base}jobs:\n  find_links: [wheels]\n`, { mode: 0o600 });
    await expect(loadConfig(path)).rejects.toThrow(/jobs.find_links must be a list of absolute folders/);
    writeFileSync(path, `${base}jobs:\n  package_index: none\n  find_links: [/srv/wheels]\n`, {
      mode: 0o600,
    });
    expect((await loadConfig(path)).jobs).toMatchObject({
      package_index: "none",
      find_links: ["/srv/wheels"],
    });
    writeFileSync(path, `${base}jobs:\n  max_env_bytes: 10000000000\n`, { mode: 0o600 });
    expect((await loadConfig(path)).jobs?.max_env_bytes).toBe(10_000_000_000);
    writeFileSync(path, `${base}jobs:\n  max_env_bytes: 10GB\n`, { mode: 0o600 });
    await expect(loadConfig(path)).rejects.toThrow(/jobs.max_env_bytes must be a positive number of bytes/);
  });

  it("parses --country the way people type it", () => {
    expect(parseCountry("DE")).toBe("DE");
    expect(parseCountry(" nl ")).toBe("NL");
    for (const bad of ["", "D", "DEU", "Germany", "D1", "12", "XX", "EU"]) {
      expect(() => parseCountry(bad)).toThrow(ConfigError);
    }
    // Two letters ISO assigns to no country; the United Kingdom's code is GB.
    expect(() => parseCountry("uk")).toThrow(
      /"uk" is not a two-letter ISO 3166 country code \(the United Kingdom is GB\)/,
    );
  });

  it("refuses a file that others can read, naming the fix", async () => {
    const path = join(tempDir(), "config.yaml");
    await saveConfig(cfg, path);
    chmodSync(path, 0o640);
    await expect(loadConfig(path)).rejects.toThrow(`chmod 600 ${path}`);
  });

  it("says how to create a missing file, and rejects broken ones", async () => {
    const dir = tempDir();
    await expect(loadConfig(join(dir, "none.yaml"))).rejects.toThrow(/b9agent init --gateway/);
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, "gateway: [unclosed", { mode: 0o600 });
    await expect(loadConfig(bad)).rejects.toBeInstanceOf(ConfigError);
    writeFileSync(bad, "gateway:\n  host: x\nmachine:\n  id: '../../etc'\n  token: t\n", { mode: 0o600 });
    await expect(loadConfig(bad)).rejects.toThrow(/machine.id/);
  });

  it("parses gateway addresses the way people type them", () => {
    expect(parseGatewayAddress("100.72.101.23:1994")).toEqual({
      host: "100.72.101.23",
      port: 1994,
      tls: false,
    });
    expect(parseGatewayAddress("gw.example.eu")).toEqual({ host: "gw.example.eu", port: 1994, tls: false });
    expect(parseGatewayAddress("https://gw.example.eu")).toEqual({
      host: "gw.example.eu",
      port: 443,
      tls: true,
    });
    expect(parseGatewayAddress("[fd7a::1]:2000")).toEqual({ host: "fd7a::1", port: 2000, tls: false });
    expect(gatewayUrl({ ...cfg, gateway: { host: "fd7a::1", port: 2000, tls: false } })).toBe(
      "http://[fd7a::1]:2000",
    );
    expect(() => parseGatewayAddress("ftp://x")).toThrow(ConfigError);
    expect(() => parseGatewayAddress("host:1994/path")).toThrow(/no path/);
  });
});
