import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { promisify } from "node:util";
import { UserError } from "../../user-error.ts";

const run = promisify(execFile);
/** Debian's package installs `chromium`; other systems name it otherwise. */
const NAMES = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"];
const TIMEOUT_MS = 120_000;

/** The headless Chromium to print with: BETA9_CHROMIUM, else the first of NAMES on PATH. */
export function findChromium(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.BETA9_CHROMIUM) return env.BETA9_CHROMIUM;
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    for (const name of NAMES) if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/** Render self-contained HTML with headless Chromium: a PDF, or a PNG screenshot of the first page. */
export async function printHtml(page: string, out: string, as: "pdf" | "png"): Promise<void> {
  const chromium = findChromium();
  if (!chromium)
    throw new UserError(
      "a PDF needs headless Chromium, which is not installed here",
      "install it (Debian: apt-get install chromium) or set BETA9_CHROMIUM to its path; or use --format html and print that",
    );
  const dir = await mkdtemp(join(tmpdir(), "b9-report-"));
  try {
    const file = join(dir, "report.html");
    await writeFile(file, page);
    // Nothing in the page is fetched (it is self-contained); the profile is thrown away with the folder.
    const args = [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      `--user-data-dir=${join(dir, "profile")}`,
      ...(as === "pdf"
        ? ["--no-pdf-header-footer", `--print-to-pdf=${out}`]
        : ["--hide-scrollbars", "--window-size=1200,2600", `--screenshot=${out}`]),
      `file://${file}`,
    ];
    try {
      await run(chromium, args, { timeout: TIMEOUT_MS });
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new UserError(
        `Chromium (${chromium}) could not print the report: ${(e.stderr ?? e.message).trim().split("\n").slice(-3).join(" ")}`,
        "use --format html and print that from a browser",
      );
    }
    if (!existsSync(out))
      throw new UserError(`Chromium (${chromium}) wrote no ${as.toUpperCase()} at ${out}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
