import { Agent, getGlobalDispatcher, setGlobalDispatcher } from "undici";

/**
 * Makes the undici pinned in the lockfile the one that serves requests given no dispatcher
 * (undici's `request()`, `fetch()`, Node's global `fetch`). Node 24 carries its own undici (7.x) for
 * its global fetch, and importing `node:http` from an ES module loads it: it then installs its Agent
 * as the global dispatcher under the same versioned key that undici 8 reads, so every such request
 * went through Node's copy, its bugs and its HTTP parser, not ours. Called once at a program's start;
 * a dispatcher someone else installed on purpose (an Agent of ours) is left alone.
 */
export function installPinnedUndici(): void {
  if (!(getGlobalDispatcher() instanceof Agent)) setGlobalDispatcher(new Agent());
}
