import type { MachineView } from "@beta9/protocol";

/**
 * What the router and the drains know of a machine. Declared here, in the shape the router and the
 * drains already have, so that machines/ (below both) imports neither.
 */
export interface WorkSources {
  router: { outstanding(machineId: string): number };
  drains: { waitingFor(machineId: string): string | undefined };
}

/** What a machine connected here is doing: answers in flight, and what its drain still waits for. */
export function machineWork(
  ctx: WorkSources,
  id: string,
  status: MachineView["status"] | undefined,
): Pick<MachineView, "in_flight" | "drain_waiting_for"> {
  const waiting = status === "DRAINING" ? ctx.drains.waitingFor(id) : undefined;
  return {
    in_flight: ctx.router.outstanding(id),
    ...(waiting === undefined ? {} : { drain_waiting_for: waiting }),
  };
}
