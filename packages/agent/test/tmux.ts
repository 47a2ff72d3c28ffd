import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "@beta9/test-utils";

/**
 * A real terminal for a real binary: one tmux server on its own socket (so parallel tests never
 * share one), one session running `node ARGS`, read back with capture-pane as a person would see it.
 * The pane stays after the program exits, so its exit status can be read.
 */
export class TmuxTerminal {
  readonly socket = `b9test-${process.pid}-${randomBytes(4).toString("hex")}`;
  readonly #socketPath: string;

  constructor(opts: {
    args: string[];
    env: Record<string, string>;
    columns: number;
    rows: number;
    cwd?: string;
  }) {
    try {
      execFileSync("tmux", ["-V"], { stdio: "ignore" });
    } catch {
      throw new Error("tmux is not installed: scripts/test installs it (apt-get install tmux)");
    }
    const conf = join(tempDir("b9-tmux-"), "tmux.conf");
    writeFileSync(conf, "set-option -g remain-on-exit on\n");
    this.#tmux(
      "-f",
      conf,
      "new-session",
      "-d",
      "-s",
      "main",
      "-x",
      String(opts.columns),
      "-y",
      String(opts.rows),
      ...Object.entries(opts.env).flatMap(([k, v]) => ["-e", `${k}=${v}`]),
      ...(opts.cwd ? ["-c", opts.cwd] : []),
      // Several arguments: tmux runs the program itself, no shell in between.
      process.execPath,
      ...opts.args,
    );
    this.#socketPath = this.#tmux("display-message", "-p", "#{socket_path}").trim();
  }

  #tmux(...args: string[]): string {
    return execFileSync("tmux", ["-L", this.socket, ...args], { encoding: "utf8" });
  }

  /** The screen as text, one string per row. */
  screen(): string {
    return this.#tmux("capture-pane", "-p", "-t", "main");
  }

  /** The program's pid (tmux runs it directly as the pane's process). */
  pid(): number {
    return Number(this.#tmux("display-message", "-p", "-t", "main", "#{pane_pid}").trim());
  }

  /** Null while the program runs; then its exit code, or the number of the signal that killed it. */
  exit(): { code: number | null; signal: number | null } | null {
    const [code, signal, pid] = this.#tmux(
      "display-message",
      "-p",
      "-t",
      "main",
      "#{pane_dead_status}|#{pane_dead_signal}|#{pane_pid}",
    )
      .trim()
      .split("|");
    if (code || signal) return { code: code ? Number(code) : null, signal: signal ? Number(signal) : null };
    // tmux can miss the exit: libutempter's helper resets SIGCHLD while tmux waits for it, and the
    // program stays a zombie. Its status is then still in /proc (the exit_code field, as wait() gives it).
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    } catch {
      return null; // reaped between the two looks: tmux has the status at the next one
    }
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (fields[0] !== "Z") return null;
    const status = Number(fields[49]);
    return (status & 0x7f) === 0
      ? { code: (status >> 8) & 0xff, signal: null }
      : { code: null, signal: status & 0x7f };
  }

  /** The pane's raw state, for a failing test's message. */
  describe(): string {
    const state = this.#tmux(
      "display-message",
      "-p",
      "-t",
      "main",
      "dead=#{pane_dead} status=#{pane_dead_status} signal=#{pane_dead_signal} pid=#{pane_pid}",
    );
    const pid = /pid=(\d+)/.exec(state)?.[1] ?? "0";
    let ps = "";
    try {
      ps = execFileSync("ps", ["-o", "pid,ppid,stat,args", "-p", pid], { encoding: "utf8" });
    } catch {
      ps = `process ${pid} is gone`;
    }
    return `${state.trim()}\n${ps.trim()}\n--- screen ---\n${this.screen()}`;
  }

  /** Keys as tmux names them: "q", "C-c". */
  press(key: string): void {
    this.#tmux("send-keys", "-t", "main", key);
  }

  resize(columns: number, rows: number): void {
    this.#tmux("resize-window", "-t", "main", "-x", String(columns), "-y", String(rows));
  }

  close(): void {
    try {
      this.#tmux("kill-server");
    } catch {
      // already gone
    }
    rmSync(this.#socketPath, { force: true });
  }
}
