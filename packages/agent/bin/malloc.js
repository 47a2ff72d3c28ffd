// glibc's malloc settings for a running agent. They are read once when a process starts, so the bin
// starts the agent again in the same process (same pid, for a service manager) with them set.
//
// An idle agent's heap held ~10 MB of freed memory: compiling its code at start-up takes parser and
// compiler blocks of up to 32 KiB from malloc, and glibc keeps what is freed among longer-lived
// blocks, not giving it back. From 32 KiB up, blocks are mapped on their own and unmapped when freed.
// bench/install/README.md has the figures, and the request path's CPU with and without.
const SETTINGS = { MALLOC_MMAP_THRESHOLD_: "32768" };
const MARK = "B9AGENT_MALLOC_SET";

/** `argv` (what follows the bin) runs the agent: `run`, or no command (run is the default). */
export function runsTheAgent(argv) {
  const first = argv[0];
  return (
    first === undefined ||
    first === "run" ||
    (first.startsWith("-") && !/^-(h|V|-help|-version)$/.test(first))
  );
}

/**
 * Before the agent's code loads: start again with the settings when `b9agent run` was asked and they
 * are not set yet (an operator's own setting of them wins). Once they are in effect, they are taken
 * out of the environment again, so the agent's children (engines, jobs) do not inherit them.
 */
export function withAgentMalloc() {
  if (process.env[MARK] === "1") {
    delete process.env[MARK];
    for (const name of Object.keys(SETTINGS)) delete process.env[name];
    return;
  }
  if (process.platform !== "linux" || typeof process.execve !== "function") return;
  if (!runsTheAgent(process.argv.slice(2))) return;
  if (Object.keys(SETTINGS).some((name) => process.env[name] !== undefined)) return;
  try {
    process.execve(process.execPath, [process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
      ...process.env,
      ...SETTINGS,
      [MARK]: "1",
    });
  } catch {
    // Not allowed here (a sandbox's seccomp filter): run as it is, with glibc's defaults.
  }
}
