import { JoinRequest, JoinResponse, parseCountry } from "@beta9/protocol";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { recordJoin } from "../../auth/security-events.ts";
import type { GatewayContext } from "../../context.ts";
import { checkAgentProtocol } from "../../machines/agent-protocol.ts";
import { joinMachine } from "../../machines/join.ts";

/** A Beta9 agent trades its join token for a machine credential bound to its machine id. */
export const joinRoutes: FastifyPluginAsyncTypebox<GatewayContext> = async (app, ctx) => {
  app.post(
    "/api/v1/machines/join",
    { schema: { body: JoinRequest, response: { 201: JoinResponse } } },
    async (req, reply) => {
      checkAgentProtocol(req.body.protocol, req.body.agent_version);
      const res = await joinMachine(
        ctx,
        {
          token: req.body.token,
          machineId: req.body.machine_id,
          name: req.body.name,
          hostname: req.body.hostname,
          agentVersion: req.body.agent_version,
          hardware: req.body.hardware,
          country: req.body.country === undefined ? undefined : parseCountry(req.body.country),
          protocol: "channel",
          credential: req.body.credential,
        },
        ctx.registry.cfg.heartbeatIntervalMs,
      );
      await recordJoin(ctx.audit, {
        requestId: req.id,
        machineId: res.machine_id,
        pool: res.pool,
        country: res.machine.country,
        ip: req.ip,
        protocol: "channel",
      });
      req.log.info(
        {
          machine_id: res.machine_id,
          pool: res.pool,
          country: res.machine.country,
          declared_country: res.machine.declared_country,
          remote: req.ip,
        },
        "machine joined",
      );
      const { machine: _machine, ...body } = res;
      return reply.status(201).send(body);
    },
  );
};
