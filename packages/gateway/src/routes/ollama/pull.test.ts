import type { DeploymentPullEvent } from "@beta9/protocol";
import { describe, expect, it } from "vitest";
import { lastPullLine, ollamaLine, ollamaPullLines } from "./pull.ts";
import { expectShape, fixtureLines } from "./testing/fixtures.ts";

const real = fixtureLines("pull-stream.ndjson");
const unknown = fixtureLines("pull-unknown.ndjson");
const sha = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
const where = { machine_id: "m1", machine_name: "worker" };

async function* events(list: DeploymentPullEvent[], fail?: Error): AsyncGenerator<DeploymentPullEvent> {
  for (const e of list) yield e;
  if (fail) throw fail;
}

async function all<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe("Ollama's pull progress from a deployment's pull events", () => {
  it("opens with Ollama's first line, names layers by digest, and ends with success", async () => {
    const lines = await all(
      ollamaPullLines(
        "smollm2",
        events([
          { status: "pulling on worker", ...where },
          { status: "pulling manifest", ...where },
          { status: "pulling smollm2", digest: `sha256:${sha}`, total: 100, completed: 0, ...where },
          { status: "pulling smollm2", digest: `sha256:${sha}`, total: 100, completed: 100, ...where },
          { status: "verifying sha256 digest", ...where },
          { status: "writing manifest", ...where },
          { status: "success", model: null, machines: [{ id: "m1", name: "worker" }] },
        ]),
      ),
    );
    expect(lines[0]).toEqual(unknown[0]);
    const layer = real.find((l) => l.completed !== undefined)!;
    const ours = lines.filter((l) => l.total !== undefined);
    expect(ours).toHaveLength(2);
    for (const l of ours) expectShape(l, layer);
    expect(ours[1]).toEqual({
      status: `pulling ${sha.slice(0, 12)}`,
      digest: `sha256:${sha}`,
      total: 100,
      completed: 100,
    });
    expect(lines.map((l) => l.status)).toEqual([
      "pulling manifest",
      "pulling on worker",
      `pulling ${sha.slice(0, 12)}`,
      `pulling ${sha.slice(0, 12)}`,
      "verifying sha256 digest",
      "writing manifest",
      "success",
    ]);
    expect(lines.at(-1)).toEqual(real.at(-1));
    // Nothing of ours that Ollama's lines lack (machine ids stay out).
    for (const l of lines)
      for (const k of Object.keys(l)) expect(["status", "digest", "total", "completed"]).toContain(k);
  });

  it("without a digest known ahead, names the layer by the model and leaves digest out, as Ollama does for an empty one", () => {
    expect(ollamaLine("tiny", { status: "copying", total: 10, completed: 3 })).toEqual({
      status: "pulling tiny",
      total: 10,
      completed: 3,
    });
  });

  it("throws what fails before any event, so the route answers it with its status", async () => {
    const it = ollamaPullLines("x", events([], new Error("cannot place x")))[Symbol.asyncIterator]();
    await expect(it.next()).rejects.toThrow("cannot place x");
  });

  it("stream: false answers only the last line", async () => {
    const last = await lastPullLine(
      ollamaPullLines("x", events([{ status: "pulling on worker" }, { status: "success", model: null }])),
    );
    expect(last).toEqual({ status: "success" });
  });
});
