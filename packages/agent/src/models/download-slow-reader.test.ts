import { readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { basename, join } from "node:path";
import {
  type FileServer,
  startPythonFileServer,
  TEST_MODEL,
  tempDir,
  testModelPath,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { download } from "./download.ts";

/*
 * undici #5360: Node 24's bundled fetch throws an uncatchable assertion, ending the process, when a
 * server closes the connection after the body (Content-Length, then close, as python3 -m
 * http.server does) while the reader is too slow to take it. Here the reader is made slow at the
 * worst moment: near the end of the file, download's own progress callback blocks the process until
 * python has sent all it can and closed, then takes 10 ms per piece. Before the fix this test's
 * process died (about one run in two; three rounds make it near certain).
 */

const MiB = 1024 * 1024;
let python: FileServer;
let url: string;
let port: number;

/** Python's side of the download it serves now, read from /proc/net/tcp: closed, blocked or sending. */
function pythonSide(): "closed" | "blocked" | "sending" {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  const conns = readFileSync("/proc/net/tcp", "utf8")
    .split("\n")
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    // [sl, local, remote, state, tx:rx]; not the listening socket, not old connections in TIME_WAIT.
    .filter(([, local, , state]) => local?.endsWith(hex) && state !== "0A" && state !== "06");
  if (conns.length === 0 || conns.some(([, , , state]) => state === "04" || state === "05")) return "closed";
  return conns.some(([, , , , queues]) => Number.parseInt(queues?.split(":")[0] ?? "0", 16) > 0)
    ? "blocked"
    : "sending";
}

beforeAll(async () => {
  python = await startPythonFileServer([testModelPath()]);
  port = python.port;
  url = python.url(basename(testModelPath()));
});

afterAll(async () => {
  await python?.stop();
});

describe("download from python3 -m http.server with a slow reader", () => {
  it("completes and verifies the file when python closes while the reader is stalled near the end", async () => {
    const dir = tempDir("b9-slow-reader-");
    try {
      for (let round = 0; round < 3; round++) {
        let closedWhileStalled = false;
        const result = await download(url, join(dir, `model-${round}.gguf`), {
          expectedSha256: TEST_MODEL.sha256,
          retries: 0,
          progressIntervalMs: 0,
          onProgress: ({ completed }) => {
            if (completed < TEST_MODEL.bytes - 8 * MiB) return;
            if (closedWhileStalled) {
              // And the disk stays slow while the rest of the body waits in the socket.
              const until = Date.now() + 10;
              while (Date.now() < until) {}
              return;
            }
            // A disk that stops answering: the process does nothing until python can send no more.
            const until = Date.now() + 5000;
            let side = pythonSide();
            while (side === "sending" && Date.now() < until) side = pythonSide();
            closedWhileStalled = side === "closed";
          },
        });
        expect(result).toMatchObject({ sha256: TEST_MODEL.sha256, size: TEST_MODEL.bytes });
        expect(closedWhileStalled).toBe(true);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
