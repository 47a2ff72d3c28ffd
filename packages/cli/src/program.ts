import { Command, CommanderError } from "commander";
import pkg from "../package.json" with { type: "json" };
import { addAuditExport } from "./commands/audit/export.ts";
import { addAuditList } from "./commands/audit/list.ts";
import { addAuditVerify } from "./commands/audit/verify.ts";
import { addCarbonReport } from "./commands/carbon/report.ts";
import { addChat } from "./commands/chat.ts";
import { addJobCancel } from "./commands/job/cancel.ts";
import { addJobList } from "./commands/job/list.ts";
import { addJobLogs } from "./commands/job/logs.ts";
import { addJobOutputs } from "./commands/job/outputs.ts";
import { addJobRun } from "./commands/job/run.ts";
import { addJobShow } from "./commands/job/show.ts";
import { addKeyCreate } from "./commands/key/create.ts";
import { addKeyLimit } from "./commands/key/limit.ts";
import { addKeyList } from "./commands/key/list.ts";
import { addKeyRevoke } from "./commands/key/revoke.ts";
import { addLogin } from "./commands/login.ts";
import { addLogout } from "./commands/logout.ts";
import { addMachineCordon } from "./commands/machine/cordon.ts";
import { addMachineDrain } from "./commands/machine/drain.ts";
import { addMachineList } from "./commands/machine/list.ts";
import { addMachineRemove } from "./commands/machine/remove.ts";
import { addMachineSet } from "./commands/machine/set.ts";
import { addMachineShow } from "./commands/machine/show.ts";
import { addMachineUncordon } from "./commands/machine/uncordon.ts";
import { addModelDeploy } from "./commands/model/deploy.ts";
import { addModelList } from "./commands/model/list.ts";
import { addModelPs } from "./commands/model/ps.ts";
import { addModelPull } from "./commands/model/pull.ts";
import { addModelRemove } from "./commands/model/remove.ts";
import { addModelShow } from "./commands/model/show.ts";
import { addPoolCreate } from "./commands/pool/create.ts";
import { addPoolList } from "./commands/pool/list.ts";
import { addReportAiAct } from "./commands/report/ai-act.ts";
import { addTokenCreate } from "./commands/token/create.ts";
import { addTokenList } from "./commands/token/list.ts";
import { addTokenRevoke } from "./commands/token/revoke.ts";
import { addUsage } from "./commands/usage.ts";
import { addWorkspaceCreate } from "./commands/workspace/create.ts";
import { addWorkspaceLimit } from "./commands/workspace/limit.ts";
import { addWorkspaceList } from "./commands/workspace/list.ts";
import { addWorkspaceRemove } from "./commands/workspace/remove.ts";
import { addWorkspaceSet } from "./commands/workspace/set.ts";
import { Context } from "./context.ts";
import type { CliIO } from "./io.ts";
import { reportError } from "./report.ts";

/**
 * The whole `b9` program, printing through `io`. Errors thrown by actions propagate out of
 * `parseAsync`; `run` turns them into messages and an exit status.
 */
export function buildProgram(io: CliIO, ctx: Context = new Context(io)): Command {
  const program = new Command("b9")
    .description(
      "Manage a Beta9 gateway (machines, pools, join tokens, workspaces, API keys, deployed models, jobs, usage) and chat with its models.",
    )
    .version(pkg.version, "-V, --version")
    .addHelpText(
      "after",
      "\nSettings: BETA9_GATEWAY and BETA9_API_KEY, else the file b9 login writes\n" +
        "(~/.config/beta9/cli.json, or $BETA9_CLI_CONFIG). Every command takes --json.",
    )
    // Set before any subcommand exists: subcommands made with .command() inherit these.
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout(s), writeErr: (s) => io.stderr(s) })
    .showHelpAfterError("(add --help for usage)")
    // b9's own options come before its command, so b9 job run can pass a command's options through.
    .enablePositionalOptions();

  addLogin(program, ctx);
  addLogout(program, ctx);
  // A single sign-on token about to end is renewed before any command that uses it.
  program.hook("preAction", async (_program, action) => {
    if (action.name() !== "login" && action.name() !== "logout") await ctx.renewSignIn();
  });

  const token = program.command("token").description("join tokens, with which machines join a pool");
  addTokenCreate(token, ctx);
  addTokenList(token, ctx);
  addTokenRevoke(token, ctx);

  const machine = program.command("machine").description("machines that joined the gateway");
  addMachineList(machine, ctx);
  addMachineShow(machine, ctx);
  addMachineCordon(machine, ctx);
  addMachineUncordon(machine, ctx);
  addMachineDrain(machine, ctx);
  addMachineRemove(machine, ctx);
  addMachineSet(machine, ctx);

  const key = program.command("key").description("API keys for people, scripts and applications");
  addKeyCreate(key, ctx);
  addKeyList(key, ctx);
  addKeyLimit(key, ctx);
  addKeyRevoke(key, ctx);

  const pool = program.command("pool").description("pools of machines");
  addPoolList(pool, ctx);
  addPoolCreate(pool, ctx);

  const workspace = program
    .command("workspace")
    .description("workspaces: each has its own deployments, API keys and usage");
  addWorkspaceList(workspace, ctx);
  addWorkspaceCreate(workspace, ctx);
  addWorkspaceLimit(workspace, ctx);
  addWorkspaceRemove(workspace, ctx);
  addWorkspaceSet(workspace, ctx);

  const model = program.command("model").description("models your workspace keeps servable (deployments)");
  addModelDeploy(model, ctx);
  addModelList(model, ctx);
  addModelShow(model, ctx);
  addModelRemove(model, ctx);
  addModelPs(model, ctx);
  addModelPull(model, ctx);

  const job = program
    .command("job")
    .description("commands run on a machine that fits: run, follow, cancel, fetch outputs")
    .enablePositionalOptions();
  addJobRun(job, ctx);
  addJobList(job, ctx);
  addJobShow(job, ctx);
  addJobLogs(job, ctx);
  addJobCancel(job, ctx);
  addJobOutputs(job, ctx);

  addChat(program, ctx);
  addUsage(program, ctx);
  const audit = program
    .command("audit")
    .description("the gateway's tamper-evident audit log: list, export and verify it");
  addAuditList(audit, ctx);
  addAuditExport(audit, ctx);
  addAuditVerify(audit, ctx);
  const carbon = program.command("carbon").description("the energy and emissions of your answers and jobs");
  addCarbonReport(carbon, ctx);
  const report = program.command("report").description("documentation built from what the gateway recorded");
  addReportAiAct(report, ctx);

  return program;
}

/** Runs `b9` with the arguments after the program name; resolves to the exit status. */
export async function run(argv: readonly string[], io: CliIO): Promise<number> {
  const ctx = new Context(io);
  const program = buildProgram(io, ctx);
  let command: string[] = [];
  program.hook("preAction", (_root, action) => {
    command = commandPath(action);
  });
  try {
    await program.parseAsync([...argv], { from: "user" });
    return ctx.exitStatus;
  } catch (error) {
    // Commander has already printed usage mistakes and help; only its verdict is left.
    if (error instanceof CommanderError) return error.exitCode;
    return reportError(error, io, command);
  }
}

/** ["machine", "list"] for `b9 machine list`. */
function commandPath(command: Command): string[] {
  const names: string[] = [];
  for (let c: Command | null = command; c?.parent; c = c.parent) names.unshift(c.name());
  return names;
}
