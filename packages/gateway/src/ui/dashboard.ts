import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import fastifyStatic from "@fastify/static";
import type { FastifyPluginAsync, FastifyReply } from "fastify";

/** Where `vite build` puts the dashboard (scripts/setup runs it); BETA9_UI_DIR overrides. */
export function dashboardDir(): string {
  return resolve(process.env.BETA9_UI_DIR ?? join(import.meta.dirname, "../../../ui/dist"));
}

/**
 * Only the dashboard's own files run: no inline script or style, no eval, no other origin, and no
 * page may frame it (clickjacking). The API it calls is the same origin.
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

/** Vite names every file under assets/ by its content's hash: a new build is a new name. */
const HASHED = "public, max-age=31536000, immutable";

const NOT_BUILT = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Beta9 dashboard not built</title></head>
<body><main><h1>The dashboard is not built</h1>
<p>This gateway found no build of its web dashboard. Run <code>scripts/setup</code> in the Beta9
checkout (it builds <code>packages/ui</code> into <code>packages/ui/dist</code>), then restart
<code>b9gateway</code>. The API, the CLI and the SDKs work without it.</p></main></body></html>
`;

function secure(reply: FastifyReply): void {
  reply.header("content-security-policy", DASHBOARD_CSP);
  reply.header("x-content-type-options", "nosniff");
  reply.header("x-frame-options", "DENY");
  reply.header("referrer-policy", "same-origin");
}

/**
 * The web dashboard under /ui: its built files, and index.html for every other /ui/ path (the pages
 * route on the client). It calls only the public API, with the session cookie.
 */
export const dashboardRoutes: FastifyPluginAsync<{ dir?: string | undefined }> = async (app, opts) => {
  const dir = opts.dir ?? dashboardDir();
  app.addHook("onRequest", async (_req, reply) => secure(reply));
  app.get("/ui", async (_req, reply) => reply.redirect("/ui/", 308));

  if (!existsSync(join(dir, "index.html"))) {
    app.log.warn({ dir }, "the dashboard is not built (run scripts/setup): /ui explains how");
    const notBuilt = async (_req: unknown, reply: FastifyReply) =>
      reply.status(503).header("cache-control", "no-store").type("text/html; charset=utf-8").send(NOT_BUILT);
    app.get("/ui/", notBuilt);
    app.get("/ui/*", notBuilt);
    return;
  }

  await app.register(fastifyStatic, {
    root: dir,
    prefix: "/ui/",
    // One route per built file, listed at start: any other path is a page of the client's router.
    wildcard: false,
    index: false,
    cacheControl: false,
    setHeaders: (reply, path) => {
      reply.header("cache-control", path.startsWith(join(dir, "assets")) ? HASHED : "no-cache");
    },
  });
  const page = async (_req: unknown, reply: FastifyReply) =>
    reply.header("cache-control", "no-cache").sendFile("index.html");
  app.get("/ui/", page);
  app.get("/ui/*", page);
  // A missing asset is an error, not the page: a browser must not run HTML as a script.
  app.get("/ui/assets/*", async (req, reply) =>
    reply.status(404).send({
      error: {
        code: "not_found",
        message: `no file ${req.url.split("?")[0]} in this build of the dashboard; reload the page`,
      },
    }),
  );
};
