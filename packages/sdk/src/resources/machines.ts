import type { MachineList, MachineStatus, MachineView } from "@beta9/protocol";
import { type RequestOptions, segment, type Transport } from "../transport.ts";

export interface MachineListFilter {
  pool?: string | undefined;
  status?: MachineStatus | undefined;
}

/** Machines that joined the gateway, and the operations an owner performs on them. */
export class Machines {
  readonly #http: Transport;
  constructor(http: Transport) {
    this.#http = http;
  }

  async list(filter: MachineListFilter = {}, options?: RequestOptions): Promise<MachineList> {
    return this.#http.get("/api/v1/machines", { pool: filter.pool, status: filter.status }, options);
  }

  async get(id: string, options?: RequestOptions): Promise<MachineView> {
    return this.#http.get(`/api/v1/machines/${segment(id)}`, undefined, options);
  }

  /** No new work is scheduled on the machine; running work goes on. */
  async cordon(id: string, options?: RequestOptions): Promise<MachineView> {
    return this.#http.post(`/api/v1/machines/${segment(id)}/cordon`, undefined, options);
  }

  async uncordon(id: string, options?: RequestOptions): Promise<MachineView> {
    return this.#http.post(`/api/v1/machines/${segment(id)}/uncordon`, undefined, options);
  }

  /** Cordons the machine and lets its running work finish. */
  async drain(id: string, options?: RequestOptions): Promise<MachineView> {
    return this.#http.post(`/api/v1/machines/${segment(id)}/drain`, undefined, options);
  }

  /** Forgets the machine and its credential; it must join again with a new token. */
  async remove(id: string, options?: RequestOptions): Promise<void> {
    await this.#http.delete<undefined>(`/api/v1/machines/${segment(id)}`, options);
  }
}
