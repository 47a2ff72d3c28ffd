// Installable tarballs of Beta9 (scripts/pack runs this on the repository's Node 24): the sources are
// compiled to JavaScript into a staging copy of each package, whose package.json points at the
// compiled files, and `npm pack` runs there. The agent is packed as one minified bundle (scripts/bundle.ts).
// A clone runs its .ts sources, the agent bundled the same way (packages/agent/bin/clone-bundle.js).
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";
import { BUNDLES, bundleProgram, ROOT } from "./bundle.ts";

const OUT = resolve(process.argv[2] ?? join(ROOT, "dist/packages"));
const WORK = join(OUT, ".work");
const COMPILED = join(WORK, "compiled");
const STAGED = join(WORK, "staged");

type Deps = Record<string, string>;
interface Manifest {
  name: string;
  version: string;
  description?: string;
  private?: boolean;
  type?: string;
  exports?: Record<string, string | { types: string; default: string }>;
  bin?: Record<string, string>;
  dependencies?: Deps;
  devDependencies?: Deps;
  [key: string]: unknown;
}

/** The packed packages, each after the ones it depends on (a program bundles its staged workspace deps). */
const PACKAGES = ["protocol", "http", "store", "sdk", "cli", "gateway", "agent"] as const;
/** Each program's entry module under src/, run by its bin. */
const ENTRY: Record<string, string> = { b9: "bin.js", b9gateway: "main.js", b9agent: "main.js" };

/** Files of a package's bin/ that its installed shim imports (clone-bundle.js is for a clone only). */
const SHIM_HELPERS: Record<string, string[]> = { agent: ["malloc.js"] };

const rootManifest = readJson(join(ROOT, "package.json"));
/** The Node 24 an installed program runs on when the machine's own node is older (as the repo pins it). */
const NODE_VERSION = rootManifest.devDependencies?.node;
if (!NODE_VERSION)
  fail("package.json has no devDependencies.node: the version of Node 24 the programs bring");

rmSync(WORK, { recursive: true, force: true });
mkdirSync(OUT, { recursive: true });

// Libraries get declaration files; the programs' own files need none (and ink's types would not name).
const tsc = join(ROOT, "node_modules/typescript/bin/tsc");
for (const config of ["tsconfig.build-libraries.json", "tsconfig.build.json"]) {
  console.error(`pack: compiling (${config})…`);
  run(process.execPath, [tsc, "-p", join(ROOT, config), "--outDir", COMPILED], ROOT);
}

