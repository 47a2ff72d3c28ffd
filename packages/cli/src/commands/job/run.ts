import { readFileSync, statSync } from "node:fs";
import { basename } from "node:path";
import {
  type CreateJob,
  type GpuRequirement,
  JOB_RETRY_CAUSES,
  type JobRetryCause,
  type JobView,
  MAX_JOB_INPUT_BYTES,
} from "@beta9/sdk";
import { type Command, InvalidArgumentError } from "commander";
import type { Context } from "../../context.ts";
import { parseDuration } from "../../duration.ts";
import { bytes } from "../../format.ts";
import { Interrupted, UserError } from "../../user-error.ts";
import {
  countries,
  GPUS,
  invalid,
  oneOf,
  PREFER_HELP,
  prefer,
  region,
  size,
  wholeNumber,
} from "../model/deploy.ts";
import { followAgainHint, followLogs, jobOutcome } from "./follow.ts";

/** The gateway's limits (packages/protocol/src/jobs.ts), checked here so a mistake is named before any upload. */
const MAX_TIMEOUT_SECONDS = 7 * 86_400;
const MAX_RETRIES = 10;
const MAX_PRIORITY = 1000;
const MAX_CPU = 1024;
const MAX_REQUIREMENTS_CHARS = 65_536;

interface Options {
  gpu?: GpuRequirement;
  vram?: number;
  cpu?: number;
  memory?: number;
  pool?: string;
  region?: "eu";
  prefer?: "low-carbon";
  country?: string[];
  timeout?: number;
  retries?: number;
  retryOn?: JobRetryCause[];
  priority?: number;
  python?: string;
  packages?: string[];
  requirements?: string;
  env?: Array<[string, string]>;
  input?: string[];
  idempotencyKey?: string;
  detach?: boolean;
  json?: boolean;
}

export function addJobRun(job: Command, ctx: Context): void {
  job
    .command("run")
    .description("run a command on a machine that fits, printing its output until it ends (Ctrl+C detaches)")
    .argument("<command...>", "the command and its arguments: b9 job run -- python3 train.py --epochs 3")
    // Everything from the command on is the command's, its options included.
    .passThroughOptions()
    .option(
      "--gpu <kind>",
      `GPU it needs: ${Object.keys(GPUS).join(", ")} (default none)`,
      oneOf("GPU kind", GPUS),
    )
    .option("--vram <size>", "GPU memory it needs, e.g. 24GB or 16GiB (implies --gpu any)", size)
    .option("--cpu <n>", "CPU cores it needs, e.g. 4 or 0.5", cpu)
    .option("--memory <size>", "memory it needs and may use, e.g. 8GB", size)
    .option("--pool <pool>", "pool whose machines may run it (default external)")
    .option("--region <region>", "only machines in this region: eu", region)
    .option("--country <codes>", "only machines in these countries, ISO 3166 codes: DE,FR", countries)
    .option("--prefer <what>", PREFER_HELP.replace("b9 model ps", "b9 job show"), prefer)
    .option(
      "--timeout <duration>",
      "stop it after it ran this long: 30m, 2h, 7d at most (default 1h)",
      timeout,
    )
    .option(
      "--retries <n>",
      `run it again when it fails or its machine is lost, up to ${MAX_RETRIES} times`,
      wholeNumber(0, MAX_RETRIES),
    )
    .option(
      "--retry-on <causes>",
      "which ends are retried, comma-separated: lost,out_of_memory,exit,error (default all)",
      retryOn,
    )
    .option("--priority <n>", `higher runs first, -${MAX_PRIORITY} to ${MAX_PRIORITY} (default 0)`, priority)
    .option("--python <version>", "a Python environment of this version, e.g. 3.12", python)
    .option(
      "--packages <list>",
      "Python packages to install in it, comma-separated: numpy,torch==2.5",
      packages,
    )
    .option("--requirements <file>", "a requirements.txt to install in it", requirements)
    .option("--env <name=value>", "an environment variable for the command (repeatable)", env)
    .option("--input <file>", "a file put in the job's directory before it starts (repeatable)", collect)
    .option(
      "--idempotency-key <key>",
      "submitting again with the same key gives the same job, not a second one",
    )
    .option("--detach", "print the job's id and return at once, without following its output")
    .option(
      "--json",
      "print the job as JSON (with --detach), or its log lines then the ended job, one JSON object a line",
    )
    .addHelpText(
      "after",
      "\nExits with the command's exit code when it fails, 1 when it ends otherwise (timed out, cancelled, lost).",
    )
    .action(async (command: string[], opts: Options) => {
      if (opts.packages && opts.requirements !== undefined)
        throw new UserError(
          "give --packages or --requirements, not both",
          "list the packages in the requirements file",
        );
      if (opts.gpu === "none" && opts.vram !== undefined)
        throw new UserError("--vram asks for GPU memory, but --gpu none asks for no GPU", "drop one of them");
      const inputs = readInputs(opts.input ?? []);
      const client = ctx.client();
      const uploaded = [];
      for (const input of inputs) {
        const { sha256 } = await client.jobs.uploadInput(input.data);
        uploaded.push({ name: input.name, sha256 });
      }
      const created = await client.jobs.create(spec(command, opts, uploaded));
      if (opts.detach) {
        if (opts.json) return ctx.printJson(created);
        return ctx.print(
          `Job ${created.id} queued. Follow it with b9 job logs ${created.id} -f; stop it with b9 job cancel ${created.id}.`,
        );
      }
      if (!opts.json)
        ctx.note(
          `Job ${created.id} ${String(created.state).toLowerCase()}; following its output (Ctrl+C detaches).`,
        );
      const { job, lastSeq } = await followLogs(ctx, created.id, {
        json: opts.json === true,
        follow: true,
        explainWaiting: opts.json !== true,
      });
      if (!job) {
        ctx.note(followAgainHint(created.id, lastSeq));
        throw new Interrupted();
      }
      finish(ctx, job, opts.json === true);
    });
}

