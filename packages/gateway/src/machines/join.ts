import { Beta9Error, type Hardware, type JoinResponse, TOKEN_PREFIX } from "@beta9/protocol";
import type { ConsumeResult, Machine, Store } from "@beta9/store";
import { hashBoundSecret, hashSecret, newSecret, sameHash } from "../auth/secrets.ts";
import type { MachineRegistry } from "./registry.ts";

export interface JoinInput {
  token: string;
  machineId: string;
  name?: string | undefined;
  hostname: string;
  agentVersion: string;
  hardware: Hardware;
  /**
   * ISO 3166-1 alpha-2 code the agent declares of itself: kept as declared only. The machine's country
   * is its join token's (the operator's); a declared one that contradicts it is refused.
   */
  country?: string | undefined;
  /** "channel": a Beta9 agent, gets a new credential. "keepalive": a fork agent, keeps its token. */
  protocol: "channel" | "keepalive";
  /** The machine's current credential: needed to join again under an id the pool already has. */
  credential?: string | undefined;
}

/**
 * Spend a join token and admit a machine, in one transaction: either the token is spent and the
 * machine recorded with its credential, or nothing changed.
 */
export async function joinMachine(
  deps: { store: Store; registry: MachineRegistry },
  input: JoinInput,
  heartbeatIntervalMs: number,
): Promise<JoinResponse & { machine: Machine }> {
  if (deps.registry.isConnected(input.machineId)) {
    throw new Beta9Error(
      "conflict",
      `machine ${input.machineId} is connected right now; pick another machine id (b9agent init --name), or remove the machine first`,
    );
  }
  const credential = input.protocol === "channel" ? newSecret(TOKEN_PREFIX.machine) : input.token;
  const credentialHash =
    input.protocol === "channel" ? hashSecret(credential) : hashBoundSecret(input.token, input.machineId);
  const now = Date.now();
  const machine = await deps.store.transaction(async (tx) => {
    const spent = await tx.tokens.consume(hashSecret(input.token), now);
    if (!spent.ok) throw joinTokenError(spent);
    const bound = spent.token.country;
    // Refused, not recorded: a machine that says it stands elsewhere than the operator put it is
    // misconfigured or lying, and its owner should hear so at init rather than never.
    if (bound !== null && input.country !== undefined && input.country !== bound)
      throw new Beta9Error(
        "country_mismatch",
        `this join token is for machines in ${bound}, and this machine says it is in ${input.country}; ` +
          `run b9agent init with --country ${bound} (or without --country), or ask the operator for a token for ${input.country}`,
      );
    const existing = await tx.machines.get(input.machineId);
    // A join token admits a new machine; it does not hand over one the pool has (offline or not).
    if (existing && !holdsCredential(existing, input)) throw machineIdTaken(existing.id);
    const row: Machine = {
      id: input.machineId,
      name: input.name ?? existing?.name ?? input.machineId,
      pool: spent.token.pool,
      hostname: input.hostname,
      agent_version: input.agentVersion,
      hardware: JSON.stringify(input.hardware),
      credential_hash: credentialHash,
      protocol: input.protocol,
      cordoned_at: existing?.cordoned_at ?? null,
      draining_at: existing?.draining_at ?? null,
      joined_at: existing?.joined_at ?? now,
      last_heartbeat_at: existing?.last_heartbeat_at ?? null,
      join_token_id: spent.token.id,
      // Only the operator sets where a machine is: its token, else what the operator set before.
      country: bound ?? existing?.country ?? null,
      declared_country: input.country ?? existing?.declared_country ?? null,
      pue: existing?.pue ?? 1,
      flags_changed_at: now,
    };
    // A machine joining again (its old credential lost) keeps its id and history; the old credential dies.
    if (existing) await tx.machines.update(row.id, row);
    else await tx.machines.insert(row);
    return row;
  });
  deps.registry.put(machine);
  return {
    machine,
    machine_id: machine.id,
    pool: machine.pool,
    credential,
    heartbeat_interval_seconds: heartbeatIntervalMs / 1000,
  };
}

/** Whether the joiner proved it is the machine already recorded under this id. */
function holdsCredential(existing: Machine, input: JoinInput): boolean {
  const presented = input.protocol === "keepalive" ? input.token : input.credential;
  if (!presented) return false;
  return (
    sameHash(existing.credential_hash, hashSecret(presented)) ||
    sameHash(existing.credential_hash, hashBoundSecret(presented, existing.id))
  );
}

function machineIdTaken(id: string): Beta9Error {
  return new Beta9Error(
    "machine_id_taken",
    `the pool already has a machine with id ${id}; run b9agent init on that machine (it presents its credential), ` +
      `join under a new id, or ask the operator to remove it first (b9 machine remove ${id})`,
  );
}

function joinTokenError(r: Extract<ConsumeResult, { ok: false }>): Beta9Error {
  switch (r.reason) {
    case "invalid":
      return new Beta9Error(
        "join_token_invalid",
        "unknown join token; create one with `b9 token create --pool POOL`",
      );
    case "expired":
      return new Beta9Error(
        "join_token_expired",
        "this join token has expired; create a new one with `b9 token create`",
      );
    case "used_up":
      return new Beta9Error(
        "join_token_used_up",
        "this join token has no uses left; create a new one with `b9 token create --uses N`",
      );
    case "revoked":
      return new Beta9Error("join_token_revoked", "this join token was revoked; ask an admin for a new one");
  }
}
