import type { DeploymentPullEvent } from "@beta9/protocol";

/*
 * POST /api/pull answers in Ollama's own progress shape: `{"status":"pulling manifest"}` first, then
 * `{"status":"pulling <digest12>","digest":"sha256:…","total":…,"completed":…}` while bytes move,
 * steps such as `{"status":"verifying sha256 digest"}`, and `{"status":"success"}` last. A failure
 * after the first line is an `{"error":"…"}` line (sendNdjson writes it), as Ollama does.
 */

export interface OllamaPullLine {
  status: string;
  digest?: string;
  total?: number;
  completed?: number;
}

/**
 * A deployment's pull events as Ollama's lines. The first event is awaited before anything is
 * yielded, so an error found before any pull (no machine fits) is answered with its own HTTP status.
 */
export async function* ollamaPullLines(
  model: string,
  events: AsyncIterable<DeploymentPullEvent>,
): AsyncGenerator<OllamaPullLine> {
  const it = events[Symbol.asyncIterator]();
  try {
    let next = await it.next();
    yield { status: "pulling manifest" };
    let last = "pulling manifest";
    for (; !next.done; next = await it.next()) {
      const line = ollamaLine(model, next.value);
      // Said once, first, whichever machines pull after it.
      if (line === undefined || line.status === "pulling manifest") continue;
      // Ollama repeats a status only while its bytes move; steps are said once.
      if (line.total === undefined && line.status === last) continue;
      last = line.status;
      yield line;
      if (line.status === "success") return;
    }
  } finally {
    await it.return?.(undefined);
  }
}

/** One event in Ollama's shape (undefined: nothing to say). */
export function ollamaLine(model: string, e: DeploymentPullEvent): OllamaPullLine | undefined {
  if (e.status === "success") return { status: "success" };
  if (e.status === "error") return undefined;
  if (e.total !== undefined) {
    // Ollama names a layer by the first 12 hex digits of its digest; without one, by the model.
    const hex = e.digest?.replace(/^sha256:/, "");
    return {
      status: `pulling ${hex ? hex.slice(0, 12) : model}`,
      ...(e.digest ? { digest: e.digest } : {}),
      total: e.total,
      ...(e.completed !== undefined ? { completed: e.completed } : {}),
    };
  }
  return { status: e.status };
}

/** The lines' last, for `stream: false`: Ollama answers only `{"status":"success"}`. */
export async function lastPullLine(lines: AsyncIterable<OllamaPullLine>): Promise<OllamaPullLine> {
  let last: OllamaPullLine = { status: "" };
  for await (const line of lines) last = line;
  return last;
}