function spec(command: string[], opts: Options, inputs: CreateJob["inputs"]): CreateJob {
  const resources: NonNullable<CreateJob["resources"]> = {
    ...(opts.gpu !== undefined || opts.vram !== undefined ? { gpu: opts.gpu ?? "any" } : {}),
    ...(opts.vram !== undefined ? { min_vram_bytes: opts.vram } : {}),
    ...(opts.cpu !== undefined ? { cpu: opts.cpu } : {}),
    ...(opts.memory !== undefined ? { memory_bytes: opts.memory } : {}),
  };
  const environment: NonNullable<CreateJob["environment"]> = {
    ...(opts.python !== undefined ? { python: opts.python } : {}),
    ...(opts.packages !== undefined ? { packages: opts.packages } : {}),
    ...(opts.requirements !== undefined ? { requirements: opts.requirements } : {}),
  };
  return {
    command,
    ...(opts.env?.length ? { env: Object.fromEntries(opts.env) } : {}),
    ...(Object.keys(environment).length ? { environment } : {}),
    ...(Object.keys(resources).length ? { resources } : {}),
    ...(opts.pool !== undefined ? { pool: opts.pool } : {}),
    ...(opts.country !== undefined ? { countries: opts.country } : {}),
    ...(opts.region !== undefined ? { region: opts.region } : {}),
    ...(opts.prefer !== undefined ? { prefer: opts.prefer } : {}),
    ...(opts.timeout !== undefined ? { timeout_seconds: opts.timeout } : {}),
    ...(opts.retries !== undefined ? { retries: opts.retries } : {}),
    ...(opts.retryOn !== undefined ? { retry_on: opts.retryOn } : {}),
    ...(opts.priority !== undefined ? { priority: opts.priority } : {}),
    ...(inputs?.length ? { inputs } : {}),
    ...(opts.idempotencyKey !== undefined ? { idempotency_key: opts.idempotencyKey } : {}),
  };
}

/** Prints how the job ended and sets the exit status from it. */
function finish(ctx: Context, job: JobView, json: boolean): void {
  const { status, message } = jobOutcome(job);
  ctx.exitStatus = status;
  if (json) ctx.io.stdout(`${JSON.stringify(job)}\n`);
  else if (message) ctx.io.stderr(`error: ${message}\n`);
  else ctx.note(`Job ${job.id} succeeded.`);
}

interface Input {
  name: string;
  data: Uint8Array;
}

