import type { ServedModelView, StoredModelView } from "@beta9/protocol";
import { describe, expect, it } from "vitest";
import { PoolCopies } from "./pool-copies.ts";

const dep = { workspaceId: "ws-a", source: "https://models.example/smol.gguf", quantize: "Q8_0" };
const converted = (sha256: string): StoredModelView => ({
  name: "smol",
  sha256,
  size: 145_000_000,
  source: dep.source,
  format: "gguf",
  license: null,
  architecture: "llama",
  parameter_count: 134_515_008,
  quantization: "Q8_0",
  context_length: 8192,
  converted_from: {
    name: "smol.source",
    sha256: "b".repeat(64),
    format: "gguf",
    quantization: "Q4_1",
    target: "Q8_0",
    converter: { tool: "llama-quantize", version: "llama.cpp v0.4.0", args: ["Q8_0"] },
  },
});
const names: Record<string, string> = { m1: "alpha", m2: "beta", m3: "gamma" };
const allConnected = (id: string) => names[id];

describe("PoolCopies: one conversion per deployment, handed on to the pool's other machines", () => {
  it("offers a machine's conversion to another machine, with a ticket only that machine can spend", () => {
    const copies = new PoolCopies();
    copies.note("m1", dep, converted("a".repeat(64)));
    const offer = copies.offer(dep, "m2", allConnected);
    expect(offer).toMatchObject({ sha256: "a".repeat(64), size: 145_000_000, machine_name: "alpha" });
    expect(offer?.ticket).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(copies.claim(offer!.ticket, "m2", "a".repeat(64))).toMatchObject({
      owner: "ws-a",
      holders: ["m1"],
    });
    // Another machine with the same ticket, other bytes, or no ticket: refused.
    expect(copies.claim(offer!.ticket, "m3", "a".repeat(64))).toBeUndefined();
    expect(copies.claim(offer!.ticket, "m2", "c".repeat(64))).toBeUndefined();
    expect(copies.claim(undefined, "m2", "a".repeat(64))).toBeUndefined();
    expect(copies.claim(`${offer!.ticket.slice(0, -1)}x`, "m2", "a".repeat(64))).toBeUndefined();
  });

  it("offers nothing to the machine that holds it, across workspaces, or for a plain model", () => {
    const copies = new PoolCopies();
    copies.note("m1", dep, converted("a".repeat(64)));
    expect(copies.offer(dep, "m1", allConnected)).toBeUndefined();
    expect(copies.offer({ ...dep, workspaceId: "ws-b" }, "m2", allConnected)).toBeUndefined();
    expect(copies.offer({ ...dep, quantize: "Q4_K_M" }, "m2", allConnected)).toBeUndefined();
    const plain = { ...converted("d".repeat(64)), converted_from: undefined };
    copies.note("m1", { ...dep, quantize: null }, plain);
    expect(copies.offer({ ...dep, quantize: null }, "m2", allConnected)).toBeUndefined();
  });

  it("skips holders that are not connected, and forgets one that no longer has it", () => {
    const copies = new PoolCopies();
    copies.note("m1", dep, converted("a".repeat(64)));
    copies.note("m2", dep, converted("a".repeat(64)));
    expect(copies.offer(dep, "m3", (id) => (id === "m2" ? "beta" : undefined))?.machine_name).toBe("beta");
    expect(copies.offer(dep, "m3", () => undefined)).toBeUndefined();
    const offer = copies.offer(dep, "m3", allConnected)!;
    const grant = copies.claim(offer.ticket, "m3", offer.sha256)!;
    expect(grant.holders).toEqual(["m1", "m2"]);
    grant.forget("m1");
    expect(copies.claim(offer.ticket, "m3", offer.sha256)?.holders).toEqual(["m2"]);
  });

  it("hands on the newest bytes when another converter made other ones", () => {
    const copies = new PoolCopies();
    copies.note("m1", dep, converted("a".repeat(64)));
    copies.note("m2", dep, converted("e".repeat(64)));
    expect(copies.offer(dep, "m3", allConnected)).toMatchObject({
      sha256: "e".repeat(64),
      machine_name: "beta",
    });
  });

  it("a ticket expires", () => {
    let now = 1_000;
    const copies = new PoolCopies({ now: () => now, ttlMs: 60_000 });
    copies.note("m1", dep, converted("a".repeat(64)));
    const offer = copies.offer(dep, "m2", allConnected)!;
    now += 59_000;
    expect(copies.claim(offer.ticket, "m2", offer.sha256)).toBeDefined();
    now += 2_000;
    expect(copies.claim(offer.ticket, "m2", offer.sha256)).toBeUndefined();
  });

  it("one machine converts at a time: another's pull waits for it, then is offered its result", async () => {
    const copies = new PoolCopies();
    const mine = copies.turn(dep, "m1");
    expect("release" in mine).toBe(true);
    // The same machine again (the agent joins its own runs): its turn too, nothing to wait for.
    expect("release" in copies.turn(dep, "m1")).toBe(true);
    const other = copies.turn(dep, "m2");
    expect(copies.convertingElsewhere(dep, "m2")).toBe("m1");
    expect(copies.convertingElsewhere(dep, "m1")).toBeUndefined();
    if (!("wait" in other)) throw new Error("m2 should wait for m1's conversion");
    let ended = false;
    void other.wait.then(() => {
      ended = true;
    });
    await Promise.resolve();
    expect(ended).toBe(false);
    copies.note("m1", dep, converted("a".repeat(64)));
    if ("release" in mine) mine.release();
    await other.wait;
    expect(copies.offer(dep, "m2", allConnected)?.machine_name).toBe("alpha");
    expect(copies.convertingElsewhere(dep, "m2")).toBeUndefined();
  });

  it("a deployment that converts nothing never waits", () => {
    const copies = new PoolCopies();
    const plain = { ...dep, quantize: null };
    copies.turn(plain, "m1");
    expect("release" in copies.turn(plain, "m2")).toBe(true);
    const file = { ...plain, source: "hf:org/repo/model.Q4_K_M.gguf@main" };
    copies.turn(file, "m1");
    expect("release" in copies.turn(file, "m2")).toBe(true);
    const repo = { ...plain, source: "hf:org/repo" };
    copies.turn(repo, "m1");
    expect("wait" in copies.turn(repo, "m2")).toBe(true);
  });

  it("a holder whose bytes a machine refused is not offered again", () => {
    const copies = new PoolCopies();
    copies.note("m1", dep, converted("a".repeat(64)));
    copies.note("m2", dep, converted("a".repeat(64)));
    const offer = copies.offer(dep, "m3", allConnected)!;
    expect(offer.machine_name).toBe("alpha");
    copies.claim(offer.ticket, "m3", offer.sha256)!.sending("m1");
    expect(copies.unreliable(offer.ticket)).toEqual(["m1"]);
    // The ticket is spent, and the next machine is offered the other holder's copy.
    expect(copies.claim(offer.ticket, "m3", offer.sha256)).toBeUndefined();
    expect(copies.offer(dep, "m3", allConnected)?.machine_name).toBe("beta");
    // A pull that never fetched (it had the model) names no holder.
    const unused = copies.offer(dep, "m3", allConnected)!;
    expect(copies.unreliable(unused.ticket)).toEqual([]);
  });

  it("a directory an engine loads (safetensors, MLX) is offered with starts, per format, apart from the GGUF", () => {
    const copies = new PoolCopies();
    const served = (format: string, sha256: string): ServedModelView => ({
      name: "smol",
      engine: "vllm",
      state: "ready",
      memory_bytes: 270_000_000,
      context_size: 2048,
      converted_to: format,
      conversion: {
        sha256,
        size: 269_060_552,
        converted_from: { ...converted("x".repeat(64)).converted_from!, target: "float16" },
      },
    });
    copies.noteServed("m1", dep, served("safetensors", "f".repeat(64)));
    // A model served as it is stored, or a GGUF, is no directory to hand on.
    copies.noteServed("m2", dep, { ...served("safetensors", "0".repeat(64)), converted_to: undefined });
    const offers = copies.dirOffers(dep, "m3", allConnected);
    expect(offers).toEqual([
      expect.objectContaining({ format: "safetensors", sha256: "f".repeat(64), machine_name: "alpha" }),
    ]);
    expect(copies.claim(offers[0]!.ticket, "m3", "f".repeat(64))?.holders).toEqual(["m1"]);
    // Pulls are offered GGUFs only; the holder itself and another workspace get nothing.
    expect(copies.offer(dep, "m3", allConnected)).toBeUndefined();
    expect(copies.dirOffers(dep, "m1", allConnected)).toEqual([]);
    expect(copies.dirOffers({ ...dep, workspaceId: "ws-b" }, "m3", allConnected)).toEqual([]);
    copies.noteServed("m2", dep, served("mlx", "9".repeat(64)));
    expect(copies.dirOffers(dep, "m3", allConnected).map((o) => o.format)).toEqual(["safetensors", "mlx"]);
  });
});
