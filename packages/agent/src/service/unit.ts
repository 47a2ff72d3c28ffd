/*
 * What `b9agent service install` writes: a systemd unit (Linux) or a launchd property list (macOS)
 * that runs `b9agent run --no-tui` with the config it was given, at boot (or login, for --user),
 * and again after a failure with a growing wait.
 */

/** What the service runs: this Node and this agent's entry script, with the config's path. */
export interface ServiceSpec {
  /** The Node 24 binary running the agent now (process.execPath). */
  node: string;
  /** The agent's entry script, resolved (the bin the user ran). */
  script: string;
  /** The agent config the service reads (B9AGENT_CONFIG). */
  config: string;
  /** A user service (systemd --user, a LaunchAgent) rather than a system one. */
  user: boolean;
  /** For a system service: the account it runs as (the config's owner). */
  runAs?: string | undefined;
  /** The systemd version, when known: from 254 on, restarts wait longer each time (RestartSteps). */
  systemdVersion?: number | undefined;
  /** Where launchd writes the agent's output. */
  logFile?: string | undefined;
}

export const SYSTEMD_UNIT = "b9agent.service";
export const LAUNCHD_LABEL = "dev.beta9.agent";

/** A word of an ExecStart= line, quoted as systemd reads it (spaces, quotes, backslashes, `%`, `$`). */
function systemdWord(s: string): string {
  const escaped = s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/%/g, "%%").replace(/\$/g, "$$$$");
  return /[\s"'\\;]/.test(s) || escaped !== s ? `"${escaped}"` : s;
}

/** A systemd unit that runs the agent; `systemd-analyze verify` accepts it (tested). */
export function systemdUnit(spec: ServiceSpec): string {
  const exec = [spec.node, spec.script, "run", "--no-tui"].map(systemdWord).join(" ");
  const backoff =
    (spec.systemdVersion ?? 0) >= 254
      ? [
          "# Each restart waits longer, from 5 s up to 5 min (systemd 254+).",
          "RestartSteps=10",
          "RestartMaxDelaySec=5min",
        ]
      : [];
  return [
    "# Written by `b9agent service install`; remove with `b9agent service uninstall`.",
    "[Unit]",
    "Description=Beta9 agent: serves this machine's models to a Beta9 gateway",
    "Wants=network-online.target",
    "After=network-online.target",
    // A crash loop is stopped by systemd after 10 starts in 10 minutes, not retried for ever.
    "StartLimitIntervalSec=600",
    "StartLimitBurst=10",
    "",
    "[Service]",
    "Type=simple",
    `ExecStart=${exec}`,
    `Environment=${systemdWord(`B9AGENT_CONFIG=${spec.config}`)}`,
    ...(spec.user || !spec.runAs ? [] : [`User=${spec.runAs}`]),
    "Restart=on-failure",
    "RestartSec=5s",
    ...backoff,
    // SIGTERM to the agent, which stops its engines and jobs; what is left after 60 s is killed.
    "KillMode=mixed",
    "TimeoutStopSec=60s",
    "",
    "[Install]",
    `WantedBy=${spec.user ? "default.target" : "multi-user.target"}`,
    "",
  ].join("\n");
}

function xml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** A launchd property list (a LaunchAgent with --user, else a LaunchDaemon) that runs the agent. */
export function launchdPlist(spec: ServiceSpec): string {
  const str = (s: string) => `<string>${xml(s)}</string>`;
  const args = [spec.node, spec.script, "run", "--no-tui"].map((a) => `\t\t${str(a)}`).join("\n");
  const log = spec.logFile
    ? [
        `\t<key>StandardOutPath</key>\n\t${str(spec.logFile)}`,
        `\t<key>StandardErrorPath</key>\n\t${str(spec.logFile)}`,
      ]
    : [];
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<plist version="1.0">',
    "<dict>",
    `\t<key>Label</key>\n\t${str(LAUNCHD_LABEL)}`,
    `\t<key>ProgramArguments</key>\n\t<array>\n${args}\n\t</array>`,
    `\t<key>EnvironmentVariables</key>\n\t<dict>\n\t\t<key>B9AGENT_CONFIG</key>\n\t\t${str(spec.config)}\n\t</dict>`,
    ...(spec.user || !spec.runAs ? [] : [`\t<key>UserName</key>\n\t${str(spec.runAs)}`]),
    "\t<key>RunAtLoad</key>\n\t<true/>",
    // Started again when it exits with a failure; launchd waits ThrottleInterval seconds between starts.
    "\t<key>KeepAlive</key>\n\t<dict>\n\t\t<key>SuccessfulExit</key>\n\t\t<false/>\n\t</dict>",
    "\t<key>ThrottleInterval</key>\n\t<integer>10</integer>",
    "\t<key>ProcessType</key>\n\t<string>Standard</string>",
    ...log,
    "</dict>",
    "</plist>",
    "",
  ].join("\n");
}
