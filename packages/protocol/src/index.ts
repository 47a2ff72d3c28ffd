export * from "./channel.ts";
export * from "./compat.ts";
export * from "./control.ts";
export * from "./errors.ts";
export * from "./hardware.ts";
export * from "./machine.ts";
export * from "./management.ts";
export * from "./version.ts";
