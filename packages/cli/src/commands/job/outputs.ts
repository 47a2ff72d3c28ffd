import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { dirname, resolve, sep } from "node:path";
import type { JobOutputView } from "@beta9/sdk";
import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { bytes } from "../../format.ts";
import { JSON_FLAG_HELP, table } from "../../output.ts";
import { UserError } from "../../user-error.ts";

interface Options {
  download?: string;
  json?: boolean;
}

export function addJobOutputs(job: Command, ctx: Context): void {
  job
    .command("outputs")
    .description("list the files a job left under $B9_OUTPUT_DIR, or download them")
    .argument("<id>", "the job's id, from b9 job list")
    .option("--download <dir>", "save them under this folder, each checked against its sha256")
    .option("--json", JSON_FLAG_HELP)
    .action(async (id: string, opts: Options) => {
      const { outputs } = await ctx.client().jobs.outputs(id);
      if (opts.download !== undefined) {
        for (const output of outputs) await download(ctx, id, output, opts.download);
        if (opts.json) return ctx.printJson({ outputs });
        const total = outputs.reduce((n, o) => n + o.size, 0);
        return ctx.print(
          `Downloaded ${outputs.length} ${outputs.length === 1 ? "output" : "outputs"} of job ${id} to ${opts.download} (${bytes(total)}), each matching its sha256.`,
        );
      }
      if (opts.json) return ctx.printJson({ outputs });
      if (outputs.length === 0)
        return ctx.note(`Job ${id} has no outputs (files it writes under $B9_OUTPUT_DIR).`);
      ctx.print(
        table(
          ["NAME", "SIZE", "SHA256"],
          outputs.map((o) => [o.name, bytes(o.size), o.sha256]),
        ),
      );
    });
}

/**
 * Writes one output to DIR/NAME by way of a temporary file, hashing as it goes; a file whose sha256
 * or size differs from the gateway's list is removed, never left looking complete.
 */
async function download(ctx: Context, id: string, output: JobOutputView, dir: string): Promise<void> {
  const root = resolve(dir);
  const path = resolve(root, output.name);
  if (!path.startsWith(root + sep))
    throw new UserError(`the output name ${JSON.stringify(output.name)} leads outside ${dir}; not saved`);
  await mkdir(dirname(path), { recursive: true });
  const partial = `${path}.part`;
  const hash = createHash("sha256");
  let size = 0;
  const file = createWriteStream(partial);
  try {
    for await (const chunk of ctx.client().jobs.outputStream(id, output.name)) {
      hash.update(chunk);
      size += chunk.length;
      if (!file.write(chunk)) await new Promise<void>((r) => file.once("drain", () => r()));
    }
    await new Promise<void>((done, fail) =>
      file.end((error?: Error | null) => (error ? fail(error) : done())),
    );
    const sha256 = hash.digest("hex");
    if (sha256 !== output.sha256 || size !== output.size) {
      throw new UserError(
        `output ${output.name} of job ${id} arrived as ${bytes(size)} with sha256 ${sha256}, not the ${bytes(output.size)} with sha256 ${output.sha256} the gateway listed; it was not kept`,
        "download it again; if it differs again, the gateway's copy is damaged",
      );
    }
    await rename(partial, path);
  } catch (error) {
    file.destroy();
    await rm(partial, { force: true });
    throw error;
  }
}
