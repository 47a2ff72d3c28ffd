import { createHash } from "node:crypto";
import { LineSplitter } from "@beta9/http";
import { Beta9Error, type JobAssignment, JobRunEvent, MAX_JOB_LOG_LINE_BYTES } from "@beta9/protocol";
import { Compile } from "typebox/compile";
import type { AgentLink } from "../machines/registry.ts";
import { type AgentResponse, requestAgent } from "../router/request.ts";
import { agentError, callAgent } from "../scheduler/agent-call.ts";

/*
 * The gateway's calls to an agent's job endpoints over its channel (protocol/src/jobs.ts lists them).
 */

/** The agent answers a run's start or re-attach at once; the run then takes as long as it takes. */
const HEADERS_TIMEOUT_MS = 60_000;
const CALL_TIMEOUT_MS = 30_000;
const MAX_ERROR_BYTES = 64 * 1024;
const checkEvent = Compile(JobRunEvent);

/** An agent's answer to a start or re-attach: its event stream, or why it did not give one. */
export type RunStream =
  | { ok: true; response: AgentResponse }
  /** `status` 0: the agent could not be reached; otherwise its error status. */
  | { ok: false; status: number; error: Beta9Error };

async function open(
  machineId: string,
  link: AgentLink,
  init: { method: "GET" | "POST"; path: string; body?: string },
): Promise<RunStream> {
  const attempt = await requestAgent(machineId, link, {
    method: init.method,
    path: init.path,
    body: init.body ?? "",
    headers: { accept: "application/x-ndjson", ...(init.body ? { "content-type": "application/json" } : {}) },
    headersTimeoutMs: HEADERS_TIMEOUT_MS,
  });
  if (!attempt.started)
    return { ok: false, status: 0, error: new Beta9Error("unavailable", attempt.error.message) };
  const res = attempt.response;
  if (res.status === 200) return { ok: true, response: res };
  let text = "";
  try {
    for await (const chunk of res.body) {
      text += chunk.toString("utf8");
      if (text.length > MAX_ERROR_BYTES) break;
    }
  } catch {
    // An error answer cut short: what came is enough to say why.
  }
  res.cancel();
  return { ok: false, status: res.status, error: agentError(res.status, text, init.path) };
}

export const startRun = (machineId: string, link: AgentLink, assignment: JobAssignment) =>
  open(machineId, link, { method: "POST", path: "/jobs", body: JSON.stringify(assignment) });

export const reattachRun = (machineId: string, link: AgentLink, jobId: string, after: number) =>
  open(machineId, link, { method: "GET", path: `/jobs/${jobId}/events?after=${after}` });

/**
 * A run's events as the agent sends them. Throws when the stream is cut off before its end (the
 * channel dropped) or a line is not an event; ends when the agent ends it.
 */
export async function* runEvents(res: AgentResponse): AsyncGenerator<JobRunEvent[]> {
  // A log line is at most MAX_JOB_LOG_LINE_BYTES, escaped into JSON (up to 6 bytes a byte).
  const lines = new LineSplitter(MAX_JOB_LOG_LINE_BYTES * 6 + 4096);
  for await (const chunk of res.body) {
    const batch: JobRunEvent[] = [];
    for (const line of lines.push(chunk)) {
      const event: unknown = JSON.parse(line);
      if (!checkEvent.Check(event))
        throw new Error(`the agent sent a line that is not a job event: ${line.slice(0, 200)}`);
      batch.push(event);
    }
    if (batch.length > 0) yield batch;
  }
}

export async function cancelRun(link: AgentLink, jobId: string): Promise<void> {
  await callAgent(link, { method: "POST", path: `/jobs/${jobId}/cancel`, timeoutMs: CALL_TIMEOUT_MS });
}

/** The agent may forget the run: the gateway has kept everything. */
export async function forgetRun(link: AgentLink, jobId: string): Promise<void> {
  await callAgent(link, { method: "DELETE", path: `/jobs/${jobId}`, timeoutMs: CALL_TIMEOUT_MS });
}

/**
 * One output's bytes, checked against the sha256 the agent announced; at most `maxBytes` (more is
 * refused without being held).
 */
export async function fetchOutput(
  machineId: string,
  link: AgentLink,
  jobId: string,
  name: string,
  expect: { sha256: string; size: number },
  maxBytes: number,
): Promise<Buffer> {
  if (expect.size > maxBytes)
    throw new Beta9Error(
      "payload_too_large",
      `output ${name} is ${expect.size} bytes; the gateway keeps at most ${maxBytes}`,
    );
  const path = `/jobs/${jobId}/outputs/${name.split("/").map(encodeURIComponent).join("/")}`;
  const attempt = await requestAgent(machineId, link, {
    method: "GET",
    path,
    body: "",
    headers: {},
    headersTimeoutMs: CALL_TIMEOUT_MS,
  });
  if (!attempt.started) throw new Beta9Error("unavailable", attempt.error.message);
  const res = attempt.response;
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res.body) {
      size += chunk.length;
      if (size > maxBytes)
        throw new Beta9Error("payload_too_large", `output ${name} is over ${maxBytes} bytes`);
      chunks.push(chunk);
    }
  } finally {
    res.cancel();
  }
  const data = Buffer.concat(chunks);
  if (res.status !== 200) throw agentError(res.status, data.toString("utf8"), path);
  const sha256 = createHash("sha256").update(data).digest("hex");
  if (sha256 !== expect.sha256)
    throw new Beta9Error(
      "checksum_mismatch",
      `output ${name} came with sha256 ${sha256}, not the ${expect.sha256} announced`,
    );
  return data;
}
