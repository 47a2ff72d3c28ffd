export * from "./cluster/index.ts";
export * from "./file-server.ts";
export * from "./load.ts";
export * from "./model.ts";
export * from "./processes.ts";
export * from "./runners.ts";
export * from "./stores.ts";
export * from "./tls.ts";