/** Each --input file, read whole; missing, unreadable or too large files are named before anything is sent. */
function readInputs(paths: string[]): Input[] {
  const inputs: Input[] = [];
  const names = new Set<string>();
  let total = 0;
  for (const path of paths) {
    let fileSize: number;
    try {
      const stat = statSync(path);
      if (!stat.isFile())
        throw new UserError(
          `--input ${path} is not a file`,
          "pass a file; put a folder's files in an archive first",
        );
      fileSize = stat.size;
    } catch (error) {
      if (error instanceof UserError) throw error;
      throw new UserError(
        `--input ${path} cannot be read: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
        "check the path",
      );
    }
    total += fileSize;
    if (total > MAX_JOB_INPUT_BYTES) {
      throw new UserError(
        `the inputs come to more than ${bytes(MAX_JOB_INPUT_BYTES)} (${path} alone is ${bytes(fileSize)}); a job takes at most ${bytes(MAX_JOB_INPUT_BYTES)} of inputs`,
        "have the job fetch large data itself, or split it across jobs",
      );
    }
    const name = basename(path);
    if (names.has(name))
      throw new UserError(
        `two --input files are named ${name}`,
        "rename one: the job sees inputs by their file name",
      );
    names.add(name);
    inputs.push({ name, data: readFileSync(path) });
  }
  return inputs;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function env(value: string, previous: Array<[string, string]> | undefined): Array<[string, string]> {
  const eq = value.indexOf("=");
  if (eq < 0) throw new InvalidArgumentError(`"${value}" has no "="; write it as NAME=value`);
  const name = value.slice(0, eq);
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(name)) {
    throw new InvalidArgumentError(
      `"${name}" is not a variable name: letters, digits and _, not starting with a digit`,
    );
  }
  return [...(previous ?? []).filter(([n]) => n !== name), [name, value.slice(eq + 1)]];
}

function timeout(value: string): number {
  if (value.trim().startsWith("-"))
    throw new InvalidArgumentError(`the timeout "${value}" is negative; give a duration such as 30m or 2h`);
  let seconds: number;
  try {
    seconds = parseDuration(value);
  } catch (error) {
    throw invalid(error);
  }
  if (seconds > MAX_TIMEOUT_SECONDS)
    throw new InvalidArgumentError(`the timeout "${value}" is over the most a job may run, 7d`);
  return seconds;
}

function cpu(value: string): number {
  const n = Number(value.trim());
  if (!/^\d+(\.\d+)?$/.test(value.trim()) || !(n > 0) || n > MAX_CPU) {
    throw new InvalidArgumentError(`"${value}" is not a number of CPU cores above 0 and at most ${MAX_CPU}`);
  }
  return n;
}

function priority(value: string): number {
  const n = Number(value.trim());
  if (!/^-?\d+$/.test(value.trim()) || Math.abs(n) > MAX_PRIORITY) {
    throw new InvalidArgumentError(
      `"${value}" is not a whole number from -${MAX_PRIORITY} to ${MAX_PRIORITY}`,
    );
  }
  return n;
}

function python(value: string): string {
  const v = value.trim();
  if (!/^3\.[0-9]{1,2}$/.test(v))
    throw new InvalidArgumentError(`"${value}" is not a Python version such as 3.12`);
  return v;
}

function packages(value: string): string[] {
  const list = value
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean);
  if (list.length === 0)
    throw new InvalidArgumentError("name at least one package, e.g. numpy or numpy,torch");
  return list;
}

function requirements(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new InvalidArgumentError(
      `${path} cannot be read: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
  if (text.length > MAX_REQUIREMENTS_CHARS) {
    throw new InvalidArgumentError(
      `${path} is longer than ${MAX_REQUIREMENTS_CHARS} characters, the most a job's requirements may be`,
    );
  }
  return text;
}

/** `--retry-on lost,exit`: the causes a retry is for, each one of JOB_RETRY_CAUSES. */
function retryOn(value: string): JobRetryCause[] {
  const causes = value
    .split(",")
    .map((c) => c.trim())
    .filter(Boolean);
  for (const c of causes) {
    if (!(JOB_RETRY_CAUSES as readonly string[]).includes(c))
      throw new InvalidArgumentError(
        `unknown retry cause "${c}"; choose from ${JOB_RETRY_CAUSES.join(", ")}`,
      );
  }
  if (causes.length === 0)
    throw new InvalidArgumentError(`name at least one of ${JOB_RETRY_CAUSES.join(", ")}`);
  return [...new Set(causes)] as JobRetryCause[];
}
