import { defineConfig } from "vite";

// This file is type-checked with the pages' (DOM) types, without Node's: process is reached this way.
const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};
const gateway = env.BETA9_GATEWAY ?? "http://127.0.0.1:1994";

// Served by the gateway under /ui; JSX compiled by Vite's own transform for Preact (no Babel).
export default defineConfig({
  base: "/ui/",
  // `npm run dev -w @beta9/ui`: pages reload as they are edited, the API is a running gateway's.
  server: {
    proxy: { "/api": gateway, "/v1": gateway },
  },
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // One request fewer on first load: the CSP forbids inline scripts, so nothing is inlined either.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: "es2022",
    rollupOptions: {
      // The wire types' schemas (TypeBox) are built at import but have no other effect: the dashboard
      // keeps only what it uses, which roughly halves the script a first load parses.
      treeshake: {
        moduleSideEffects: (id: string) => !/\/packages\/protocol\/|\/node_modules\/typebox\//.test(id),
        manualPureFunctions: ["Type"],
      },
    },
  },
});
