import { execFileSync } from "node:child_process";

/** Run `ip ARGS…` (an argument array, never a shell line); throws with ip's own complaint. */
export function ip(args: string[]): string {
  try {
    return execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(" ")} failed: ${(e.stderr ?? "").trim() || e.message}`);
  }
}

/**
 * Why a cluster cannot be built here, or undefined when it can: network namespaces need root and
 * iproute2's `ip netns`.
 */
export function clusterUnsupported(): string | undefined {
  if (process.getuid?.() !== 0)
    return "network-namespace cluster tests need root (ip netns); run them as root";
  try {
    ip(["netns", "list"]);
  } catch (err) {
    return `\`ip netns\` is unavailable (${(err as Error).message}); install iproute2`;
  }
  return undefined;
}
