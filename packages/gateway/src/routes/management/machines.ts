import {
  Beta9Error,
  MachineList,
  MachineStatus,
  MachineView,
  parseCountry,
  SetMachine,
} from "@beta9/protocol";
import type { Machine } from "@beta9/store";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import type { Caller } from "../../auth/api-keys.ts";
import type { GatewayContext } from "../../context.ts";
import { machineWork } from "../../machines/work.ts";
import type { Router } from "../../router/router.ts";
import type { Drains } from "../../scheduler/drain.ts";

const IdParams = Type.Object({ id: Type.String({ maxLength: 64 }) });
/** Machines of a list page serialised per turn of the event loop (heartbeats are answered between). */
const LIST_SLICE = 50;

export const machineRoutes: FastifyPluginAsyncTypebox<
  GatewayContext & { router: Router; drains: Drains }
> = async (app, ctx) => {
  // What the registry cannot know: requests in flight from this gateway, and where a drain stands.
  const withWork = (view: MachineView): MachineView =>
    // A machine whose channel a peer holds: its work as that peer published it.
    !ctx.registry.isConnected(view.id) && view.in_flight !== undefined
      ? view
      : { ...view, ...machineWork(ctx, view.id, view.status) };

  /**
   * The pool's machines serve every workspace, but a team sees on them only the models it may call:
   * its own deployments (models started by hand are the operator's). The operator sees all.
   */
  const modelsShownTo = async (caller: Caller): Promise<(view: MachineView) => MachineView> => {
    if (caller.operator) return (view) => view;
    const own = new Set((await ctx.store.deployments.list(caller.workspaceId)).map((d) => d.name));
    return (view) =>
      view.inference
        ? {
            ...view,
            inference: {
              ...view.inference,
              models: view.inference.models.filter((m) => m.deployment === true && own.has(m.name)),
            },
          }
        : view;
  };

  app.get(
    "/api/v1/machines",
    {
      schema: {
        querystring: Type.Object({
          pool: Type.Optional(Type.String({ maxLength: 64 })),
          status: Type.Optional(MachineStatus),
          /** Page size, 1 to 5000 (default 500). */
          limit: Type.Optional(Type.String({ pattern: "^[1-9][0-9]{0,3}$" })),
          /** The `next` cursor of the previous page. */
          after: Type.Optional(Type.String({ maxLength: 64 })),
        }),
        response: { 200: MachineList },
      },
    },
    async (req, reply) => {
      const caller = await ctx.auth.authenticate(req, "read");
      const { limit, ...rest } = req.query;
      const page = ctx.registry.page({ ...rest, ...(limit ? { limit: Number(limit) } : {}) });
      const shown = await modelsShownTo(caller);
      // The page's own schema, a machine at a time: the same bytes as serialising the whole page.
      const serialize = reply.compileSerializationSchema(MachineView as unknown as Record<string, unknown>);
      // Bytes a slice at a time: one string of the whole page (~1 KB a machine) was flattened and
      // encoded in one turn when sent.
      const parts: Buffer[] = [Buffer.from('{"machines":[')];
      let first = true;
      for (let i = 0; i < page.ids.length; i += LIST_SLICE) {
        // A slice of machines per turn of the event loop: heartbeats are answered between them.
        if (i > 0) await new Promise((r) => setImmediate(r));
        let text = "";
        for (const id of page.ids.slice(i, i + LIST_SLICE)) {
          // Made now, not when the page was chosen: a machine removed meanwhile is left out.
          const view = ctx.registry.view(id);
          if (!view) continue;
          text += `${first ? "" : ","}${serialize(shown(withWork(view)))}`;
          first = false;
        }
        parts.push(Buffer.from(text));
      }
      parts.push(Buffer.from(`],"next":${JSON.stringify(page.next)}}`));
      // Already JSON in the schema's shape: fastify sends a body typed as JSON as it is.
      return reply.type("application/json").send(Buffer.concat(parts) as unknown as MachineList);
    },
  );

  app.get(
    "/api/v1/machines/:id",
    { schema: { params: IdParams, response: { 200: MachineView } } },
    async (req) => {
      const caller = await ctx.auth.authenticate(req, "read");
      const view = ctx.registry.view(req.params.id);
      if (!view) throw notFound(req.params.id);
      return (await modelsShownTo(caller))(withWork(view));
    },
  );

  const change = (verb: string, patch: (now: number) => Partial<Machine>) =>
    app.post(
      `/api/v1/machines/:id/${verb}`,
      { schema: { params: IdParams, response: { 200: MachineView } } },
      async (req) => {
        await ctx.auth.operator(req, `${verb} machines`);
        const row = ctx.registry.get(req.params.id);
        if (!row) throw notFound(req.params.id);
        const p = patch(Date.now());
        await ctx.store.machines.update(row.id, p);
        ctx.registry.put({ ...row, ...p });
        ctx.log.info({ machine_id: row.id, action: verb }, `machine ${verb}`);
        // A drain starts now: replacements are placed and an idle machine is emptied without delay.
        if (verb === "drain") await ctx.drains.check();
        return withWork(ctx.registry.view(row.id)!);
      },
    );
  change("cordon", (now) => ({ cordoned_at: now }));
  change("uncordon", () => ({ cordoned_at: null, draining_at: null }));
  // Draining also cordons: nothing new lands on a machine that is being emptied.
  change("drain", (now) => ({ draining_at: now, cordoned_at: now }));

  // Where a machine stands and its site's PUE are the operator's word, never the machine's.
  app.patch(
    "/api/v1/machines/:id",
    { schema: { params: IdParams, body: SetMachine, response: { 200: MachineView } } },
    async (req) => {
      await ctx.auth.operator(req, "set a machine's country or PUE");
      // The store's row: a machine that joined through another replica may not be shown here yet.
      const row = ctx.registry.get(req.params.id) ?? (await ctx.store.machines.get(req.params.id));
      if (!row) throw notFound(req.params.id);
      const p: Partial<Machine> = {};
      if (req.body.country !== undefined)
        p.country = req.body.country === null ? null : parseCountry(req.body.country);
      if (req.body.pue !== undefined) p.pue = checkPue(req.body.pue);
      await ctx.store.machines.update(row.id, p);
      ctx.registry.put({ ...row, ...p });
      ctx.log.info({ machine_id: row.id, ...p }, "machine set");
      return withWork(ctx.registry.view(row.id)!);
    },
  );

  app.delete("/api/v1/machines/:id", { schema: { params: IdParams } }, async (req, reply) => {
    await ctx.auth.operator(req, "remove machines");
    if (!(await ctx.store.machines.remove(req.params.id))) throw notFound(req.params.id);
    ctx.registry.remove(req.params.id);
    ctx.log.info({ machine_id: req.params.id }, "machine removed");
    return reply.status(204).send();
  });
};

function notFound(id: string): Beta9Error {
  return new Beta9Error("not_found", `no machine ${id}; list them with \`b9 machine list\``);
}

/** Power usage effectiveness: 1.0 is a machine whose site spends nothing beyond it; past 3 is a typo. */
const PUE_MAX = 3;

function checkPue(pue: number): number {
  if (!Number.isFinite(pue) || pue < 1 || pue > PUE_MAX)
    throw new Beta9Error(
      "bad_request",
      `a PUE is between 1.0 (a home machine: nothing spent beyond it) and ${PUE_MAX}.0 (a very inefficient site), not ${pue}; e.g. --pue 1.2 for a good data centre`,
    );
  return pue;
}
