#!/usr/bin/env node
import module from "node:module";
import os from "node:os";
import path from "node:path";
import { agentEntry } from "./clone-bundle.js";
import { runsTheAgent, withAgentMalloc } from "./malloc.js";

withAgentMalloc();

// Compiled code, TypeScript stripped of its types included, is kept on disk: the agent and the engine
// processes it starts (a cold start waits for one) skip that work from the second start on. In the
// user's own cache, not a shared temp dir. NODE_COMPILE_CACHE, if set, decides instead.
module.enableCompileCache?.(
  process.env.NODE_COMPILE_CACHE || path.join(os.homedir(), ".cache", "beta9", "node-compile-cache"),
);
// The agent as bundled from the sources (clone-bundle.js), as the installed package runs it.
await import(agentEntry(runsTheAgent(process.argv.slice(2))));
