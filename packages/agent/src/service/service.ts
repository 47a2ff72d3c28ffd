import { execFile, spawn } from "node:child_process";
import { existsSync, readFileSync, realpathSync, statSync } from "node:fs";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { promisify } from "node:util";
import { ConfigError, loadConfig } from "../config/config-file.ts";
import { LAUNCHD_LABEL, launchdPlist, type ServiceSpec, SYSTEMD_UNIT, systemdUnit } from "./unit.ts";

const run = promisify(execFile);

export type ServicePlatform = "systemd" | "launchd";

export interface ServiceOptions {
  platform: ServicePlatform;
  /** A user service (systemd --user, a LaunchAgent) rather than a system one. */
  user: boolean;
  /** The agent config the service reads. */
  config: string;
  /** Write the unit here instead of the service manager's folder (to package it, or to test it). */
  dir?: string | undefined;
  /** Enable and start it now (systemctl enable --now, launchctl bootstrap). */
  start: boolean;
  /** Replace a unit that is there already. */
  force?: boolean | undefined;
}

/** The platform's service manager, or a sentence saying there is none here. */
export function defaultPlatform(): ServicePlatform {
  if (process.platform === "linux") return "systemd";
  if (process.platform === "darwin") return "launchd";
  throw new ConfigError(
    `b9agent service supports Linux (systemd) and macOS (launchd), not ${process.platform}; run \`b9agent run --no-tui\` under your system's service manager`,
  );
}

/** Where the unit or property list goes. */
export function unitPath(o: Pick<ServiceOptions, "platform" | "user" | "dir">): string {
  const file = o.platform === "systemd" ? SYSTEMD_UNIT : `${LAUNCHD_LABEL}.plist`;
  if (o.dir) return join(resolve(o.dir), file);
  if (o.platform === "systemd")
    return o.user ? join(homedir(), ".config/systemd/user", file) : join("/etc/systemd/system", file);
  return o.user ? join(homedir(), "Library/LaunchAgents", file) : join("/Library/LaunchDaemons", file);
}

function launchdLog(user: boolean): string {
  return user ? join(homedir(), "Library/Logs/b9agent.log") : "/Library/Logs/b9agent.log";
}

const systemctl = (o: ServiceOptions, ...args: string[]) =>
  run("systemctl", [...(o.user ? ["--user"] : []), ...args]);

/** The first line of what a failed command said, for a sentence. */
function said(err: unknown): string {
  const e = err as { stderr?: string; message?: string; code?: string };
  if (e.code === "ENOENT") return "the command is not installed";
  return (e.stderr?.trim() || e.message || String(err)).split("\n")[0]!;
}

/** The account that owns `path` (a system service runs as the config's owner, not root). */
function ownerOf(path: string): string {
  const uid = statSync(path).uid;
  if (uid === 0) return "root";
  for (const line of readFileSync("/etc/passwd", "utf8").split("\n")) {
    const f = line.split(":");
    if (Number(f[2]) === uid && f[0]) return f[0];
  }
  return String(uid);
}

async function systemdVersion(): Promise<number | undefined> {
  try {
    return Number(/systemd (\d+)/.exec((await run("systemctl", ["--version"])).stdout)?.[1]) || undefined;
  } catch {
    return undefined;
  }
}

/** Write `text` at `path` whole (a temporary file renamed), or throw a sentence; nothing half-written. */
async function writeWhole(path: string, text: string, user: boolean): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(tmp, text, { mode: 0o644 });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => {});
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EACCES" || code === "EPERM" || code === "EROFS")
      throw new ConfigError(
        `cannot write ${path}: permission denied; ${user ? "check that folder's owner" : "run it with sudo for a system service, or install one for your user with --user"}`,
      );
    throw new ConfigError(`cannot write ${path}: ${(err as Error).message}`);
  }
}

