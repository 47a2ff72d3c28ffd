import {
  ApiError,
  AuthenticationError,
  ConnectionError,
  ConnectionLostError,
  ConnectionTimeoutError,
  NotFoundError,
  PermissionDeniedError,
  RateLimitError,
  StreamError,
  UntrustedCertificateError,
} from "@beta9/sdk";
import { type ResolvedConfig, resolveConfig } from "./config.ts";
import type { CliIO } from "./io.ts";
import { Interrupted, LOGIN_HINT, UserError } from "./user-error.ts";

const LISTABLE = new Set(["machine", "token", "key", "pool", "model", "job"]);

/** Commands that call models, and so need the inference scope rather than admin or read. */
const INFERENCE = new Set(["chat", "model pull"]);

/** Exit status after Ctrl+C (128 + SIGINT), as shells report it. */
const INTERRUPTED = 130;

/** Prints an error the way a person can act on it and returns the exit status. */
export function reportError(error: unknown, io: CliIO, command: string[]): number {
  if (error instanceof Interrupted) return INTERRUPTED;
  const { message, hint } = explain(error, io, command);
  io.stderr(`error: ${message}\n`);
  if (hint) io.stderr(`${hint}\n`);
  if (io.env.BETA9_DEBUG && error instanceof Error && error.stack) io.stderr(`${error.stack}\n`);
  return 1;
}

function explain(
  error: unknown,
  io: CliIO,
  command: string[],
): { message: string; hint?: string | undefined } {
  if (error instanceof UserError) return { message: error.message, hint: error.hint };

  if (error instanceof ConnectionLostError) {
    return {
      message: `the connection to the gateway at ${error.baseUrl} closed before the answer ended (${error.reason})`,
      hint: "try again; if it keeps happening, the gateway's log says why",
    };
  }
  if (error instanceof ConnectionTimeoutError) {
    return {
      message: `the gateway at ${error.baseUrl} did not answer in time (${error.reason})`,
      hint: `is the gateway at ${error.baseUrl} running and reachable from here?${fixAddress(io)}`,
    };
  }
  if (error instanceof UntrustedCertificateError) {
    return {
      message: `the gateway's certificate at ${error.baseUrl} is not trusted (${error.reason})`,
      hint: "pass the CA that signed it with --ca-file FILE (b9 login saves it) or BETA9_CA_FILE",
    };
  }
  if (error instanceof ConnectionError) {
    return {
      message: `cannot reach the gateway at ${error.baseUrl}: ${error.reason}`,
      hint: `is the gateway running at ${error.baseUrl}?${fixAddress(io)}`,
    };
  }
  if (error instanceof AuthenticationError) {
    return {
      message: error.message,
      hint: `check the API key${takenFrom(io)}: it may be mistyped or revoked; ${LOGIN_HINT} with a valid one`,
    };
  }
  if (error instanceof PermissionDeniedError) {
    if (INFERENCE.has(command.join(" "))) {
      return {
        message: error.message,
        hint: `b9 ${command.join(" ")} needs a key with the inference (or admin) scope; an admin can make one with b9 key create NAME --scopes inference`,
      };
    }
    if (command[0] === "job") {
      return {
        message: error.message,
        hint: `b9 ${command.join(" ")} needs a key with the jobs scope; an admin can make one with b9 key create NAME --scopes jobs`,
      };
    }
    return {
      message: error.message,
      hint: "this needs a key with the admin scope (reads: read or admin); an admin can make one with b9 key create NAME --scopes admin",
    };
  }
  if (error instanceof NotFoundError) {
    if (error.code === "model_not_found") {
      return {
        message: error.message,
        hint: "see the deployed models with b9 model list, or deploy this one with b9 model deploy NAME --source SOURCE",
      };
    }
    if (error.code === "pool_unknown") {
      return {
        message: error.message,
        hint: "see the pools with b9 pool list, or make one with b9 pool create NAME",
      };
    }
    const noun = command[0];
    return {
      message: error.message,
      hint: noun && LISTABLE.has(noun) ? `see them all with b9 ${noun} list` : undefined,
    };
  }
  if (error instanceof RateLimitError) {
    const wait = error.retryAfterSeconds === undefined ? "a moment" : `${error.retryAfterSeconds}s`;
    return { message: error.message, hint: `wait ${wait} and try again` };
  }
  if (error instanceof StreamError) {
    return { message: error.message, hint: streamHint(error, command) };
  }
  if (error instanceof ApiError) {
    if (error.status === 503) {
      return {
        message: error.message,
        hint: "try again shortly; if it persists, b9 machine list shows which machines are READY",
      };
    }
    if (error.status >= 500)
      return { message: error.message, hint: "the gateway failed; its log has the details" };
    if (error.status === 409) return { message: error.message, hint: conflictHint(command) };
    return {
      message: error.message,
      hint: `check what was given against ${["b9", ...command, "--help"].join(" ")}`,
    };
  }
  // Anything else is our bug, not the user's mistake: say so, and keep the stack for BETA9_DEBUG.
  const message = error instanceof Error ? error.message : String(error);
  return { message, hint: "this looks like a bug in b9; run again with BETA9_DEBUG=1 to see where" };
}

/** 409: the thing is there already, or busy; the next step depends on what it is. */
function conflictHint(command: string[]): string {
  const noun = command[0];
  if (command.join(" ") === "model deploy") {
    return "choose another name, or remove the deployed one first with b9 model remove NAME";
  }
  return noun && LISTABLE.has(noun)
    ? `see them all with b9 ${noun} list`
    : "see the current state, then try again";
}

/** A stream that failed after it began: what failed decides the next step. */
function streamHint(error: StreamError, command: string[]): string {
  if (error.code === "worker_lost") return "the machine serving the answer went away; try again";
  if (command.join(" ") === "model pull") {
    return "see where the model should go with b9 model show NAME and b9 machine list; the agent's log on the machine has the details";
  }
  return "try again; if it fails again, the gateway's log has the details";
}

function fixAddress(io: CliIO): string {
  return sourceOf(io, "gateway") === "BETA9_GATEWAY"
    ? " If that address is wrong, change BETA9_GATEWAY."
    : " If that address is wrong, run b9 login --gateway URL --api-key KEY.";
}

function takenFrom(io: CliIO): string {
  const source = sourceOf(io, "apiKey");
  return source ? ` (taken from ${source})` : "";
}

/** Which environment variable or file a setting came from, so the hint names the thing to fix. */
function sourceOf(io: CliIO, setting: "gateway" | "apiKey"): string | undefined {
  let config: ResolvedConfig;
  try {
    config = resolveConfig(io.env);
  } catch {
    return undefined;
  }
  return config[setting]?.source;
}
