export * from "./processes.ts";
export * from "./stores.ts";
export * from "./model.ts";
