import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "@beta9/test-utils";
import Fastify, { type FastifyInstance } from "fastify";
import { afterEach, describe, expect, it } from "vitest";
import { DASHBOARD_CSP, dashboardRoutes } from "../src/ui/dashboard.ts";

/** A build as `vite build` leaves it: index.html and content-hashed assets. */
function fakeBuild(): string {
  const dir = tempDir("b9-ui-");
  mkdirSync(join(dir, "assets"));
  writeFileSync(
    join(dir, "index.html"),
    '<!doctype html><script type="module" src="/ui/assets/index-Ab12.js"></script>',
  );
  writeFileSync(join(dir, "assets", "index-Ab12.js"), "console.log('dashboard')");
  writeFileSync(join(dir, "favicon.svg"), "<svg xmlns='http://www.w3.org/2000/svg'/>");
  return dir;
}

let app: FastifyInstance | undefined;
async function serve(dir: string): Promise<FastifyInstance> {
  app = Fastify();
  await app.register(dashboardRoutes, { dir });
  return app;
}
afterEach(async () => {
  await app?.close();
});

describe("the dashboard under /ui", () => {
  it("answers index.html for every page path, under a CSP with no inline script or style and no framing", async () => {
    const ui = await serve(fakeBuild());
    for (const url of ["/ui/", "/ui/machines/m1", "/ui/login?return_to=/ui/keys"]) {
      const res = await ui.inject({ url });
      expect(res.statusCode, url).toBe(200);
      expect(res.headers["content-type"]).toMatch(/^text\/html/);
      expect(res.body).toContain("/ui/assets/index-Ab12.js");
      expect(res.headers["cache-control"]).toBe("no-cache");
      const csp = String(res.headers["content-security-policy"]);
      expect(csp).toBe(DASHBOARD_CSP);
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("style-src 'self'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).not.toMatch(/unsafe-inline|unsafe-eval/);
      expect(res.headers["x-frame-options"]).toBe("DENY");
    }
    expect((await ui.inject({ url: "/ui" })).headers.location).toBe("/ui/");
  });

  it("caches hashed assets for a year, and a missing asset is a 404, never the page", async () => {
    const ui = await serve(fakeBuild());
    const asset = await ui.inject({ url: "/ui/assets/index-Ab12.js" });
    expect(asset.statusCode).toBe(200);
    expect(asset.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    expect(asset.headers["content-type"]).toMatch(/javascript/);
    expect(asset.headers["content-security-policy"]).toBe(DASHBOARD_CSP);
    expect((await ui.inject({ url: "/ui/favicon.svg" })).headers["cache-control"]).toBe("no-cache");
    const missing = await ui.inject({ url: "/ui/assets/index-Old9.js" });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe("not_found");
  });

  it("without a build, every /ui page says to run scripts/setup", async () => {
    const ui = await serve(tempDir("b9-ui-empty-"));
    for (const url of ["/ui/", "/ui/machines"]) {
      const res = await ui.inject({ url });
      expect(res.statusCode).toBe(503);
      expect(res.headers["content-type"]).toMatch(/^text\/html/);
      expect(res.body).toContain("The dashboard is not built");
      expect(res.body).toContain("scripts/setup");
      expect(res.headers["content-security-policy"]).toBe(DASHBOARD_CSP);
    }
  });
});
