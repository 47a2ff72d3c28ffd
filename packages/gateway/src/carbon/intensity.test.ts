import { readdirSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import { type FileServer, startPythonFileServer } from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { footprintOf, readEnergy } from "./footprint.ts";
import { GridIntensity } from "./intensity.ts";

const testdata = join(import.meta.dirname, "testdata");

describe("grid intensity: the shipped table (Ember's yearly data)", () => {
  it("gives a country's yearly figure, its source and year, at medium confidence", async () => {
    const grid = new GridIntensity();
    expect(await grid.of("FR")).toEqual({
      zone: "FR",
      gPerKwh: 56,
      source: "ember:2023",
      year: 2023,
      confidence: "medium",
    });
    expect((await grid.of("pl"))?.gPerKwh).toBe(661.9);
  });

  it("knows nothing of a machine without a country, or of a code not in the table", async () => {
    const grid = new GridIntensity();
    expect(await grid.of(null)).toBeUndefined();
    expect(await grid.of("XX")).toBeUndefined();
  });
});

describe("grid intensity: a live source served by python3 -m http.server", () => {
  let server: FileServer;
  beforeAll(async () => {
    server = await startPythonFileServer(
      readdirSync(testdata)
        .filter((f) => f.endsWith(".json"))
        .map((f) => join(testdata, f)),
    );
  });
  afterAll(() => server?.stop());

  it("reads Electricity Maps' and Energy-Charts' shapes as high-confidence live figures", async () => {
    // A loaded test machine may answer slowly: the first figure is awaited here as long as it takes.
    const grid = new GridIntensity({ url: `http://127.0.0.1:${server.port}/{zone}.json`, waitMs: 30_000 });
    expect(await grid.of("FR")).toMatchObject({ gPerKwh: 33, confidence: "high", year: null });
    expect((await grid.of("FR"))?.source).toBe(`live:127.0.0.1:${server.port}`);
    // Energy-Charts' last figure is null (not yet known): the latest known one is used.
    expect(await grid.of("DE")).toMatchObject({ gPerKwh: 398.7, confidence: "high" });
  });

  it("a source answering garbage (an HTML error page) or 404 gives the table's figure, labelled low", async () => {
    const warnings: unknown[] = [];
    const grid = new GridIntensity(
      { url: `http://127.0.0.1:${server.port}/{zone}.json?token=secret`, waitMs: 30_000 },
      { warn: (o: unknown) => warnings.push(o) },
    );
    expect(await grid.of("PL")).toEqual({
      zone: "PL",
      gPerKwh: 661.9,
      source: "ember:2023",
      year: 2023,
      confidence: "low",
    });
    expect(await grid.of("IT")).toMatchObject({ source: "ember:2023", confidence: "low" });
    expect(warnings).toHaveLength(2);
    expect(JSON.stringify(warnings)).not.toContain("secret");
  });
});

it("a live source that is down gives the table's figure, labelled low", async () => {
  // A port nobody listens on: taken, then released.
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const grid = new GridIntensity({ url: `http://127.0.0.1:${port}/{zone}`, waitMs: 30_000 });
  expect(await grid.of("DE")).toMatchObject({ gPerKwh: 380.9, source: "ember:2023", confidence: "low" });
});

it("a live source that hangs does not hold an answer: after waitMs, the table's figure, labelled low", async () => {
  // A server that takes connections and never answers; the source's own timeout is far away, so the
  // answer can only come from waitMs (else this test runs out of time).
  const sockets: Socket[] = [];
  const silent = createServer((s) => sockets.push(s)).listen(0, "127.0.0.1");
  await new Promise((r) => silent.once("listening", r));
  const port = (silent.address() as { port: number }).port;
  try {
    const grid = new GridIntensity({
      url: `http://127.0.0.1:${port}/{zone}`,
      waitMs: 100,
      timeoutMs: 3_600_000,
    });
    expect(await grid.of("PL")).toMatchObject({ gPerKwh: 661.9, confidence: "low" });
  } finally {
    for (const s of sockets) s.destroy();
    silent.close();
  }
});

describe("footprint", () => {
  it("is Wh × PUE × intensity / 1000, location-based", () => {
    const f = footprintOf(
      { wh: 2, method: "util_tdp", confidence: "low", sources: [] },
      { country: "PL", pue: 1.5 },
      { zone: "PL", gPerKwh: 661.9, source: "ember:2023", year: 2023, confidence: "medium" },
    );
    expect(f.co2e_g).toBeCloseTo((2 * 1.5 * 661.9) / 1000, 9);
    expect(f).toMatchObject({
      pue: 1.5,
      grid_zone: "PL",
      energy_method: "util_tdp",
      carbon_basis: "location",
    });
  });

  it("has no gCO2e (null, not zero) without a grid figure, and a PUE that is absurd counts as 1", () => {
    const f = footprintOf(
      { wh: 1, method: "counter", confidence: "high", sources: [] },
      { country: null, pue: 0.2 },
      undefined,
    );
    expect(f.co2e_g).toBeNull();
    expect(f.pue).toBe(1);
  });

  it("refuses a trailer that is not an EnergyReading", () => {
    expect(readEnergy('{"wh":-1,"method":"counter","confidence":"high","sources":[]}')).toBeUndefined();
    expect(readEnergy('{"wh":1,"method":"guess","confidence":"high","sources":[]}')).toBeUndefined();
    expect(readEnergy("not json")).toBeUndefined();
    expect(
      readEnergy('{"wh":0.5,"method":"counter","confidence":"high","sources":["rapl:package-0"]}'),
    ).toEqual({
      wh: 0.5,
      method: "counter",
      confidence: "high",
      sources: ["rapl:package-0"],
    });
  });
});
