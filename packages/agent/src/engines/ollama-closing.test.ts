import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { testModelPath, waitFor } from "@beta9/test-utils";
import { afterEach, describe, expect, it } from "vitest";
import { OllamaEngine } from "./ollama.ts";
import { freeLoopbackPort } from "./ports.ts";
import { laptopCpuOnly } from "./testing/machines.ts";

/*
 * The Ollama engine on its own, with nothing else loaded first: Node's bundled fetch (undici 7.29.1
 * in Node 24.21) threw an uncatchable assertion, ending the process, when a server closed a
 * connection whose answer was not read (undici #5360). The stand-in for `ollama serve` answers as a
 * real one was recorded to, except that its answer to the model upload carries a body and a close.
 */

const fakeOllama = fileURLToPath(new URL("./testing/fake-ollama.ts", import.meta.url));
const stops: (() => void)[] = [];
afterEach(() => {
  for (const stop of stops.splice(0)) stop();
});

describe("Ollama (stand-in) that closes after answering the model upload", () => {
  it("imports the GGUF and serves it; the process lives on", async () => {
    const port = await freeLoopbackPort();
    const child = spawn(process.execPath, [fakeOllama], {
      env: { ...process.env, OLLAMA_HOST: `127.0.0.1:${port}`, FAKE_OLLAMA_BLOB_ANSWER_BYTES: "65536" },
      stdio: "ignore",
    });
    stops.push(() => child.kill("SIGKILL"));
    const url = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${url}/api/version`).catch(() => null))?.status === 200, {
      what: "the Ollama stand-in to listen",
    });
    const engine = new OllamaEngine({ reuseUrl: url });
    const served = await engine.start({
      model: { name: "smollm2", format: "gguf", path: testModelPath() },
      hardware: laptopCpuOnly,
    });
    expect(served.upstreamModel).toBe("smollm2");
    expect(await served.check()).toBe("serving");
    await served.stop();
    expect(served.state()).toBe("stopped");
  });
});
