import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";

/** Debian's chromium (Playwright's own browser download cannot run here); BETA9_CHROMIUM overrides. */
export const CHROMIUM = process.env.BETA9_CHROMIUM ?? "/usr/bin/chromium";

/**
 * A real headless Chromium driven by playwright-core, for tests of pages a person uses (the
 * dashboard, an identity provider's login and consent pages). Close it in afterAll.
 */
export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    // Tests run as root in a VM: Chromium's sandbox needs user namespaces it refuses to root.
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
}

/** A fresh browser profile (cookies, storage) at a laptop's size, or a phone's with `phone`. */
export async function newContext(browser: Browser, opts: { phone?: boolean } = {}): Promise<BrowserContext> {
  return browser.newContext(
    opts.phone
      ? { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true }
      : { viewport: { width: 1280, height: 800 } },
  );
}

/**
 * Folder where test runs keep screenshots for a person to look at: BETA9_SCREENSHOTS, or
 * `screenshots/` at the repository root (ignored by git).
 */
export function screenshotDir(): string {
  const dir = process.env.BETA9_SCREENSHOTS ?? join(import.meta.dirname, "../../../screenshots");
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Save a full-page screenshot named `name`.png in screenshotDir(); returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  const path = join(screenshotDir(), `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
