import type { MachineList, MachineStatus, MachineView, SetMachine } from "@beta9/protocol";
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

  /** One page of machines; pass `after: page.next` for the following one. */
  async page(
    filter: MachineListFilter & { limit?: number | undefined; after?: string | undefined } = {},
    options?: RequestOptions,
  ): Promise<MachineList> {
    return this.#http.get(
      "/api/v1/machines",
      { pool: filter.pool, status: filter.status, limit: filter.limit?.toString(), after: filter.after },
      options,
    );
  }

  /** Every machine matching the filter, following the pages. */
  async list(filter: MachineListFilter = {}, options?: RequestOptions): Promise<MachineList> {
    const machines: MachineView[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.page({ ...filter, after }, options);
      machines.push(...page.machines);
      if (!page.next) return { machines, next: null };
      after = page.next;
    }
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

  /** Set where the machine stands (what placement and residency read) and its site's PUE; the operator only. */
  async set(id: string, body: SetMachine, options?: RequestOptions): Promise<MachineView> {
    return this.#http.patch(`/api/v1/machines/${segment(id)}`, body, options);
  }

  /** Forgets the machine and its credential; it must join again with a new token. */
  async remove(id: string, options?: RequestOptions): Promise<void> {
    await this.#http.delete<undefined>(`/api/v1/machines/${segment(id)}`, options);
  }
}
