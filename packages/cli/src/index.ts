export { configPath, type ResolvedConfig, resolveConfig, type StoredConfig, writeConfig } from "./config.ts";
export { parseDuration } from "./duration.ts";
export { type CliIO, processIO } from "./io.ts";
export { buildProgram, run } from "./program.ts";
export { UserError } from "./user-error.ts";
