export * from "./stores.ts";