/** `b9agent service install`: returns what to print. */
export async function installService(o: ServiceOptions): Promise<string> {
  const config = resolve(o.config);
  // A service whose config is missing or broken would fail at every start: refused now, in a sentence.
  await loadConfig(config);
  const path = unitPath(o);
  if (existsSync(path) && !o.force)
    throw new ConfigError(
      `b9agent is already installed as a service (${path}); run \`b9agent service uninstall${o.user ? " --user" : ""}\` first, or pass --force to replace it`,
    );
  const spec: ServiceSpec = {
    node: process.execPath,
    script: realpathSync(process.argv[1] ?? ""),
    config,
    user: o.user,
    runAs: o.user ? undefined : ownerOf(config),
    systemdVersion: o.platform === "systemd" ? await systemdVersion() : undefined,
    logFile: o.platform === "launchd" ? launchdLog(o.user) : undefined,
  };
  await writeWhole(path, o.platform === "systemd" ? systemdUnit(spec) : launchdPlist(spec), o.user);
  const how =
    o.platform === "systemd"
      ? `systemctl${o.user ? " --user" : ""} daemon-reload && systemctl${o.user ? " --user" : ""} enable --now ${SYSTEMD_UNIT}`
      : `launchctl bootstrap ${o.user ? `gui/${process.getuid?.()}` : "system"} ${path}`;
  if (!o.start) return `Wrote ${path}.\nStart it at boot and now with: ${how}\n`;
  try {
    if (o.platform === "systemd") {
      await systemctl(o, "daemon-reload");
      await systemctl(o, "enable", "--now", SYSTEMD_UNIT);
    } else {
      await run("launchctl", ["bootstrap", o.user ? `gui/${process.getuid?.()}` : "system", path]);
    }
  } catch (err) {
    // Not enabled: the unit goes too, so nothing half-installed stays behind.
    await rm(path, { force: true });
    if (o.platform === "systemd") await systemctl(o, "daemon-reload").catch(() => {});
    throw new ConfigError(
      `${o.platform === "systemd" ? "systemctl" : "launchctl"} could not start the service (${said(err)}); nothing was installed. Without a running ${o.platform}, write the unit with --no-start and start it yourself`,
    );
  }
  return `Installed b9agent as a ${o.platform} service (${path}): it runs now, at ${o.user ? "login" : "boot"}, and again after a failure.\nSee it with: b9agent service status${o.user ? " --user" : ""} · its log: b9agent service logs${o.user ? " --user" : ""}\n`;
}

/** `b9agent service uninstall`: stops and removes the service; returns what to print. */
export async function uninstallService(o: ServiceOptions): Promise<string> {
  const path = unitPath(o);
  if (!existsSync(path))
    throw new ConfigError(
      `no b9agent service is installed here (${path} is not there)${o.user ? "" : "; for a user service add --user"}`,
    );
  let note = "";
  if (o.start) {
    try {
      if (o.platform === "systemd") await systemctl(o, "disable", "--now", SYSTEMD_UNIT);
      else
        await run("launchctl", [
          "bootout",
          o.user ? `gui/${process.getuid?.()}/${LAUNCHD_LABEL}` : `system/${LAUNCHD_LABEL}`,
        ]);
    } catch (err) {
      note = ` (stopping it said: ${said(err)})`;
    }
  }
  await rm(path, { force: true });
  if (o.start && o.platform === "systemd") await systemctl(o, "daemon-reload").catch(() => {});
  return `Removed the b9agent service (${path})${note}.\n`;
}

/** Run a service manager's command with the terminal's stdio; resolves with its exit code. */
function passThrough(command: string, args: string[]): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { stdio: "inherit" });
    child.on("error", (err) =>
      reject(
        (err as NodeJS.ErrnoException).code === "ENOENT"
          ? new ConfigError(
              `${command} is not installed here; the service needs ${command === "journalctl" || command === "systemctl" ? "systemd" : "launchd"}`,
            )
          : err,
      ),
    );
    child.on("exit", (code) => resolvePromise(code ?? 1));
  });
}

/** `b9agent service status`: where the unit is, then the service manager's own words. */
export async function serviceStatus(o: ServiceOptions, print: (s: string) => void): Promise<number> {
  const path = unitPath(o);
  if (!existsSync(path)) {
    print(
      `b9agent is not installed as a service (${path} is not there); install it with b9agent service install${o.user ? " --user" : ""}\n`,
    );
    return 3;
  }
  print(`b9agent service: ${path}\n`);
  if (o.platform === "systemd")
    return passThrough("systemctl", [...(o.user ? ["--user"] : []), "status", SYSTEMD_UNIT, "--no-pager"]);
  return passThrough("launchctl", [
    "print",
    o.user ? `gui/${process.getuid?.()}/${LAUNCHD_LABEL}` : `system/${LAUNCHD_LABEL}`,
  ]);
}

/** `b9agent service logs [-f]`: the service's log lines, from the journal or launchd's log file. */
export function serviceLogs(o: ServiceOptions, follow: boolean): Promise<number> {
  if (o.platform === "systemd")
    return passThrough("journalctl", [
      ...(o.user ? ["--user"] : []),
      "-u",
      SYSTEMD_UNIT,
      "-n",
      "200",
      "--no-pager",
      ...(follow ? ["-f"] : []),
    ]);
  return passThrough("tail", ["-n", "200", ...(follow ? ["-f"] : []), launchdLog(o.user)]);
}
