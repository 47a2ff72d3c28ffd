import http2 from "node:http2";
import { Beta9Error, type ErrorBody, type ErrorCode, ErrorCodes } from "@beta9/protocol";
import type { AgentLink } from "../machines/registry.ts";

/**
 * A JSON call to an agent's control API over its channel (the gateway is trusted there): used to
 * pull, start and stop models. Agent errors come back as Beta9Errors with the agent's own code.
 */
export async function callAgent<T>(
  link: AgentLink,
  init: { method: "GET" | "POST" | "DELETE"; path: string; body?: unknown; timeoutMs: number },
): Promise<T> {
  if (!link.request)
    throw new Beta9Error("unavailable", "the machine is not connected over the agent channel");
  const stream = link.request({
    method: init.method,
    path: init.path,
    headers: init.body === undefined ? {} : { "content-type": "application/json" },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  return new Promise<T>((resolve, reject) => {
    let status = 0;
    let text = "";
    const timer = setTimeout(() => {
      stream.close(http2.constants.NGHTTP2_CANCEL);
      reject(
        new Beta9Error(
          "engine_timeout",
          `the machine did not answer ${init.path} within ${Math.round(init.timeoutMs / 1000)} s`,
        ),
      );
    }, init.timeoutMs);
    stream.setEncoding("utf8");
    stream.on("response", (h) => {
      status = Number(h[":status"] ?? 0);
    });
    stream.on("data", (c: string) => {
      if (text.length < 4 * 1024 * 1024) text += c;
    });
    stream.on("error", (err) => {
      clearTimeout(timer);
      reject(new Beta9Error("unavailable", `the machine's channel failed: ${err.message}`));
    });
    stream.on("close", () => {
      clearTimeout(timer);
      if (status >= 200 && status < 300) return resolve(parseJson(text) as T);
      reject(agentError(status, text, init.path));
    });
  });
}

/** An agent's error answer as a Beta9Error with the agent's own code (when it is one of ours). */
export function agentError(status: number, text: string, path: string): Beta9Error {
  const err = (parseJson(text) as Partial<ErrorBody> | undefined)?.error;
  const code = err?.code && isKnownCode(err.code) ? err.code : "unavailable";
  return new Beta9Error(code, err?.message ?? `the machine answered ${status || "nothing"} to ${path}`);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isKnownCode(code: string): code is ErrorCode {
  return (ErrorCodes as readonly string[]).includes(code);
}
