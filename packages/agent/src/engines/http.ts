import { request } from "undici";

/*
 * The agent's small requests to its engines (health, model lists, load and unload), on undici's own
 * client: Node's bundled one (undici 7.29.1 in Node 24.21) can throw an uncatchable assertion when an
 * engine closes a connection whose body is not read yet (undici #5360), ending the agent.
 */

/** What an engine answered; null from the helpers below means no connection at all (not up yet, or gone). */
export interface HttpAnswer {
  status: number;
  text: string;
}

/** No answer of these small requests is larger; an engine that sends more is misbehaving. */
const MAX_ANSWER_BYTES = 8 * 1024 * 1024;

function withTimeout(signal: AbortSignal | undefined, timeoutMs: number): AbortSignal {
  const timeout = AbortSignal.timeout(timeoutMs);
  return signal === undefined ? timeout : AbortSignal.any([signal, timeout]);
}

export async function httpRequest(
  url: string,
  init: {
    method?: "GET" | "POST" | "DELETE" | "HEAD";
    body?: unknown;
    headers?: Record<string, string> | undefined;
    signal?: AbortSignal | undefined;
    timeoutMs?: number;
  } = {},
): Promise<HttpAnswer | null> {
  try {
    const response = await request(url, {
      method: init.method ?? (init.body === undefined ? "GET" : "POST"),
      headers: {
        ...init.headers,
        ...(init.body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: init.body === undefined ? null : JSON.stringify(init.body),
      signal: withTimeout(init.signal, init.timeoutMs ?? 5_000),
    });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_ANSWER_BYTES) {
        response.body.destroy();
        return null;
      }
      chunks.push(chunk);
    }
    return { status: response.statusCode, text: Buffer.concat(chunks).toString("utf8") };
  } catch (error) {
    if (init.signal?.aborted) throw error;
    return null;
  }
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The model ids of an OpenAI-style `GET /v1/models` answer ({"object":"list","data":[{"id":…}]}). */
export function openAiModelIds(body: unknown): string[] {
  if (typeof body !== "object" || body === null) return [];
  const data = (body as { data?: unknown }).data;
  if (!Array.isArray(data)) return [];
  return data.flatMap((entry) =>
    typeof entry === "object" && entry !== null && typeof (entry as { id?: unknown }).id === "string"
      ? [(entry as { id: string }).id]
      : [],
  );
}
