import { defineConfig } from "vite";

// Served by the gateway under /ui; JSX compiled by Vite's own transform for Preact (no Babel).
export default defineConfig({
  base: "/ui/",
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
