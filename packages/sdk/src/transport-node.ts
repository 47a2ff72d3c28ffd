import { readFileSync } from "node:fs";
import { Agent, fetch as undiciFetch } from "undici";
import type { Fetch } from "./transport.ts";

/**
 * The gateway may hold a request for minutes while its model loads from zero (`--cold-start-timeout`,
 * 5 min by default), longer than fetch's own 300 s wait for headers: the SDK's timeouts decide instead.
 */
let patientAgent: Agent | undefined;
function patientFetch(agent: () => Agent): Fetch {
  return (input, init) =>
    undiciFetch(input as Parameters<typeof undiciFetch>[0], {
      ...(init as Parameters<typeof undiciFetch>[1]),
      dispatcher: agent(),
    }) as unknown as Promise<Response>;
}
const sharedPatientFetch = patientFetch(() => {
  patientAgent ??= new Agent({ headersTimeout: 0, bodyTimeout: 0 });
  return patientAgent;
});

/** A patient fetch that also trusts the CA in `caFile` (read once, here: a wrong path fails at once). */
function fetchTrusting(caFile: string): Fetch {
  let ca: Buffer;
  try {
    ca = readFileSync(caFile);
  } catch (error) {
    throw new TypeError(`cannot read the CA file ${caFile}: ${(error as Error).message}`);
  }
  const agent = new Agent({ headersTimeout: 0, bodyTimeout: 0, connect: { ca } });
  return patientFetch(() => agent);
}

/** The SDK's fetch in Node: patient (undici), trusting `caFile`'s CA besides the system's when given. */
export function nodeFetch(caFile?: string): Fetch {
  return caFile ? fetchTrusting(caFile) : sharedPatientFetch;
}
