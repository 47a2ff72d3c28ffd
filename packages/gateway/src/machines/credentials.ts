import type { Logger } from "@beta9/http";
import { Beta9Error, TOKEN_PREFIX } from "@beta9/protocol";
import type { Machine, Store } from "@beta9/store";
import { hashBoundSecret, hashSecret, sameHash } from "../auth/secrets.ts";
import type { MachineRegistry } from "./registry.ts";

/**
 * Checks that a credential belongs to the machine id it is presented for. A credential that is real
 * but bound to another machine is a 403 and a security event: someone is replaying a secret.
 */
export async function verifyMachineCredential(
  deps: { store: Store; registry: MachineRegistry; log: Logger },
  machineId: string,
  credential: string | undefined,
  remote: string | undefined,
): Promise<Machine> {
  if (!credential) {
    throw new Beta9Error(
      "credential_invalid",
      "missing machine credential: send `Authorization: Bearer <machine token>`",
    );
  }
  const machine = deps.registry.get(machineId) ?? (await deps.store.machines.get(machineId));
  const hash = hashSecret(credential);
  if (
    machine &&
    (sameHash(machine.credential_hash, hash) ||
      sameHash(machine.credential_hash, hashBoundSecret(credential, machineId)))
  ) {
    return machine;
  }
  const owner = await deps.store.machines.byCredentialHash(hash);
  const joinToken = owner ? undefined : await deps.store.tokens.byHash(hash);
  // A join token where a channel machine's credential goes is a mix-up of the two secrets (the fork
  // called both "token"), not a replayed secret: say which it is, and raise no security event.
  if (
    !owner &&
    (joinToken || credential.startsWith(TOKEN_PREFIX.join)) &&
    machine &&
    machine.protocol !== "keepalive"
  ) {
    throw new Beta9Error(
      "credential_invalid",
      `this is a join token (${TOKEN_PREFIX.join}…), not machine ${machineId}'s credential (${TOKEN_PREFIX.machine}…): run b9agent init --token <join token> to trade it for one`,
    );
  }
  // A fork (keepalive) machine's credential is its join token, so another one presented for it is a replay.
  if (owner || joinToken) {
    deps.log.warn(
      {
        event: "security",
        kind: "credential_machine_mismatch",
        machine_id: machineId,
        credential_owner: owner?.id,
        remote,
      },
      "a machine credential was presented for another machine id; refused",
    );
    throw new Beta9Error(
      "credential_machine_mismatch",
      `this credential is bound to another machine, not ${machineId}; each machine must use its own (run b9agent init on it)`,
    );
  }
  if (!machine) {
    throw new Beta9Error(
      "machine_unknown",
      `the gateway does not know machine ${machineId} (it was removed, or joined another gateway); join again with a new join token`,
    );
  }
  throw new Beta9Error(
    "credential_invalid",
    `wrong credential for machine ${machineId}; join again with a new join token`,
  );
}