const tarballs: string[] = [];
for (const dir of PACKAGES) {
  const stage = join(STAGED, dir);
  const manifest = readJson(join(ROOT, "packages", dir, "package.json"));
  const bundle = BUNDLES[dir];
  if (bundle) await packBundle(dir, stage);
  else cpSync(join(COMPILED, dir, "src"), join(stage, "src"), { recursive: true });
  for (const file of ["README.md", "LICENSE"]) {
    const from = existsSync(join(ROOT, "packages", dir, file))
      ? join(ROOT, "packages", dir, file)
      : join(ROOT, file);
    if (existsSync(from)) cpSync(from, join(stage, file));
  }

  const closure = workspaceClosure(manifest);
  // A bundle carries its workspace packages inside it.
  const workspaceDeps = bundle ? [] : closure;
  const dependencies: Deps = {};
  for (const m of [manifest, ...closure.map((d) => readJson(join(ROOT, "packages", d, "package.json")))]) {
    for (const [name, version] of Object.entries(m.dependencies ?? {})) {
      if (name.startsWith("@beta9/")) continue;
      if (bundle && !bundle.external.includes(name)) continue;
      // The bundled workspace packages find their dependencies at the top of the installed program.
      if (dependencies[name] && dependencies[name] !== version)
        fail(`${m.name} wants ${name}@${version} but another bundled package wants ${dependencies[name]}`);
      dependencies[name] = version;
    }
  }
  for (const dep of workspaceDeps) {
    // Unpublished: each tarball carries the compiled workspace packages it needs.
    const bundled = join(stage, "node_modules/@beta9", dep);
    cpSync(join(STAGED, dep), bundled, {
      recursive: true,
      filter: (src) => !src.startsWith(join(STAGED, dep, "node_modules")),
    });
    // npm takes whatever a bundled package depends on to be in the bundle too (it left them empty):
    // the program itself lists those dependencies, and the bundled copy finds them one folder up.
    const { dependencies: _, bundleDependencies: __, ...rest } = readJson(join(bundled, "package.json"));
    writeFileSync(join(bundled, "package.json"), `${JSON.stringify(rest, null, 2)}\n`);
    dependencies[`@beta9/${dep}`] = readJson(join(ROOT, "packages", dep, "package.json")).version;
  }

  const staged: Manifest = {
    name: manifest.name,
    version: manifest.version,
    ...(manifest.description ? { description: manifest.description } : {}),
    license: rootManifest.license,
    type: "module",
    exports: stagedExports(manifest.exports ?? {}),
    engines: { node: ">=18" },
    dependencies,
    ...(workspaceDeps.length ? { bundleDependencies: workspaceDeps.map((d) => `@beta9/${d}`) } : {}),
  };
  if (manifest.bin) {
    dependencies.node = NODE_VERSION;
    staged.bin = {};
    for (const name of Object.keys(manifest.bin)) {
      const entry = ENTRY[name];
      if (!entry) fail(`no entry module known for the bin ${name}`);
      staged.bin[name] = `bin/${name}.js`;
      mkdirSync(join(stage, "bin"), { recursive: true });
      writeFileSync(join(stage, "bin", `${name}.js`), shim(name, entry), { mode: 0o755 });
    }
    // What the shim imports beside it (the agent's malloc settings) goes along with it.
    for (const file of SHIM_HELPERS[dir] ?? [])
      cpSync(join(ROOT, "packages", dir, "bin", file), join(stage, "bin", file));
  }
  if (dir === "gateway") {
    const ui = join(ROOT, "packages/ui/dist");
    if (existsSync(join(ui, "index.html"))) cpSync(ui, join(stage, "ui"), { recursive: true });
    else
      console.error(
        "pack: packages/ui/dist is not built (scripts/setup builds it): the gateway is packed without its dashboard",
      );
  }
  writeFileSync(join(stage, "package.json"), `${JSON.stringify(staged, null, 2)}\n`);

  const packed = JSON.parse(
    run("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", OUT], stage),
  ) as { filename: string }[];
  const file = packed[0]?.filename;
  if (!file) fail(`npm pack wrote no tarball for ${manifest.name}`);
  tarballs.push(join(OUT, file.replace(/^@/, "").replace("/", "-")));
}
rmSync(WORK, { recursive: true, force: true });
for (const t of tarballs) console.log(t);

/**
 * Bundle a program's entries into `stage/src` (scripts/bundle.ts, minified) and write the licences of
 * the packages bundled into it to `stage/THIRD_PARTY_LICENSES.txt`.
 */
async function packBundle(dir: string, stage: string): Promise<void> {
  console.error(`pack: bundling ${dir} (esbuild)…`);
  const metafile = await bundleProgram(dir, join(stage, "src"), false);
  const packages = new Map<string, string>();
  for (const input of Object.keys(metafile.inputs)) {
    const parts = resolve(ROOT, input).split(sep);
    const at = parts.lastIndexOf("node_modules");
    if (at < 0) continue;
    const depth = parts[at + 1]?.startsWith("@") ? 3 : 2;
    const root = parts.slice(0, at + depth).join(sep);
    packages.set(relative(join(ROOT, "node_modules"), root), root);
  }
  const notices: string[] = [];
  for (const [name, root] of [...packages].sort(([a], [b]) => a.localeCompare(b))) {
    const m = readJson(join(root, "package.json"));
    const file = readdirSync(root).find((f) => /^(licen[cs]e|copying)/i.test(f));
    notices.push(
      `${name} ${m.version} (${String(m.license ?? "see its package")})\n\n` +
        (file ? readFileSync(join(root, file), "utf8").trim() : "(no licence file in the package)"),
    );
  }
  writeFileSync(
    join(stage, "THIRD_PARTY_LICENSES.txt"),
    `Packages bundled into this program's src/, with their licences.\n\n${notices.join(`\n\n${"-".repeat(72)}\n\n`)}\n`,
  );
}

/** The workspace packages `m` needs, directly or through another, each once, dependencies first. */
function workspaceClosure(m: Manifest, seen = new Set<string>()): string[] {
  const out: string[] = [];
  for (const name of Object.keys(m.dependencies ?? {})) {
    if (!name.startsWith("@beta9/")) continue;
    const dir = name.slice("@beta9/".length);
    if (seen.has(dir)) continue;
    seen.add(dir);
    out.push(...workspaceClosure(readJson(join(ROOT, "packages", dir, "package.json")), seen), dir);
  }
  return out;
}

