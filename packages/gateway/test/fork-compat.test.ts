import { DIALECTS } from "@beta9/test-utils";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Harness, harness } from "./harness.ts";

// The fork's agents register with their token and send it on each keepalive. These shapes are the
// fork's own (register: token, machine_id, hostname, provider_name, pool_name, cpu, memory, gpu_count,
// private_ip; keepalive: machine_id, provider_name, pool_name, agent_version, metrics, inference).
const register = (token: string, machine_id: string) => ({
  token,
  machine_id,
  hostname: "100.100.74.117",
  provider_name: "generic",
  pool_name: "external",
  cpu: "8000m",
  memory: "16Gi",
  gpu_count: "0",
  private_ip: "100.100.74.117",
});
const keepalive = (machine_id: string) => ({
  machine_id,
  provider_name: "generic",
  pool_name: "external",
  agent_version: "0.1.9",
  metrics: {
    cpu_utilization_pct: 28.1,
    memory_utilization_pct: 78.1,
    total_cpu_available: 8000,
    total_memory_available: 16384,
    free_gpu_count: 0,
  },
  inference: { status: "running", ip: "100.100.74.117", port: 11434, models: ["gemma3:1b"] },
});

for (const dialect of [DIALECTS[0]]) {
  describe(`fork register/keepalive on ${dialect.name}`, () => {
    let h: Harness;
    let token: string;
    beforeEach(async () => {
      h = await harness(dialect);
      token = (await h.call("POST", "/api/v1/tokens", { body: { uses: 2 } })).body.token;
    });
    afterEach(async () => {
      await h.gw.close();
    });

    it("registers with the fork's JSON and answers its machine_state shape", async () => {
      const res = await h.call("POST", "/api/v1/machine/register", {
        body: register(token, "1c1b50c8"),
        key: null,
      });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({
        status: "ok",
        machine_state: {
          machine_id: "1c1b50c8",
          status: "ready",
          pool_name: "external",
          ttl_seconds: expect.any(Number),
        },
      });
      const m = (await h.call("GET", "/api/v1/machines/1c1b50c8")).body;
      expect(m).toMatchObject({
        status: "READY",
        hardware: { cpu_cores: 8, memory_total_bytes: 16 * 2 ** 30 },
      });
    });

    it("accepts keepalives with the machine's own token and records its metrics", async () => {
      await h.call("POST", "/api/v1/machine/register", { body: register(token, "1c1b50c8"), key: null });
      const res = await h.call("POST", "/api/v1/machine/keepalive", {
        body: keepalive("1c1b50c8"),
        key: token,
      });
      expect(res).toMatchObject({
        status: 200,
        body: { status: "ok", machine_state: { machine_id: "1c1b50c8", agent_version: "0.1.9" } },
      });
      const m = (await h.call("GET", "/api/v1/machines/1c1b50c8")).body;
      expect(m.connection).toBe("keepalive");
      expect(m.usage.cpu_percent).toBeCloseTo(28.1);
      expect(m.usage.memory_used_bytes).toBe(Math.round(16 * 2 ** 30 * 0.781));
    });

    it("binds the token to the machine: using it for another machine id is refused with 403", async () => {
      await h.call("POST", "/api/v1/machine/register", { body: register(token, "1c1b50c8"), key: null });
      await h.call("POST", "/api/v1/machine/register", { body: register(token, "2d2c60d9"), key: null });
      // The same join token registered both; each keepalive must still name its own machine.
      const other = (await h.call("POST", "/api/v1/tokens", { body: {} })).body.token;
      await h.call("POST", "/api/v1/machine/register", { body: register(other, "3e3d70ea"), key: null });
      const stolen = await h.call("POST", "/api/v1/machine/keepalive", {
        body: keepalive("3e3d70ea"),
        key: token,
      });
      expect(stolen).toMatchObject({ status: 403, body: { error: { code: "credential_machine_mismatch" } } });
      const reRegister = await h.call("POST", "/api/v1/machine/register", {
        body: register(token, "3e3d70ea"),
        key: null,
      });
      expect(reRegister.status).toBe(403);
      const noToken = await h.call("POST", "/api/v1/machine/keepalive", {
        body: keepalive("1c1b50c8"),
        key: null,
      });
      expect(noToken).toMatchObject({ status: 401, body: { error: { code: "credential_invalid" } } });
      const unknown = await h.call("POST", "/api/v1/machine/keepalive", {
        body: keepalive("ffffffff"),
        key: "b9j_whatever",
      });
      expect(unknown).toMatchObject({ status: 401, body: { error: { code: "machine_unknown" } } });
    });

    it("refuses malformed quantities and a spent token, leaving no machine behind", async () => {
      const bad = await h.call("POST", "/api/v1/machine/register", {
        body: { ...register(token, "aa"), memory: "lots" },
        key: null,
      });
      expect(bad).toMatchObject({ status: 400, body: { error: { code: "bad_request" } } });
      expect(bad.body.error.message).toMatch(/16Gi/);
      const noType = await h.call("POST", "/api/v1/machine/register", {
        body: { ...register(token, "bb"), gpu_count: 1 },
        key: null,
      });
      expect(noType.status).toBe(400);
      expect(await h.gw.store.machines.list()).toHaveLength(0);
      expect((await h.gw.store.tokens.list())[0]?.uses_left).toBe(2);
    });
  });
}
