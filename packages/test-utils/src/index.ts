export * from "./processes.ts";
export * from "./stores.ts";