/** `./src/x.ts` becomes the compiled `./src/x.js` with its `./src/x.d.ts`. */
function stagedExports(
  exports: NonNullable<Manifest["exports"]>,
): Record<string, { types: string; default: string }> {
  const out: Record<string, { types: string; default: string }> = {};
  for (const [key, path] of Object.entries(exports)) {
    if (typeof path !== "string") fail(`export ${key} is not a path to a .ts file`);
    out[key] = { types: path.replace(/\.ts$/, ".d.ts"), default: path.replace(/\.ts$/, ".js") };
  }
  return out;
}

/**
 * A bin that any Node from 18 parses: on Node 24 it runs the program; on an older one (an OS
 * package's node) it runs itself again on the Node 24 that came with it (npm package "node").
 */
function shim(name: string, entry: string): string {
  const before =
    name === "b9agent"
      ? `  // Started again with its malloc settings when it runs the agent (bin/malloc.js).
  const { withAgentMalloc } = await import("./malloc.js");
  withAgentMalloc();
  // Compiled code is kept on disk: the agent and its engine processes start faster the second time.
  const module = await import("node:module");
  module.enableCompileCache?.(
    process.env.NODE_COMPILE_CACHE || join(homedir(), ".cache", "beta9", "node-compile-cache"),
  );
`
      : name === "b9gateway"
        ? `  // The dashboard packed beside the program, unless BETA9_UI_DIR names another.
  const ui = fileURLToPath(new URL("../ui/", import.meta.url));
  if (!process.env.BETA9_UI_DIR && existsSync(join(ui, "index.html"))) process.env.BETA9_UI_DIR = ui;
`
        : "";
  return `#!/usr/bin/env node
// ${name}, installed from its package (scripts/pack writes this file).
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { isatty } from "node:tty";
import { fileURLToPath } from "node:url";

const NEEDED = 24;
const REEXEC = "BETA9_NODE_REEXEC";

if (Number(process.versions.node.split(".")[0]) >= NEEDED) {
  delete process.env[REEXEC];
${before}  await import("../src/${entry}");
} else {
  const node = nodeWithPackage();
  if (!node || process.env[REEXEC]) {
    const found = node ? \`\${node} is not Node \${NEEDED} either\` : 'the npm package "node" installed with it is missing';
    process.stderr.write(
      \`${name}: needs Node.js \${NEEDED} and runs on \${process.versions.node} here; \${found}: reinstall ${name} with npm install -g, install scripts allowed, so it brings Node \${NEEDED}, or put Node \${NEEDED} first on PATH\\n\`,
    );
    process.exit(1);
  }
  const child = spawn(node, [...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: "inherit",
    env: { ...process.env, [REEXEC]: "1" },
  });
  // A terminal's Ctrl-C already reaches the child (same process group): sending it again would be a
  // second Ctrl-C, which stops the gateway without waiting for answers under way.
  const fromTerminal = new Set(isatty(0) ? ["SIGINT", "SIGQUIT"] : []);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR2"]) {
    process.on(signal, () => {
      if (!fromTerminal.has(signal)) child.kill(signal);
    });
  }
  child.on("error", (err) => {
    process.stderr.write(\`${name}: could not start \${node}: \${err.message}\\n\`);
    process.exit(1);
  });
  child.on("exit", (code, signal) => {
    if (signal) {
      // Die of the same signal, so whoever started this sees what happened to the program.
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    } else process.exit(code ?? 1);
  });
}

/** The node binary of the npm package "node" (Node ${NODE_VERSION}) installed beside this program. */
function nodeWithPackage() {
  try {
    const bin = join(dirname(createRequire(import.meta.url).resolve("node/package.json")), "bin", "node");
    return existsSync(bin) ? bin : undefined;
  } catch {
    return undefined;
  }
}
`;
}

function readJson(path: string): Manifest {
  return JSON.parse(readFileSync(path, "utf8")) as Manifest;
}

function run(command: string, args: string[], cwd: string): string {
  try {
    return execFileSync(command, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  } catch (err) {
    const e = err as { stdout?: string; status?: number | null };
    fail(`${command} ${args.join(" ")} failed (exit ${e.status}) in ${cwd}:\n${e.stdout ?? ""}`);
  }
}

function fail(message: string): never {
  console.error(`pack: ${message}`);
  process.exit(1);
}
