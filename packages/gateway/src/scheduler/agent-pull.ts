import { LineSplitter } from "@beta9/http";
import { Beta9Error, type InferencePullRequest, type PullProgress } from "@beta9/protocol";
import type { AgentLink } from "../machines/registry.ts";
import { requestAgent } from "../router/request.ts";
import { agentError } from "./agent-call.ts";

/** The agent answers a streamed pull at once; its bytes then take as long as they take. */
const HEADERS_TIMEOUT_MS = 30_000;
const MAX_ERROR_BYTES = 64 * 1024;

/**
 * Have an agent pull a model into its store, over its channel, with the agent's NDJSON progress: each
 * progress line as it comes, then the last line (status "success" with the model's record). An error
 * line, an error answer or a stream cut short throws a Beta9Error with the agent's code. Aborting
 * `signal`, or leaving the loop early, cancels the pull on the machine.
 */
export async function* pullOnAgent(
  machineId: string,
  link: AgentLink,
  pull: Omit<InferencePullRequest, "stream">,
  signal: AbortSignal,
): AsyncGenerator<PullProgress> {
  if (!link.request)
    throw new Beta9Error("unavailable", "the machine is not connected over the agent channel");
  const attempt = await requestAgent(machineId, link, {
    path: "/inference/pull",
    body: JSON.stringify({ ...pull, stream: true }),
    headers: { "content-type": "application/json", accept: "application/x-ndjson" },
    headersTimeoutMs: HEADERS_TIMEOUT_MS,
    signal,
  });
  if (!attempt.started) {
    if (signal.aborted) throw attempt.error;
    throw new Beta9Error("unavailable", `the machine did not take the pull: ${attempt.error.message}`);
  }
  const res = attempt.response;
  try {
    if (res.status !== 200) {
      let text = "";
      for await (const chunk of res.body) {
        text += chunk.toString("utf8");
        if (text.length > MAX_ERROR_BYTES) break;
      }
      throw agentError(res.status, text, "/inference/pull");
    }
    const lines = new LineSplitter(1024 * 1024);
    for await (const chunk of res.body) {
      for (const line of lines.push(chunk)) {
        const p = parseLine(line);
        if (!p) continue;
        if (p.status === "error") {
          throw agentError(0, JSON.stringify({ error: p.error }), "/inference/pull");
        }
        yield p;
        if (p.status === "success") return;
      }
    }
    throw new Beta9Error("unavailable", "the machine ended the pull without saying whether it succeeded");
  } catch (err) {
    if (signal.aborted || err instanceof Beta9Error) throw err;
    // The channel went away mid-pull.
    throw new Beta9Error("unavailable", `the pull stopped: ${(err as Error).message}`);
  } finally {
    res.cancel();
  }
}

function parseLine(line: string): PullProgress | undefined {
  try {
    const v = JSON.parse(line) as unknown;
    if (typeof v === "object" && v !== null && typeof (v as PullProgress).status === "string") {
      return v as PullProgress;
    }
  } catch {}
  return undefined;
}
