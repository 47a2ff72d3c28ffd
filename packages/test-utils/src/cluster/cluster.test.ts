import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../processes.ts";
import { Cluster, type ClusterGateway, clusterUnsupported, type Worker } from "./index.ts";

/*
 * The cluster harness itself: hosts in their own namespaces, traffic that really crosses the switch,
 * a cut that silences a host and a heal that brings it back, and nothing left behind.
 */
const unsupported = clusterUnsupported();
if (unsupported) console.warn(`skipping the cluster harness tests: ${unsupported}`);

describe.skipIf(unsupported)("network-namespace cluster", () => {
  let cluster: Cluster;
  let gw: ClusterGateway;
  let worker: Worker;

  beforeAll(async () => {
    cluster = Cluster.create({ workers: 1 });
    gw = await cluster.startGateway({ args: ["--heartbeat-interval", "500ms", "--unhealthy-after", "2s"] });
    worker = await cluster.joinWorker(gw, cluster.workerHosts[0]!);
  });
  afterAll(async () => {
    await cluster?.destroy();
  });

  it("gives each host its own address; the gateway sees the client's and the worker's", async () => {
    const hosts = [...cluster.gatewayHosts, cluster.client, ...cluster.workerHosts];
    expect(new Set(hosts.map((h) => h.ns)).size).toBe(3);
    expect(new Set(hosts.map((h) => h.address)).size).toBe(3);
    for (const h of hosts) expect(existsSync(`/run/netns/${h.ns}`)).toBe(true);
    expect(gw.listenUrl).toBe(`http://${gw.host.address}:1994`);

    const machines = await gw.api<{ machines: { id: string; status: string }[] }>("GET", "/api/v1/machines");
    expect(machines.body.machines).toEqual([
      expect.objectContaining({ id: worker.machineId, status: "READY" }),
    ]);
    // The agent joined and dialled from the worker's address, across the switch.
    const remotes = gw.proc
      .logs()
      .filter((e) => e.msg === "machine joined" || e.msg === "agent connected")
      .map((e) => e.remote);
    expect(remotes).toEqual([worker.host.address, worker.host.address]);
    // The agent's control API is on the worker's own loopback.
    const status = await worker.control("GET", "/status");
    expect(status.status).toBe(200);
    expect(((await status.json()) as { machine_id: string }).machine_id).toBe(worker.machineId);
  });

  it("a cut host goes silent (UNHEALTHY) while it runs on, and comes back when healed", async () => {
    const status = async () =>
      (await gw.api<{ status: string }>("GET", `/api/v1/machines/${worker.machineId}`)).body.status;
    cluster.cut(worker.host);
    await waitFor(async () => (await status()) === "UNHEALTHY", { what: "UNHEALTHY", timeoutMs: 10_000 });
    expect(worker.agent!.proc.child.exitCode).toBeNull();
    // Its control API still answers on its own loopback: the host is alive, only its link is gone.
    expect((await worker.control("GET", "/health")).status).toBe(200);
    cluster.heal(worker.host);
    await waitFor(async () => (await status()) === "READY", { what: "READY again", timeoutMs: 20_000 });
  });

  it("the test's calls leave from the client host: cut it off and they go unanswered", async () => {
    const machines = (signal?: AbortSignal) =>
      fetch(`${gw.url}/api/v1/machines`, { headers: { authorization: `Bearer ${gw.adminKey}` }, signal });
    expect((await machines()).status).toBe(200);
    cluster.cut(cluster.client);
    await expect(machines(AbortSignal.timeout(1_000))).rejects.toThrow();
    cluster.heal(cluster.client);
    expect((await machines(AbortSignal.timeout(10_000))).status).toBe(200);
  });

  it("destroy() leaves no namespace behind", async () => {
    const names = [...cluster.gatewayHosts, cluster.client, ...cluster.workerHosts].map((h) => h.ns);
    names.push(cluster.net.switchNs);
    await cluster.destroy();
    for (const ns of names) expect(existsSync(`/run/netns/${ns}`)).toBe(false);
  });
});
