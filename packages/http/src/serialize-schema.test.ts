import { MachineView } from "@beta9/protocol";
import Fastify from "fastify";
import pino from "pino";
import { Type } from "typebox";
import { describe, expect, it } from "vitest";
import { forSerialization } from "./serialize-schema.ts";
import { serverOptions } from "./server-options.ts";

const hardware = {
  os: "linux",
  arch: "x64",
  cpu_model: "AMD EPYC 7763",
  cpu_cores: 16,
  memory_total_bytes: 128 * 1024 ** 3,
  gpus: [],
};
const base = {
  id: "m1",
  name: "m1",
  pool: "default",
  status: "READY",
  hostname: "h1",
  agent_version: "0.1.0",
  country: null,
  connection: "channel",
  hardware,
  usage: null,
  inference: null,
  cordoned: false,
  draining: false,
  running_jobs: 0,
  joined_at: "2026-12-08T01:00:00.000Z",
  last_heartbeat_at: null,
};
/** Views a gateway sends: each union of MachineView on each of its sides. */
const views = [
  base,
  {
    ...base,
    status: "DRAINING",
    country: "DE",
    declared_country: null,
    pue: 1.2,
    usage: { cpu_percent: 12.5, memory_used_bytes: 1e9, memory_total_bytes: 2e9, gpus: [{ index: 0 }] },
    inference: {
      engines: [{ engine: "builtin", installed: true }],
      models: [
        {
          name: "chat",
          engine: "builtin",
          state: "running",
          memory_bytes: 1e8,
          context_size: 4096,
          deployment: true,
        },
        {
          name: "old",
          engine: "builtin",
          state: "error",
          memory_bytes: null,
          context_size: null,
          error: "gone",
        },
      ],
      memory_free_bytes: 5e9,
      vram_free_bytes: null,
    },
    last_heartbeat_at: "2026-12-08T01:00:05.000Z",
    in_flight: 2,
    drain_waiting_for: "2 requests",
  },
];

async function serve(withOurs: boolean, schema: unknown, body: unknown): Promise<string> {
  const log = pino({ level: "silent" });
  const opts = serverOptions(log);
  const app = Fastify(withOurs ? opts : { ...opts, schemaController: undefined });
  app.get("/x", { schema: { response: { 200: schema as object } } }, async () => body);
  const res = await app.inject("/x");
  await app.close();
  expect(res.statusCode).toBe(200);
  return res.body;
}

describe("response schemas as the serializer sees them", () => {
  it("rewrites the nullable and string-literal unions and leaves no anyOf in them", () => {
    const s = forSerialization(MachineView) as unknown as {
      properties: Record<string, Record<string, unknown>>;
    };
    for (const key of ["status", "country", "usage", "inference", "last_heartbeat_at", "connection"])
      expect(s.properties[key]?.anyOf, key).toBeUndefined();
    expect(s.properties.usage).toMatchObject({ type: "object", nullable: true });
    expect(s.properties.status).toMatchObject({ type: "string" });
    expect(s.properties.status?.nullable).toBeUndefined();
    // The schema the protocol exports is left as it was (validation and the docs read it).
    expect((MachineView.properties.usage as { anyOf?: unknown }).anyOf).toHaveLength(2);
  });

  it("keeps a union of other shapes as a union", () => {
    const either = Type.Union([
      Type.Object({ a: Type.String() }),
      Type.Object({ b: Type.Number() }),
      Type.Null(),
    ]);
    expect((forSerialization(either) as { anyOf?: unknown[] }).anyOf).toHaveLength(3);
  });

  it("writes the same bytes as fastify's own serializer, for every side of every union", async () => {
    for (const view of views) {
      const ours = await serve(true, MachineView, view);
      expect(ours).toBe(await serve(false, MachineView, view));
      expect(JSON.parse(ours)).toEqual(view);
    }
  });

  it("still leaves out what the schema does not name, inside a nullable object too", async () => {
    const leaky = {
      ...views[1],
      secret: "x",
      usage: { ...views[1]!.usage, credential: "y" },
    };
    const body = await serve(true, MachineView, leaky);
    expect(body).not.toContain("secret");
    expect(body).not.toContain("credential");
    expect(JSON.parse(body)).toEqual(views[1]);
  });
});
