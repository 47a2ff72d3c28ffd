/** What an engine answered; null from the helpers below means no connection at all (not up yet, or gone). */
export interface HttpAnswer {
  status: number;
  text: string;
}

function withTimeout(signal: AbortSignal | undefined, timeoutMs: number): AbortSignal {
  const timeout = AbortSignal.timeout(timeoutMs);
  return signal === undefined ? timeout : AbortSignal.any([signal, timeout]);
}

export async function httpRequest(
  url: string,
  init: { method?: string; body?: unknown; signal?: AbortSignal | undefined; timeoutMs?: number } = {},
): Promise<HttpAnswer | null> {
  try {
    const response = await fetch(url, {
      method: init.method ?? (init.body === undefined ? "GET" : "POST"),
      headers: init.body === undefined ? {} : { "content-type": "application/json" },
      body: init.body === undefined ? null : JSON.stringify(init.body),
      signal: withTimeout(init.signal, init.timeoutMs ?? 5_000),
    });
    return { status: response.status, text: await response.text() };
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
