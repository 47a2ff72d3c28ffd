import { describe, expect, it } from "vitest";
import type { MachineRegistry, ServingMachine } from "../machines/registry.ts";
import { Router } from "./router.ts";

/** A registry where machines a and b serve "chat" (the router reads only routable()). */
function twoMachines(): MachineRegistry {
  const serving = [{ id: "a" }, { id: "b" }] as unknown as ServingMachine[];
  return { routable: (model: string) => (model === "chat" ? serving : []) } as unknown as MachineRegistry;
}

describe("router", () => {
  it("sends a request to the machine with the fewest in flight", () => {
    const router = new Router(twoMachines());
    router.begin("a", "chat");
    expect(router.pick("chat")?.id).toBe("b");
    router.begin("b", "chat");
    router.begin("b", "chat");
    expect(router.pick("chat")?.id).toBe("a");
  });

  it("counts what is in flight per machine and per replica", () => {
    const router = new Router(twoMachines());
    router.begin("a", "chat");
    router.begin("a", "embed");
    expect(router.outstanding("a")).toBe(2);
    expect(router.outstandingFor("a", "chat")).toBe(1);
    router.end("a", "chat");
    expect(router.outstandingFor("a", "chat")).toBe(0);
    expect(router.outstanding("a")).toBe(1);
  });

  it("sends nothing new to a retiring replica, and takes it back when released", () => {
    const router = new Router(twoMachines());
    router.begin("b", "chat");
    router.begin("b", "chat");
    const release = router.retire("a", "chat");
    // a has nothing in flight, yet it is not picked while it retires.
    for (let i = 0; i < 20; i++) expect(router.pick("chat")?.id).toBe("b");
    expect(router.pick("chat", new Set(["b"]))).toBeUndefined();
    release();
    expect(router.pick("chat")?.id).toBe("a");
  });
});
