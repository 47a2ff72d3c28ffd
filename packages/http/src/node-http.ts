/**
 * `node:http` as its CommonJS exports. An ESM `import … from "node:http"` builds the module's ESM
 * facade, which reads every export, its lazy `WebSocket`, `MessageEvent` and `CloseEvent` among them:
 * that loads Node's own bundled fetch (undici, ~2 MB of heap and its code) into every process that
 * imports `node:http`, used or not. Types come from `import type { … } from "node:http"`, which loads
 * nothing.
 */
export const nodeHttp = process.getBuiltinModule("node:http");
