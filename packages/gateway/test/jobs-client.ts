import { type GatewayProc, waitFor } from "@beta9/test-utils";

// biome-ignore lint/suspicious/noExplicitAny: tests read many JSON shapes; each assertion checks the one it needs.
type Json = any;

/**
 * The job API as a test calls it with one key: submit, show (with events), a raw GET, and waiting for
 * a job's state. `gw` and `key` are read at each call, so the helpers may be made before beforeAll
 * sets them.
 */
export function jobsClient(gw: () => GatewayProc, key: () => string) {
  const show = async (id: string): Promise<Json> =>
    (await gw().api<Json>("GET", `/api/v1/jobs/${id}`, undefined, key())).body;
  return {
    submit: (body: unknown) => gw().api<Json>("POST", "/api/v1/jobs", body, key()),
    show,
    get: (path: string) => fetch(gw().url + path, { headers: { authorization: `Bearer ${key()}` } }),
    /** Wait until the job is in one of `states` (or `states` holds for it); returns it as it then is. */
    async until(
      id: string,
      states: string[] | ((job: Json) => boolean),
      opts: { timeoutMs?: number; what?: string } = {},
    ): Promise<Json> {
      const holds = typeof states === "function" ? states : (job: Json) => states.includes(job.state);
      let job: Json;
      await waitFor(
        async () => {
          job = await show(id);
          return holds(job);
        },
        {
          timeoutMs: opts.timeoutMs ?? 30_000,
          what: opts.what ?? `job ${id} to be ${Array.isArray(states) ? states.join(" or ") : "as expected"}`,
        },
      );
      return job;
    },
  };
}
