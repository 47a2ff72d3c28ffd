/**
 * The dashboard's first load on loopback: a fresh browser profile (nothing cached) opens /ui/ with a
 * session cookie, and the time is read in the page from navigation start until the overview shows
 * its live figures (machines, requests and tokens of the last minute: three API calls answered and
 * rendered). A second load in the same profile (assets cached) is measured beside it. Real
 * b9gateway, Debian's chromium through playwright-core. See README.md beside this file.
 *
 *   npx node bench/ui/first-load.ts [--runs 20]
 */
import { parseArgs } from "node:util";
import { startGateway } from "@beta9/test-utils";
// biome-ignore lint/style/noRestrictedImports: the browser helpers stay out of test-utils index (playwright would load in every test)
import { launchBrowser, newContext } from "@beta9/test-utils/browser";
import type { BrowserContext } from "playwright-core";
import { machineLine, median, ms, out, percentile, table } from "../common/stats.ts";

const { values } = parseArgs({ options: { runs: { type: "string", default: "20" } } });
const runs = Number(values.runs);

const gw = await startGateway();
const browser = await launchBrowser();
try {
  const signIn = await fetch(`${gw.url}/api/v1/auth/session`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ api_key: gw.adminKey }),
  });
  const cookie = /b9_session=([^;]+)/.exec(signIn.headers.get("set-cookie") ?? "")?.[1];
  if (!cookie) throw new Error(`signing in answered ${signIn.status}: ${await signIn.text()}`);

  /** Milliseconds from navigation start to the overview's figures, and the bytes the page fetched. */
  const load = async (ctx: BrowserContext) => {
    const page = await ctx.newPage();
    await page.goto(`${gw.url}/ui/`);
    // The overview marks the moment its figures are rendered (packages/ui/src/pages/overview.tsx).
    const mark = "b9:overview-shown";
    await page.waitForFunction((name) => performance.getEntriesByName(name).length > 0, mark);
    const t = await page.evaluate((name) => {
      const entries = performance.getEntriesByType("resource") as unknown as {
        name: string;
        transferSize: number;
        startTime: number;
        responseEnd: number;
      }[];
      return {
        shown: performance.getEntriesByName(name)[0]!.startTime,
        bytes: entries.reduce((n, e) => n + e.transferSize, 0),
        steps: entries.map(
          (e) => `${new URL(e.name).pathname} ${e.startTime.toFixed(0)}-${e.responseEnd.toFixed(0)}`,
        ),
      };
    }, mark);
    await page.close();
    return t;
  };

  const first: number[] = [];
  const cached: number[] = [];
  let bytes = 0;
  for (let i = 0; i < runs + 2; i++) {
    const ctx = await newContext(browser);
    await ctx.addCookies([{ name: "b9_session", value: cookie, url: gw.url }]);
    // A browser that signed in before keeps this hint (packages/ui/src/api.ts): the page then asks
    // for its data while the session is checked.
    await ctx.addInitScript(() => localStorage.setItem("b9:signed-in", "1"));
    const cold = await load(ctx);
    const warm = await load(ctx);
    await ctx.close();
    // The first two warm up the gateway's and the browser's own caches of code.
    if (i < 2) continue;
    first.push(cold.shown);
    cached.push(warm.shown);
    bytes = cold.bytes;
    if (process.env.BENCH_STEPS) out(`${cold.shown.toFixed(0)} ms: ${cold.steps.join(", ")}\n`);
  }
  out(`${machineLine()}\n${runs} runs; overview shown, ms from navigation start\n\n`);
  out(
    table(
      ["load", "median", "p95", "max"],
      [
        ["first (nothing cached)", ms(median(first)), ms(percentile(first, 95)), ms(Math.max(...first))],
        ["again (assets cached)", ms(median(cached)), ms(percentile(cached, 95)), ms(Math.max(...cached))],
      ],
    ),
  );
  out(`\nbytes over the wire on a first load: ${bytes}\n`);
} finally {
  await browser.close();
  await gw.proc.stop();
}
