import { createHash } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { chown, mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import type { Logger } from "@beta9/http";
import {
  type AgentJobList,
  Beta9Error,
  type EnergyReading,
  type Hardware,
  type JobAssignment,
  type JobRunners,
  type JobRunState,
  MAX_JOB_INPUT_BYTES,
  MAX_JOB_LOG_LINE_BYTES,
} from "@beta9/protocol";
import { meterJob } from "../energy/job-energy.ts";
import type { MachinePower } from "../energy/machine-power.ts";
import { type Child, describeExit, startChild } from "../process/child.ts";
import { detectDeathSignalPrefix } from "../process/death-signal.ts";
import { findExecutable } from "../process/find-executable.ts";
import type { PidfileRegistry } from "../process/pidfiles.ts";
import { signalProcessTree } from "../process/signals.ts";
import { createJobCgroup, type JobCgroup, removeCgroupTrees, sweepJobCgroups } from "./cgroup.ts";
import { gpuDeviceGlobs, gpuEnvironment } from "./gpu-env.ts";
import {
  checkPodmanJob,
  containerPrefix,
  type PodmanOptions,
  podman,
  podmanRunArgs,
  sweepContainers,
} from "./podman.ts";
import {
  type BuiltEnvironment,
  collectEnvironments,
  EnvironmentError,
  ensureEnvironment,
  environmentKey,
  type PackageSources,
  sweepPartialEnvironments,
} from "./python-env.ts";
import { type RunLog, RunLog as RunLogClass } from "./run-log.ts";
import { bwrapArgs, gpuDeviceNodes, type RunnerName, SANDBOX_JOB_DIR } from "./sandbox.ts";

/** How much the built Python environments may take together, unless the owner says otherwise. */
export const DEFAULT_MAX_ENV_BYTES = 20 * 1024 ** 3;
/** Default run time before a job is stopped (TIMED_OUT), as the contract says. */
const DEFAULT_TIMEOUT_SECONDS = 3600;
/** Between SIGTERM and SIGKILL when a job is cancelled or timed out. */
export const JOB_STOP_GRACE_MS = 10_000;
/** All of a run's outputs together; more fails the run instead of announcing part of them. */
export const DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024 * 1024;
/** Job ids name folders and cgroups: nothing that could climb out of them. */
const JOB_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
/** JobFileName's pattern: an output under any other name could not be announced. */
const OUTPUT_NAME = /^(?!\/)(?!.*(^|\/)\.\.?(\/|$))[A-Za-z0-9._/ -]+$/;
/** The unprivileged uid/gid a root agent runs sandboxed jobs as (nobody). */
const NOBODY = 65534;

export interface JobManagerOptions {
  /** The agent's home: runs live in jobs/, Python environments in job-envs/. */
  home: string;
  hardware: () => Hardware;
  pidfiles: PidfileRegistry;
  log: Logger;
  /** Told whenever the number of runs, or of running ones, changes. */
  onCounts?: ((running: number, total: number) => void) | undefined;
  /** Forced runner (B9AGENT_JOB_RUNNER); default: bwrap on Linux where installed, else native. */
  runner?: RunnerName | undefined;
  graceMs?: number | undefined;
  maxOutputBytes?: number | undefined;
  /** Where a job's rootfs may be (jobs.rootfs_dirs): none, no rootfs jobs. */
  rootfsDirs?: readonly string[] | undefined;
  /** jobs.podman: how podman is run here. */
  podman?: PodmanOptions | undefined;
  /** jobs.package_index and jobs.find_links: where uv gets jobs' packages. */
  packages?: PackageSources | undefined;
  /** jobs.max_env_bytes: the least recently used environments go beyond this much together. */
  maxEnvBytes?: number | undefined;
  /** This machine's power sources, to measure each run's energy. */
  energy?: Promise<MachinePower> | undefined;
}

/** The programs the runners need, where this machine has them. */
interface Runners {
  name: RunnerName;
  bwrap: string | null;
  setpriv: string | null;
  podman: string | null;
  /** The hierarchy a job cgroup was made in when the agent tried; null: none could be. */
  cgroups: 1 | 2 | null;
}

/** Why a run is stopped: the gateway cancelled it, its time ran out, or the agent is shutting down. */
type StopCause = "CANCELLED" | "TIMED_OUT" | "AGENT_STOPPING";

/** One run in progress: what stops it. */
interface Active {
  child: Child | undefined;
  cgroup: JobCgroup | undefined;
  /** Set once a stop was asked for; the state the run ends in. */
  stopping: StopCause | undefined;
  stopped: Promise<void> | undefined;
  timer: NodeJS.Timeout | undefined;
  runner: RunnerName;
  /** The podman container's name, for a podman run. */
  container: string | undefined;
  /** Stops what prepares the run (uv) when it is stopped before its command starts. */
  preparing: AbortController;
  /** Lets go of the run's Python environment (it may be collected again). */
  releaseEnvironment: (() => void) | undefined;
}

/**
 * The agent's side of jobs: runs the gateway's assignments (prepare, run, collect outputs), keeps
 * each run's events until the gateway deletes it, and stops runs on cancel and timeout. Processes
 * are started and stopped by process/, as the engines' are.
 */
export class JobManager {
  readonly #opts: JobManagerOptions;
  readonly #runs = new Map<string, RunLog>();
  readonly #active = new Map<string, Active>();
  readonly #starting = new Set<string>();
  #runner: Promise<Runners> | undefined;
  /** Environments' keys → how many runs hold them now (never collected while held). */
  readonly #envsHeld = new Map<string, number>();
  /** The environment collection in progress: a run waits for it before it holds its environment. */
  #collecting: Promise<void> = Promise.resolve();
  /** A finished run's energy, for its last state. */
  readonly #energy = new WeakMap<RunLog, EnergyReading | undefined>();
  #found: Runners | undefined;

  constructor(opts: JobManagerOptions) {
    this.#opts = opts;
  }

  get #jobsDir(): string {
    return join(this.#opts.home, "jobs");
  }

  get #envsDir(): string {
    return join(this.#opts.home, "job-envs");
  }

  /** Removes the least recently used environments beyond the cap, none a run holds; one pass at a time. */
  #collectEnvironments(): Promise<void> {
    const max = this.#opts.maxEnvBytes ?? DEFAULT_MAX_ENV_BYTES;
    this.#collecting = this.#collecting.then(async () => {
      try {
        const removed = await collectEnvironments(this.#envsDir, max, (k) => this.#envsHeld.has(k));
        if (removed.length > 0)
          this.#opts.log.info(
            { removed },
            `removed ${removed.length} least recently used job environment(s): over jobs.max_env_bytes`,
          );
      } catch (err) {
        this.#opts.log.warn({ err: String(err) }, "could not remove old job environments");
      }
    });
    return this.#collecting;
  }

  /** Holds the environment for a run until the returned release is called. */
  async #holdEnvironment(key: string): Promise<() => void> {
    await this.#collecting;
    this.#envsHeld.set(key, (this.#envsHeld.get(key) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#envsHeld.get(key) ?? 1) - 1;
      if (left > 0) this.#envsHeld.set(key, left);
      else this.#envsHeld.delete(key);
    };
  }

  /**
   * Loads the runs a previous agent kept: one that was still going is reported FAILED (its
   * processes were killed by the pidfile sweep; what is left in job cgroups is killed here).
   */
  async restore(): Promise<void> {
    // Containers first: podman's conmon sits in the job cgroups below, and would make them again.
    const { podman: podmanPath } = await this.#detectRunner();
    if (podmanPath !== null)
      await sweepContainers(podmanPath, this.#opts.podman ?? {}, this.#opts.home).catch(() => {});
    await sweepJobCgroups(containerPrefix(this.#opts.home)).catch(() => {});
    await sweepPartialEnvironments(this.#envsDir);
    void this.#collectEnvironments();
    const names = await readdir(this.#jobsDir).catch(() => [] as string[]);
    for (const name of names) {
      const run = RunLogClass.load(join(this.#jobsDir, name));
      if (run === null) continue;
      this.#runs.set(run.record.job_id, run);
      if (!run.ended) run.add({ type: "state", state: "FAILED", reason: "the agent restarted while it ran" });
    }
    this.#counts();
  }

  /** What this machine runs jobs with, for the gateway's placement; undefined until restore() found it. */
  runners(): JobRunners | undefined {
    const r = this.#found;
    if (r === undefined) return undefined;
    return {
      default: r.name === "bwrap" ? "bwrap" : "native",
      bwrap: r.bwrap !== null,
      podman: r.podman === null ? null : { rootless: process.getuid?.() !== 0 },
      cgroups: r.cgroups === null ? null : `v${r.cgroups}`,
    };
  }

  list(): AgentJobList {
    return {
      jobs: [...this.#runs.values()].map((r) => ({
        job_id: r.record.job_id,
        attempt: r.record.attempt,
        state: r.record.state,
        seq: r.record.seq,
      })),
    };
  }

  /** The runs, for the dashboard: newest first. */
  runs(): RunLog[] {
    return [...this.#runs.values()].sort((a, b) => b.record.started_at - a.record.started_at);
  }

  get(jobId: string): RunLog {
    const run = this.#runs.get(jobId);
    if (run === undefined) throw new Beta9Error("not_found", `this agent has no run of job ${jobId}`);
    return run;
  }

  /**
   * Accepts an assignment: checks it whole (id, inputs and their sha256, GPUs) before anything
   * runs, writes the inputs, then runs it in the background. The returned log is what the caller
   * streams.
   */
  async start(a: JobAssignment): Promise<RunLog> {
    if (!JOB_ID.test(a.job_id))
      throw new Beta9Error("bad_request", `job id ${JSON.stringify(a.job_id)} is not a job id`);
    const previous = this.#runs.get(a.job_id);
    if ((previous !== undefined && !previous.ended) || this.#starting.has(a.job_id))
      throw new Beta9Error(
        "conflict",
        `job ${a.job_id} is already running here (attempt ${previous?.record.attempt ?? a.attempt})`,
      );
    // Held from here until the run is listed, so two assignments of one job cannot both pass.
    this.#starting.add(a.job_id);
    try {
      return await this.#begin(a, previous);
    } finally {
      this.#starting.delete(a.job_id);
    }
  }

  async #begin(a: JobAssignment, previous: RunLog | undefined): Promise<RunLog> {
    const inputs = checkInputs(a);
    const hardware = this.#opts.hardware();
    let gpuEnv: Record<string, string>;
    try {
      gpuEnv = gpuEnvironment(hardware, a.gpus);
    } catch (error) {
      throw new Beta9Error(
        "bad_request",
        `${(error as Error).message}: the assignment names GPUs ${a.gpus.join(", ")}`,
      );
    }
    // A job in a rootfs or an image needs podman: a machine without it declines, saying so.
    let rootfs: string | undefined;
    if (a.spec.rootfs !== undefined || a.spec.image !== undefined) {
      if ((await this.#detectRunner()).podman === null)
        throw new Beta9Error(
          "runner_not_installed",
          `this machine cannot run a job in a ${a.spec.rootfs !== undefined ? "rootfs" : "container image"}: podman is not installed${process.platform === "linux" ? "" : ` (podman jobs run on Linux, this machine is ${process.platform})`}`,
        );
      rootfs = await checkPodmanJob(a.spec, this.#opts.rootfsDirs ?? []);
    }
    if (previous !== undefined) await this.delete(a.job_id);
    const dir = join(this.#jobsDir, a.job_id);
    const work = join(dir, "work");
    await rm(dir, { recursive: true, force: true });
    await mkdir(join(work, "out"), { recursive: true });
    for (const input of inputs) {
      const path = join(work, input.name);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, input.data);
    }
    const run = RunLogClass.create(dir, {
      job_id: a.job_id,
      attempt: a.attempt,
      state: "PREPARING",
      seq: 0,
      started_at: Date.now(),
      gpus: [...a.gpus],
    });
    this.#runs.set(a.job_id, run);
    const active: Active = {
      child: undefined,
      cgroup: undefined,
      stopping: undefined,
      stopped: undefined,
      timer: undefined,
      runner: "native",
      container: undefined,
      preparing: new AbortController(),
      releaseEnvironment: undefined,
    };
    this.#active.set(a.job_id, active);
    this.#counts();
    run.add({ type: "state", state: "PREPARING" });
    void this.#execute(a, run, active, work, gpuEnv, rootfs)
      .catch((error: unknown) => {
        this.#opts.log.error({ job_id: a.job_id, err: String(error) }, "job run failed inside the agent");
        this.#end(run, "FAILED", { reason: `the agent could not run the job: ${(error as Error).message}` });
      })
      .finally(async () => {
        clearTimeout(active.timer);
        active.releaseEnvironment?.();
        await active.cgroup?.destroy().catch(() => {});
        this.#active.delete(a.job_id);
        this.#counts();
      });
    return run;
  }

  /** Stops a run (SIGTERM, the grace, SIGKILL to everything of it); resolves once it ended. */
  async cancel(jobId: string): Promise<JobRunState> {
    const run = this.get(jobId);
    const active = this.#active.get(jobId);
    if (active !== undefined) await this.#stop(active, "CANCELLED");
    await this.#ended(run);
    return run.record.state;
  }

  /** Forgets a run (stopping it first if it still runs): its events, files and outputs. */
  async delete(jobId: string): Promise<void> {
    const run = this.get(jobId);
    if (!run.ended) await this.cancel(jobId);
    this.#runs.delete(jobId);
    await rm(run.dir, { recursive: true, force: true });
    this.#counts();
  }

  /** The file of an output the run announced; undefined for a name it did not. */
  outputPath(jobId: string, name: string): string {
    const run = this.get(jobId);
    if (!run.events.some((e) => e.type === "output" && e.name === name))
      throw new Beta9Error("not_found", `job ${jobId} has no output named ${name}`);
    return join(run.dir, "work", "out", name);
  }

  /** Stops every run (the agent is shutting down): they end FAILED, so the gateway may retry them. */
  async shutdown(): Promise<void> {
    const runs = [...this.#active.keys()].map((id) => this.#runs.get(id)).filter((r) => r !== undefined);
    await Promise.all([...this.#active.values()].map((a) => this.#stop(a, "AGENT_STOPPING")));
    await Promise.all(runs.map((r) => this.#ended(r)));
    // Their streams get a moment to deliver the end before the server closes its connections.
    const reading = runs.flatMap((r) => [...r.readers]);
    const until = Date.now() + 2_000;
    while (reading.some((s) => !s.closed) && Date.now() < until) await delay(20);
  }

  #counts(): void {
    const running = [...this.#runs.values()].filter((r) => !r.ended).length;
    this.#opts.onCounts?.(running, this.#runs.size);
  }

  #ended(run: RunLog): Promise<void> {
    if (run.ended) return Promise.resolve();
    return new Promise((resolve) => {
      const on = () => {
        if (!run.ended) return;
        run.off("event", on);
        resolve();
      };
      run.on("event", on);
    });
  }

  #end(
    run: RunLog,
    state: JobRunState,
    extra: { reason?: string; exit_code?: number | null; out_of_memory?: boolean } = {},
  ): void {
    const energy = this.#energy.get(run);
    run.add({ type: "state", state, ...extra, ...(energy ? { energy } : {}) });
  }

  /** The end of a run that was stopped, in the state and words its cause calls for. */
  #stopped(
    run: RunLog,
    cause: StopCause,
    timeoutSeconds: number,
    extra: { exit_code?: number | null } = {},
  ): void {
    if (cause === "TIMED_OUT")
      this.#end(run, "TIMED_OUT", { reason: `timed out after ${formatSeconds(timeoutSeconds)}`, ...extra });
    else if (cause === "CANCELLED") this.#end(run, "CANCELLED", { reason: "cancelled", ...extra });
    else this.#end(run, "FAILED", { reason: "the agent was stopped while it ran", ...extra });
  }

  #detectRunner(): Promise<Runners> {
    this.#runner ??= (async () => {
      const linux = (name: string) =>
        process.platform === "linux" ? findExecutable(name, process.env.PATH) : Promise.resolve(null);
      const [bwrap, setpriv, podmanPath] = await Promise.all([
        linux("bwrap"),
        linux("setpriv"),
        linux("podman"),
      ]);
      const forced = this.#opts.runner;
      if (forced === "bwrap" && bwrap === null)
        throw new Error("the bwrap runner was asked for but bubblewrap is not installed");
      const name: RunnerName = forced ?? (bwrap !== null ? "bwrap" : "native");
      // A cgroup made and removed: whether jobs here get memory limits, and in which hierarchy.
      const probe = await createJobCgroup(
        `${containerPrefix(this.#opts.home)}probe-${process.pid}`,
        null,
      ).catch(() => undefined);
      await probe?.destroy().catch(() => {});
      const cgroups = probe?.version ?? null;
      this.#opts.log.info(
        { runner: name, podman: podmanPath !== null, cgroups },
        `jobs run with the ${name} runner${podmanPath !== null ? ", or podman when they name a rootfs or an image" : ""}${cgroups === null ? ", without memory limits (no cgroup can be made)" : ""}`,
      );
      this.#found = { name, bwrap, setpriv, podman: podmanPath, cgroups };
      return this.#found;
    })();
    return this.#runner;
  }

  async #execute(
    a: JobAssignment,
    run: RunLog,
    active: Active,
    work: string,
    gpuEnv: Record<string, string>,
    rootfs: string | undefined,
  ): Promise<void> {
    const note = (line: string) => run.add({ type: "log", stream: "stderr", line: `[b9] ${line}` });
    const runner = await this.#detectRunner();
    const inPodman = rootfs !== undefined || a.spec.image !== undefined;
    active.runner = inPodman ? "podman" : runner.name;
    const sandboxed = active.runner !== "native";
    const asRoot = sandboxed && process.getuid?.() === 0;
    if (active.runner === "bwrap" && asRoot && runner.setpriv === null)
      throw new Error("setpriv (util-linux) is needed to run sandboxed jobs as an unprivileged user");
    // The job's timeout runs from here: a slow environment build counts against it too.
    const timeoutSeconds = a.spec.timeout_seconds ?? DEFAULT_TIMEOUT_SECONDS;
    active.timer = setTimeout(() => void this.#stop(active, "TIMED_OUT"), timeoutSeconds * 1000);
    active.timer.unref();

    let environment: BuiltEnvironment | undefined;
    if (a.spec.environment !== undefined) {
      active.releaseEnvironment = await this.#holdEnvironment(environmentKey(a.spec.environment));
      try {
        environment = await ensureEnvironment(a.spec.environment, {
          root: this.#envsDir,
          pidfiles: this.#opts.pidfiles,
          signal: active.preparing.signal,
          packages: this.#opts.packages,
        });
        if (!environment.reused) {
          note(`built the Python environment ${environment.dir}`);
          // A new environment may take the others over the cap: the least recently used go.
          void this.#collectEnvironments();
        }
      } catch (error) {
        if (!(error instanceof EnvironmentError)) throw error;
        if (active.stopping) return this.#stopped(run, active.stopping, timeoutSeconds);
        return this.#end(run, "FAILED", { reason: error.message });
      }
    }
    if (active.stopping) return this.#stopped(run, active.stopping, timeoutSeconds);

    const jobDir = sandboxed ? SANDBOX_JOB_DIR : work;
    const systemPath = sandboxed ? "/usr/local/bin:/usr/bin:/bin" : (process.env.PATH ?? "/usr/bin:/bin");
    const path = [environment ? join(environment.dir, "bin") : undefined, a.spec.env?.PATH ?? systemPath]
      .filter((p) => p !== undefined)
      .join(":");
    const env: Record<string, string> = {
      LANG: "C.UTF-8",
      ...a.spec.env,
      ...gpuEnv,
      PATH: path,
      HOME: jobDir,
      TMPDIR: sandboxed ? "/tmp" : join(work, ".tmp"),
      B9_JOB_ID: a.job_id,
      B9_OUTPUT_DIR: join(jobDir, "out"),
      ...(environment ? { VIRTUAL_ENV: environment.dir } : {}),
    };
    if (!sandboxed) await mkdir(join(work, ".tmp"), { recursive: true });

    const [program, ...args] = a.spec.command as [string, ...string[]];
    // Looked up as the job will see it: a relative path in the job directory, a bare name on its PATH.
    // In a rootfs, absolute paths and PATH are the rootfs's; an image is only known to podman.
    const within = (p: string) => (rootfs !== undefined ? join(rootfs, p) : p);
    const lookup = program.startsWith("/")
      ? within(program)
      : program.includes("/")
        ? join(work, program)
        : program;
    const searched = rootfs !== undefined ? path.split(":").map(within).join(":") : path;
    if (a.spec.image === undefined && (await findExecutable(lookup, searched)) === null)
      return this.#end(run, "FAILED", { reason: `command not found: ${program}` });

    const memory = a.spec.resources?.memory_bytes;
    try {
      // Named for this agent: an agent starting sweeps only its own (two agents may share a host).
      active.cgroup = await createJobCgroup(
        `${containerPrefix(this.#opts.home)}${a.job_id}-${a.attempt}`,
        memory ?? null,
      );
    } catch (error) {
      if (memory !== undefined)
        note(
          `no memory limit: this agent cannot make a cgroup (${(error as Error).message}); the job runs without one`,
        );
    }

    let command: string;
    let commandArgs: string[];
    const podmanOptions = this.#opts.podman ?? {};
    if (active.runner === "podman") {
      if (asRoot) await chownTree(work, NOBODY);
      const podmanPath = runner.podman as string;
      const name = `${containerPrefix(this.#opts.home)}${a.job_id}`;
      active.container = name;
      // One an earlier attempt left (an agent killed mid-run) would take the name.
      await podman(podmanPath, podmanOptions, ["rm", "--force", "--time", "0", name]);
      command = podmanPath;
      commandArgs = podmanRunArgs(podmanOptions, {
        name,
        jobDir: work,
        rootfs,
        image: a.spec.image,
        envNames: Object.keys(env),
        devices: await gpuDeviceNodes(gpuDeviceGlobs(this.#opts.hardware(), a.gpus)),
        user: asRoot ? { uid: NOBODY, gid: NOBODY } : null,
        cgroupParent: active.cgroup?.relative ?? null,
        memoryBytes: memory ?? null,
        command: a.spec.command,
      });
    } else if (sandboxed) {
      if (asRoot) await chownTree(work, NOBODY);
      const readOnly = environment ? [environment.dir, environment.home] : [];
      command = runner.bwrap as string;
      commandArgs = bwrapArgs(
        {
          jobDir: work,
          readOnly: readOnly.filter(
            (d) => !["/usr", "/bin", "/lib"].some((s) => d === s || d.startsWith(`${s}/`)),
          ),
          devices: await gpuDeviceNodes(gpuDeviceGlobs(this.#opts.hardware(), a.gpus)),
          command: a.spec.command,
          root: asRoot ? { uid: NOBODY, gid: NOBODY, setpriv: runner.setpriv as string } : null,
        },
        existsSync,
      );
    } else {
      command = program;
      commandArgs = args;
    }
    const deathPrefix = (await detectDeathSignalPrefix()) ?? [];
    // The child joins its cgroup before it execs the job, so nothing it allocates escapes the limit.
    // Under podman the container and conmon go below the cgroup instead (--cgroup-parent): cgroup v2
    // lets no process sit in a cgroup whose children have controllers.
    const joinCgroup =
      active.cgroup && active.runner !== "podman"
        ? ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', active.cgroup.procs]
        : [];
    let child: Child;
    try {
      child = await startChild({
        name: `job ${a.job_id}`,
        command,
        args: commandArgs,
        env,
        cwd: work,
        pidfiles: this.#opts.pidfiles,
        deathSignalPrefix: [...deathPrefix, ...joinCgroup],
        tail: [],
        // Room for the note within the cap, so an ASCII line's note says all that was cut.
        cutLinesAt: MAX_JOB_LOG_LINE_BYTES - 128,
        onLine: (line, stream) => run.add({ type: "log", stream, line: cutToBytes(line) }),
        onNote: (message) => this.#opts.log.warn({ job_id: a.job_id }, message),
      });
    } catch (error) {
      return this.#end(run, "FAILED", { reason: `could not start the job: ${(error as Error).message}` });
    }
    active.child = child;
    const energy = meterJob(this.#opts.energy, {
      pid: child.pid,
      cgroupDir: active.cgroup?.path,
      gpus: a.gpus,
    });
    run.add({ type: "state", state: "RUNNING" });
    if (active.stopping) void this.#stop(active, active.stopping);
    const exit = await child.exited;
    await active.stopped;
    this.#energy.set(run, await (await energy).stop());
    // Under podman the victim's cgroup went with its container: a SIGKILL while the limit was hit is the OOM.
    const oom =
      active.runner === "podman"
        ? exit.code === 137 && !active.stopping && ((await active.cgroup?.limitHit()) ?? false)
        : ((await active.cgroup?.oomKilled()) ?? false);
    if (active.container !== undefined) {
      await podman(runner.podman as string, podmanOptions, [
        "rm",
        "--force",
        "--time",
        "0",
        active.container,
      ]);
      if (active.cgroup)
        await removeCgroupTrees(active.cgroup.relative).catch((e: unknown) => note(String(e)));
    }
    // Whatever the job left behind (daemons, a process that ignored SIGTERM) goes with the run.
    await active.cgroup?.destroy().catch((error: unknown) => note(String(error)));
    active.cgroup = undefined;
    if (!sandboxed) signalProcessTree(child.pid, true, "SIGKILL");

    if (active.stopping) {
      return this.#stopped(run, active.stopping, timeoutSeconds, {
        exit_code: exit.code,
      });
    }
    if (oom) {
      return this.#end(run, "FAILED", {
        reason: `killed: out of memory (limit ${formatBytes(memory ?? 0)})`,
        exit_code: exit.code,
        out_of_memory: true,
      });
    }
    const outputs = await collectOutputs(
      join(work, "out"),
      this.#opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES,
    );
    if (typeof outputs === "string")
      return this.#end(run, "FAILED", { reason: outputs, exit_code: exit.code });
    for (const output of outputs) run.add({ type: "output", ...output });
    if (exit.code === 0) return this.#end(run, "SUCCEEDED", { exit_code: 0 });
    // podman's own code for failing before the job started (a pull, a bad option).
    if (active.runner === "podman" && exit.code === 125)
      return this.#end(run, "FAILED", {
        reason: "podman could not start the job (its words are in the job's log)",
        exit_code: 125,
      });
    this.#end(run, "FAILED", {
      reason: exit.code === null ? `the job ${describeExit(exit)}` : `exit code ${exit.code}`,
      exit_code: exit.code,
    });
  }

  /**
   * SIGTERM to the job's processes, SIGKILL to all of them after the grace. Under bwrap the signal
   * skips bwrap itself (its death would SIGKILL the sandbox at once, leaving the job no grace);
   * when the job's command exits, its pid namespace and everything in it go too.
   */
  #stop(active: Active, why: StopCause): Promise<void> {
    active.stopping ??= why;
    const child = active.child;
    if (child === undefined) {
      active.preparing.abort();
      return Promise.resolve();
    }
    active.stopped ??= (async () => {
      const grace = this.#opts.graceMs ?? JOB_STOP_GRACE_MS;
      if (active.container !== undefined) {
        // podman stop: SIGTERM to the container's init (which passes it on), SIGKILL after the grace.
        const podmanPath = (await this.#detectRunner()).podman as string;
        const seconds = String(Math.max(1, Math.ceil(grace / 1000)));
        await podman(
          podmanPath,
          this.#opts.podman ?? {},
          ["stop", "--time", seconds, active.container],
          grace + 30_000,
        );
        await Promise.race([child.exited, delay(5_000)]);
        await child.stop(0);
      } else if (active.runner === "bwrap") {
        for (const pid of await groupMembers(child.pid)) signalProcessTree(pid, false, "SIGTERM");
        await Promise.race([child.exited, delay(grace)]);
        await child.stop(0);
      } else await child.stop(grace);
      await active.cgroup?.destroy().catch(() => {});
    })();
    return active.stopped;
  }
}

/** Checks the assignment's inputs: each its sha256, all together under the cap. */
function checkInputs(a: JobAssignment): { name: string; data: Buffer }[] {
  let total = 0;
  return a.inputs.map((input) => {
    const data = Buffer.from(input.data_base64, "base64");
    total += data.length;
    if (total > MAX_JOB_INPUT_BYTES)
      throw new Beta9Error(
        "payload_too_large",
        `the job's inputs are over ${formatBytes(MAX_JOB_INPUT_BYTES)} together`,
      );
    const sha = createHash("sha256").update(data).digest("hex");
    if (sha !== input.sha256)
      throw new Beta9Error(
        "bad_request",
        `input ${input.name} does not match its sha256 (${input.sha256}; its bytes hash to ${sha}): upload it again`,
      );
    return { name: input.name, data };
  });
}

/** A line cut to MAX_JOB_LOG_LINE_BYTES of UTF-8, saying how much was cut. */
function cutToBytes(line: string): string {
  const bytes = Buffer.from(line);
  if (bytes.length <= MAX_JOB_LOG_LINE_BYTES) return line;
  const note = ` [line cut: ${bytes.length - MAX_JOB_LOG_LINE_BYTES + 64} more bytes dropped]`;
  return `${bytes
    .subarray(0, MAX_JOB_LOG_LINE_BYTES - 64)
    .toString("utf8")
    .replace(/\uFFFD$/, "")}…${note}`;
}

/** Pids in the process group `pgid`, bwrap's own processes left out. */
async function groupMembers(pgid: number): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, "utf8").catch(() => "");
    const close = stat.lastIndexOf(")");
    const comm = stat.slice(stat.indexOf("(") + 1, close);
    const pgrp = Number(stat.slice(close + 2).split(" ")[2]);
    if (pgrp === pgid && comm !== "bwrap") pids.push(Number(name));
  }
  return pids;
}

