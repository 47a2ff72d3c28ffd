import type { IncomingMessage } from "node:http";
import { nodeHttp } from "@beta9/http/node-http";

/*
 * The agent's small requests to its engines (health, model lists, load and unload), on Node's own
 * HTTP client, one connection each (engines listen on 127.0.0.1). Not on undici, which the agent
 * uses for the requests it proxies: undici's HTTP/1.1 parser is a WebAssembly module it instantiates
 * at its first request, ~3 MB that an idle agent, which only checks that its warm engine is up, would
 * otherwise hold (bench/install/README.md). Not on `fetch` either: Node's bundled undici can throw an
 * uncatchable assertion when an engine closes a connection whose body is not read yet (undici #5360).
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
  const body = init.body === undefined ? undefined : JSON.stringify(init.body);
  try {
    return await new Promise<HttpAnswer | null>((resolve, reject) => {
      const req = nodeHttp.request(url, {
        method: init.method ?? (body === undefined ? "GET" : "POST"),
        headers: {
          ...init.headers,
          ...(body === undefined
            ? {}
            : { "content-type": "application/json", "content-length": Buffer.byteLength(body) }),
        },
        agent: false,
        signal: withTimeout(init.signal, init.timeoutMs ?? 5_000),
      });
      req.on("error", reject);
      req.on("response", (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_ANSWER_BYTES) {
            res.destroy();
            resolve(null);
          } else chunks.push(chunk);
        });
        res.on("error", reject);
        res.on("close", () => {
          // An answer cut off before its end is no answer.
          if (res.complete)
            resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") });
          else resolve(null);
        });
      });
      req.end(body);
    });
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
