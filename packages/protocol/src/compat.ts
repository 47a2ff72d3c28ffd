import { type Static, Type } from "typebox";
import { MachineId } from "./machine.ts";

/*
 * The fork's external-worker HTTP protocol, kept so its agents keep working. Extra fields those
 * agents send are accepted and ignored.
 */

export const ForkRegisterRequest = Type.Object({
  /**
   * The fork agent's k3s token (often empty): its credential travels as `Authorization: Bearer`. Read
   * as the credential only when no bearer is sent (the fork's first Python agents).
   */
  token: Type.Optional(Type.String({ maxLength: 4096 })),
  machine_id: MachineId,
  hostname: Type.String({ maxLength: 253 }),
  provider_name: Type.Optional(Type.String({ maxLength: 64 })),
  pool_name: Type.Optional(Type.String({ maxLength: 64 })),
  /** Kubernetes quantities: "8000m" (millicores), "16Gi". */
  cpu: Type.Optional(Type.String({ maxLength: 32 })),
  memory: Type.Optional(Type.String({ maxLength: 32 })),
  gpu_count: Type.Optional(Type.String({ maxLength: 8 })),
  private_ip: Type.Optional(Type.String({ maxLength: 64 })),
});
export type ForkRegisterRequest = Static<typeof ForkRegisterRequest>;

export const ForkInference = Type.Object({
  status: Type.Optional(Type.String({ maxLength: 32 })),
  ip: Type.Optional(Type.String({ maxLength: 64 })),
  port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
  models: Type.Optional(Type.Array(Type.String({ maxLength: 256 }), { maxItems: 256 })),
});

export const ForkKeepaliveRequest = Type.Object({
  machine_id: MachineId,
  provider_name: Type.Optional(Type.String({ maxLength: 64 })),
  pool_name: Type.Optional(Type.String({ maxLength: 64 })),
  agent_version: Type.Optional(Type.String({ maxLength: 64 })),
  metrics: Type.Optional(
    Type.Object({
      cpu_utilization_pct: Type.Optional(Type.Number()),
      memory_utilization_pct: Type.Optional(Type.Number()),
      total_cpu_available: Type.Optional(Type.Number()),
      total_memory_available: Type.Optional(Type.Number()),
      free_gpu_count: Type.Optional(Type.Number()),
    }),
  ),
  inference: Type.Optional(ForkInference),
});
export type ForkKeepaliveRequest = Static<typeof ForkKeepaliveRequest>;

export const ForkMachineState = Type.Object({
  machine_id: Type.String(),
  status: Type.String(),
  pool_name: Type.String(),
  ttl_seconds: Type.Integer(),
  last_keepalive: Type.String(),
  agent_version: Type.String(),
});

export const ForkResponse = Type.Object({
  status: Type.Literal("ok"),
  /** The fork's agent reads `config` from a registration's answer; null: no remote configuration. */
  config: Type.Optional(Type.Null()),
  machine_state: ForkMachineState,
  /** Present on a first registration: the credential to send as `Authorization: Bearer` from now on. */
  token: Type.Optional(Type.String()),
});
export type ForkResponse = Static<typeof ForkResponse>;