async function chownTree(dir: string, id: number): Promise<void> {
  await chown(dir, id, id);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await chownTree(path, id);
    else await chown(path, id, id);
  }
}

/** The files under `out`, hashed; a sentence instead when they are over the cap together. */
async function collectOutputs(
  out: string,
  maxBytes: number,
): Promise<{ name: string; sha256: string; size: number }[] | string> {
  const files: { name: string; path: string; size: number }[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      // Links are not followed: a job must not announce the agent's files as its outputs.
      else if (entry.isFile()) files.push({ name: relative(out, path), path, size: (await stat(path)).size });
    }
  };
  await walk(out);
  const unnamed = files.find((f) => !OUTPUT_NAME.test(f.name));
  if (unnamed !== undefined)
    return `the job left an output whose name cannot travel (${JSON.stringify(unnamed.name)}): use letters, digits, ".", "_", "-", " " and "/"`;
  const total = files.reduce((n, f) => n + f.size, 0);
  if (total > maxBytes)
    return `the job's outputs are ${formatBytes(total)}, over the cap of ${formatBytes(maxBytes)}: none were kept`;
  const result = [];
  for (const f of files.sort((x, y) => x.name.localeCompare(y.name))) {
    const hash = createHash("sha256");
    for await (const chunk of createReadStream(f.path)) hash.update(chunk as Buffer);
    result.push({ name: f.name, sha256: hash.digest("hex"), size: f.size });
  }
  return result;
}

function formatBytes(n: number): string {
  if (n >= 1024 ** 3 && n % 1024 ** 3 === 0) return `${n / 1024 ** 3} GiB`;
  if (n >= 1024 ** 2) return `${Math.round((n / 1024 ** 2) * 10) / 10} MiB`;
  if (n >= 1024) return `${Math.round((n / 1024) * 10) / 10} KiB`;
  return `${n} bytes`;
}

function formatSeconds(s: number): string {
  if (s % 3600 === 0) return `${s / 3600}h`;
  if (s % 60 === 0) return `${s / 60}m`;
  return `${s}s`;
}
