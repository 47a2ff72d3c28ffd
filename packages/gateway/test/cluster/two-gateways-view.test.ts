import { Store } from "@beta9/store";
import {
  Cluster,
  type ClusterGateway,
  clusterUnsupported,
  testModelPath,
  type Worker,
  waitFor,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ask,
  GATEWAY_ARGS,
  LIVENESS,
  machines,
  openaiClient,
  showTimelineOnFailure,
  testDeployment,
  watchStatus,
} from "./fixture.ts";

/*
 * Two gateway replicas on one PostgreSQL; the workers join through A (after B started) and hold
 * their channels to A alone. B shows them as A does, lists the models they serve, and a cordon made
 * through B reaches A.
 */
const unsupported = clusterUnsupported();
if (unsupported) console.warn(`skipping the cluster fault tests: ${unsupported}`);

describe.skipIf(unsupported)("machines held by the other gateway replica", () => {
  let cluster: Cluster;
  let a: ClusterGateway;
  let b: ClusterGateway;
  let workers: Worker[];
  let databaseUrl: string;
  const setup = showTimelineOnFailure(() => cluster);
  const statuses = async (gw: ClusterGateway) =>
    Object.fromEntries((await machines(gw)).map((m) => [m.id, m.status]));

  beforeAll(
    () =>
      setup(async () => {
        cluster = Cluster.create({ workers: 2, gateways: 2 });
        databaseUrl = await cluster.database();
        a = await cluster.startGateway({ args: GATEWAY_ARGS, databaseUrl });
        b = await cluster.startGateway({
          host: cluster.gatewayHosts[1]!,
          dataDir: a.dataDir,
          args: GATEWAY_ARGS,
          databaseUrl,
        });
        workers = await Promise.all(cluster.workerHosts.map((h) => cluster.joinWorker(a, h)));
        const dep = testDeployment("chat", testModelPath(), { min_replicas: 1 });
        expect((await a.api("POST", "/api/v1/deployments", dep)).status).toBe(201);
        expect(await ask(await openaiClient(a), "chat")).toMatch(/Paris/);
      }),
    150_000,
  );

  afterAll(async () => {
    await cluster?.destroy();
  });

  it("B lists the machines that joined through A, with A's status, and the models they serve", async () => {
    const ids = workers.map((w) => w.machineId).sort();
    expect(Object.values(await statuses(a))).toEqual(["READY", "READY"]);
    await waitFor(async () => JSON.stringify(await statuses(b)) === JSON.stringify(await statuses(a)), {
      what: "B to show the machines as A does",
      timeoutMs: 15_000,
    });
    expect(Object.keys(await statuses(b)).sort()).toEqual(ids);
    // Beyond B's liveness limits (OFFLINE after 8 s of silence on B's side), still as A sees them:
    // the beats B shows keep moving, and B never shows them UNHEALTHY or OFFLINE.
    const watches = ids.map((id) => watchStatus(b, id));
    type Shown = { last_heartbeat_at: string; inference: { models: { name: string }[] } | null };
    const beatAt = async () =>
      Date.parse((await b.api<Shown>("GET", `/api/v1/machines/${ids[0]}`)).body.last_heartbeat_at);
    const firstBeat = await beatAt();
    await waitFor(async () => (await beatAt()) - firstBeat > LIVENESS.offlineAfterMs + 1_000, {
      what: "B to show beats past the offline limit",
      timeoutMs: 20_000,
      intervalMs: 500,
    });
    for (const w of watches) await w.stop();
    expect(watches.map((w) => w.seen.map((s) => s.status))).toEqual([["READY"], ["READY"]]);
    const shown = (await b.api<Shown>("GET", `/api/v1/machines/${ids[0]}`)).body;
    expect(shown.inference).not.toBeNull();

    // The models served there are listed at B, by the OpenAI and Ollama listings alike.
    const clientB = await openaiClient(b);
    expect((await clientB.models.list()).data.map((m) => m.id)).toContain("chat");
    const ollama = async (path: string) =>
      (await fetch(`${b.url}${path}`, { headers: { authorization: `Bearer ${clientB.apiKey}` } }).then((r) =>
        r.json(),
      )) as { models: { name: string; machines?: { id: string }[] }[] };
    expect((await ollama("/api/tags")).models.map((m) => m.name)).toContain("chat");
    const ps = (await ollama("/api/ps")).models.find((m) => m.name === "chat");
    expect(ps?.machines?.length).toBe(1);
    expect(ids).toContain(ps!.machines![0]!.id);
  }, 60_000);

  it("B shows the answers in flight on a machine A holds, as A counts them", async () => {
    type Shown = { id: string; in_flight?: number; inference: { models: { name: string }[] } | null };
    const serving = (await a.api<{ machines: Shown[] }>("GET", "/api/v1/machines")).body.machines.find((m) =>
      m.inference?.models.some((x) => x.name === "chat"),
    )!;
    const inFlightAtB = async () =>
      (await b.api<Shown>("GET", `/api/v1/machines/${serving.id}`)).body.in_flight;
    expect(await inFlightAtB()).toBe(0);
    const client = await openaiClient(a);
    // At temperature 0 SmolLM2 counts on to the 900 tokens asked for: an answer of several seconds.
    const streams = [new AbortController()];
    const answers = streams.map((ac) =>
      client.chat.completions
        .create(
          {
            model: "chat",
            max_tokens: 900,
            temperature: 0,
            stream: true,
            messages: [{ role: "user", content: "Count from 1 to 1000, separated by commas." }],
          },
          { signal: ac.signal },
        )
        .then(async (stream) => {
          for await (const _ of stream);
        })
        .catch(() => {}),
    );
    try {
      await waitFor(async () => ((await inFlightAtB()) ?? 0) >= 1, {
        what: "B to show A's answers in flight",
        timeoutMs: 10_000,
        intervalMs: 200,
      });
    } finally {
      for (const ac of streams) ac.abort();
      await Promise.all(answers);
    }
    await waitFor(async () => (await inFlightAtB()) === 0, {
      what: "B to show none in flight",
      timeoutMs: 10_000,
    });
  }, 40_000);

  it("A rewrites its machines in the store when one changes, not every interval", async () => {
    const store = await Store.open({ kind: "postgres", url: databaseUrl });
    try {
      // A's row: the one holding both workers.
      const rowOfA = async () => {
        const rows = await store.gatewayReplicas.seenSince(0);
        const row = rows.find((r) => r.machines === 2);
        if (!row) throw new Error(`no replica holds both workers: ${JSON.stringify(rows)}`);
        return row;
      };
      const seen = { lastSeen: new Set<number>(), heldAt: new Set<number>() };
      for (let i = 0; i < 14; i++) {
        const row = await rowOfA();
        seen.lastSeen.add(row.last_seen_at);
        seen.heldAt.add(row.held_at);
        await new Promise((r) => setTimeout(r, 500));
      }
      // Over 7 s the row was written every 2 s, its machines at most once (their every-10-s refresh).
      expect(seen.lastSeen.size).toBeGreaterThanOrEqual(3);
      expect(seen.heldAt.size).toBeLessThanOrEqual(2);

      // A cordon is written with the machine at A's next write, and read by B from there.
      const id = workers[1]!.machineId;
      const before = (await rowOfA()).held_at;
      expect((await b.api("POST", `/api/v1/machines/${id}/cordon`)).status).toBe(200);
      await waitFor(
        async () => {
          const row = await rowOfA();
          if (row.held_at === before) return false;
          const [held] = await store.gatewayReplicas.held([row.id]);
          return (JSON.parse(held!.held) as Record<string, { cordoned: boolean }>)[id]?.cordoned === true;
        },
        { what: "A to write the cordoned machine", timeoutMs: 7_000, intervalMs: 250 },
      );
      await waitFor(async () => (await statuses(b))[id] === "CORDONED", {
        what: "B to show it CORDONED",
        timeoutMs: 5_000,
      });
      expect((await b.api("POST", `/api/v1/machines/${id}/uncordon`)).status).toBe(200);
      await waitFor(async () => (await statuses(b))[id] === "READY", {
        what: "B to show it READY again",
        timeoutMs: 7_000,
      });
    } finally {
      await store.close();
    }
  }, 40_000);

  it("a cordon made through B reaches A, which sends the machine nothing new", async () => {
    const id = workers[0]!.machineId;
    expect((await b.api("POST", `/api/v1/machines/${id}/cordon`)).status).toBe(200);
    await waitFor(async () => (await statuses(a))[id] === "CORDONED", {
      what: "A to see the cordon made through B",
      timeoutMs: 10_000,
    });
    await waitFor(async () => (await statuses(b))[id] === "CORDONED", {
      what: "B to show it CORDONED",
      timeoutMs: 10_000,
    });
    expect((await b.api("POST", `/api/v1/machines/${id}/uncordon`)).status).toBe(200);
    await waitFor(async () => (await statuses(a))[id] === "READY", {
      what: "A to see the uncordon made through B",
      timeoutMs: 10_000,
    });
  }, 40_000);

  it("a key's requests-per-minute limit holds across both replicas", async () => {
    const key = (
      await a.api<{ key: string }>("POST", "/api/v1/keys", {
        name: "limited",
        scopes: ["inference"],
        rpm_limit: 10,
      })
    ).body.key;
    // Admission comes before the model is looked up: an unknown model spends the key's requests too.
    const call = (gw: ClusterGateway) =>
      fetch(`${gw.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "no-such-model", messages: [{ role: "user", content: "hi" }] }),
      }).then((r) => r.status);
    for (let i = 0; i < 6; i++) expect(await call(a)).toBe(404);
    // B learns of A's six within a couple of intervals; alone it would admit ten before refusing.
    let admittedAtB = 0;
    await waitFor(
      async () => {
        const status = await call(b);
        if (status !== 429) admittedAtB++;
        return status === 429;
      },
      { what: "B to refuse the key", timeoutMs: 15_000, intervalMs: 500 },
    );
    expect(admittedAtB).toBeLessThanOrEqual(6);
  }, 40_000);

  it("a machine removed through B is gone from A too, which closes its channel", async () => {
    const gone = workers[1]!;
    const lines = gone.agent!.proc.lines.length;
    expect((await b.api("DELETE", `/api/v1/machines/${gone.machineId}`)).status).toBe(204);
    await waitFor(async () => !(gone.machineId in (await statuses(a))), {
      what: "A to drop the machine removed through B",
      timeoutMs: 10_000,
    });
    // A held its channel: closed, and the agent's credential is refused when it dials again.
    await waitFor(
      () => gone.agent!.proc.lines.slice(lines).some((l) => l.includes("refused this machine's credential")),
      {
        what: "the removed machine's agent to be refused",
        timeoutMs: 15_000,
      },
    );
    expect(Object.keys(await statuses(b))).toEqual([workers[0]!.machineId]);
    expect(Object.keys(await statuses(a))).toEqual([workers[0]!.machineId]);
  }, 40_000);
});
