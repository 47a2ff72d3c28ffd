import { realpath, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { isAbsolute, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { ModelError } from "./model-error.ts";

/*
 * What a pull request may name: where the weights come from (a source) and what clients will call
 * them (a model name). Both arrive from the network, so both are checked before anything touches
 * the disk or the network: names end up in file names, sources in paths and URLs.
 */

export type ModelSource =
  /** A file on this machine, inside the store or a directory the owner listed; `path` is its real path. */
  | { kind: "local"; text: string; path: string }
  | { kind: "url"; text: string; url: string }
  | { kind: "hf"; text: string; url: string; repo: string; file: string; revision: string }
  /** Pulled by the Ollama engine itself, not by the store. */
  | { kind: "ollama"; text: string; ollamaName: string };

export interface SourceOptions {
  /** The store's directory: local files inside it are always allowed. */
  storeDir: string;
  /** Directories the machine's owner listed in the config for local model files. */
  allowedDirs?: readonly string[] | undefined;
  /** Where hf: sources are fetched from; a mirror or a test server can stand in. */
  huggingFaceBaseUrl?: string | undefined;
}

export const DEFAULT_HUGGING_FACE_BASE_URL = "https://huggingface.co";
export const MAX_MODEL_NAME_LENGTH = 128;
const MAX_SOURCE_LENGTH = 4096;

function shown(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
}

// ---- model names -----------------------------------------------------------------------------------

const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]*(?::[a-z0-9_][a-z0-9._-]*)?$/;
// Names become file names; these are devices on Windows whatever the extension.
const WINDOWS_DEVICE = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])$/;

/**
 * Check a model name (what clients call the model: "smollm2-135m", "llama3.2:1b") and return its
 * canonical form. Names are case-insensitive and stored lowercase, because they become file names and
 * macOS and Windows file systems would fold case anyway.
 */
export function validateModelName(name: unknown): string {
  const fail = (why: string) =>
    new ModelError(
      "invalid_model_name",
      `model name ${typeof name === "string" ? shown(name) : String(name)} ${why}; use letters, digits, ` +
        `".", "_" and "-", optionally one ":tag", at most ${MAX_MODEL_NAME_LENGTH} characters (e.g. "smollm2-135m" or "llama3.2:1b")`,
    );
  if (typeof name !== "string" || name.length === 0) throw fail("is empty");
  if (name.length > MAX_MODEL_NAME_LENGTH) throw fail("is too long");
  const canonical = name.toLowerCase();
  if (!NAME_PATTERN.test(canonical)) throw fail("has characters that are not allowed");
  if (canonical.includes("..")) throw fail('contains ".."');
  if (canonical.endsWith(".")) throw fail('ends with "."');
  if (WINDOWS_DEVICE.test(canonical.split(/[.:]/)[0]!)) throw fail("is reserved by Windows");
  return canonical;
}

// ---- sources ---------------------------------------------------------------------------------------

const HF_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;
const HF_FILE_SEGMENT = /^[A-Za-z0-9_+][A-Za-z0-9._+-]{0,254}$/;
const HF_REVISION = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$/;
const OLLAMA_SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$/;
const OLLAMA_TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,79}$/;

function invalidSource(text: string, why: string): ModelError {
  return new ModelError(
    "invalid_source",
    `model source ${shown(text)} ${why}. Sources look like /abs/path/model.gguf, https://host/model.gguf, ` +
      "hf:ORG/REPO/FILE.gguf[@REVISION], hf:ORG/REPO[/FOLDER][@REVISION] (a safetensors repository or one of its folders) or ollama:NAME[:TAG]",
  );
}

function parseHuggingFace(text: string, rest: string, baseUrl: string): ModelSource {
  const at = rest.indexOf("@");
  const path = at === -1 ? rest : rest.slice(0, at);
  const revision = at === -1 ? "main" : rest.slice(at + 1);
  const [org, repo, ...file] = path.split("/");
  if (!org || !repo || file.length === 0) throw invalidSource(text, "needs ORG/REPO/FILE");
  if (!HF_NAME.test(org) || !HF_NAME.test(repo) || org.includes("..") || repo.includes("..")) {
    throw invalidSource(text, "has an invalid organization or repository name");
  }
  for (const segment of file) {
    if (!HF_FILE_SEGMENT.test(segment) || segment.includes("..")) {
      throw invalidSource(text, "has an invalid file path");
    }
  }
  if (!file.at(-1)!.toLowerCase().endsWith(".gguf")) throw invalidSource(text, "must name a .gguf file");
  if (!HF_REVISION.test(revision) || revision.includes("..") || revision.endsWith("/")) {
    throw invalidSource(text, "has an invalid revision");
  }
  const base = baseUrl.replace(/\/+$/, "");
  // The revision is one path segment: "refs/pr/1" travels as refs%2Fpr%2F1.
  const url = `${base}/${org}/${repo}/resolve/${encodeURIComponent(revision)}/${file.map(encodeURIComponent).join("/")}`;
  return { kind: "hf", text, url, repo: `${org}/${repo}`, file: file.join("/"), revision };
}

/** A Hugging Face repository (safetensors), or one folder of it, fetched file by file and converted on the machine. */
export interface HfRepoSource {
  text: string;
  /** "ORG/REPO" */
  repo: string;
  /** The folder within it whose files make the model ("" for the top level), without slashes at its ends. */
  folder: string;
  revision: string;
}

/**
 * `hf:ORG/REPO[/FOLDER…][@REVISION]` as a repository source (a path whose last part is not a .gguf
 * file); undefined for any other source (a file, a URL …).
 */
export function parseHfRepoSource(text: string): HfRepoSource | undefined {
  if (!text.startsWith("hf:")) return undefined;
  const rest = text.slice(3);
  const at = rest.indexOf("@");
  const path = at === -1 ? rest : rest.slice(0, at);
  const revision = at === -1 ? "main" : rest.slice(at + 1);
  const parts = path.split("/");
  if (parts.length < 2 || parts.at(-1)!.toLowerCase().endsWith(".gguf")) return undefined;
  const [org, repo, ...folder] = parts as [string, string, ...string[]];
  if (!HF_NAME.test(org) || !HF_NAME.test(repo) || org.includes("..") || repo.includes("..")) {
    throw invalidSource(text, "has an invalid organization or repository name");
  }
  if (folder.some((segment) => !HF_FILE_SEGMENT.test(segment) || segment.includes(".."))) {
    throw invalidSource(text, "has an invalid folder path");
  }
  if (!HF_REVISION.test(revision) || revision.includes("..") || revision.endsWith("/")) {
    throw invalidSource(text, "has an invalid revision");
  }
  return { text, repo: `${org}/${repo}`, folder: folder.join("/"), revision };
}

function parseOllama(text: string, rest: string): ModelSource {
  const colon = rest.lastIndexOf(":");
  const hasTag = colon !== -1;
  const name = hasTag ? rest.slice(0, colon) : rest;
  const tag = hasTag ? rest.slice(colon + 1) : "latest";
  const segments = name.split("/");
  if (segments.length > 3 || segments.some((s) => !OLLAMA_SEGMENT.test(s) || s.includes(".."))) {
    throw invalidSource(text, "has an invalid Ollama model name");
  }
  if (!OLLAMA_TAG.test(tag)) throw invalidSource(text, "has an invalid Ollama tag");
  return { kind: "ollama", text, ollamaName: `${name}:${tag}` };
}

function parseUrl(text: string): ModelSource {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalidSource(text, "is not a valid URL");
  }
  if (!url.hostname) throw invalidSource(text, "has no host");
  // The source is written into the provenance record; credentials do not belong there.
  if (url.username || url.password) throw invalidSource(text, "carries credentials");
  return { kind: "url", text, url: url.href };
}

/**
 * Parse a source string. Local paths are resolved lexically only (`..` collapsed); `resolveSource`
 * also follows symlinks and checks the file, and is what a pull must use.
 */
export function parseSource(text: unknown, options: SourceOptions): ModelSource {
  if (typeof text !== "string" || text.length === 0) throw invalidSource(String(text), "is empty");
  if (text.length > MAX_SOURCE_LENGTH) throw invalidSource(text, "is too long");
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(text)) throw invalidSource(text, "contains control characters");

  if (text.startsWith("hf:")) {
    return parseHuggingFace(text, text.slice(3), options.huggingFaceBaseUrl ?? DEFAULT_HUGGING_FACE_BASE_URL);
  }
  if (text.startsWith("ollama:")) return parseOllama(text, text.slice(7));
  if (/^https?:\/\//i.test(text)) return parseUrl(text);
  if (/^file:/i.test(text)) {
    let path: string;
    try {
      path = fileURLToPath(text);
    } catch {
      throw invalidSource(text, "is not a valid file URL");
    }
    return { kind: "local", text, path: resolve(path) };
  }
  if (text === "~" || text.startsWith("~/"))
    return { kind: "local", text, path: resolve(homedir(), text.slice(2)) };
  if (isAbsolute(text)) return { kind: "local", text, path: resolve(text) };
  if (/^[a-z][a-z0-9+.-]*:/i.test(text)) throw invalidSource(text, `uses an unsupported scheme`);
  throw invalidSource(text, "is a relative path; give an absolute one");
}

/** Parse a source and, for a local file, check where it really is. */
export async function resolveSource(text: unknown, options: SourceOptions): Promise<ModelSource> {
  const source = parseSource(text, options);
  if (source.kind !== "local") return source;
  const roots = [options.storeDir, ...(options.allowedDirs ?? [])];
  return { ...source, path: await checkLocalPath(source.path, roots) };
}

function isInside(child: string, root: string): boolean {
  const rel = relative(root, child);
  return rel !== ".." && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

/**
 * The real path of a local model file, which must be a regular file inside one of `roots` both as
 * written and after symlinks are followed. Nothing outside the roots is touched before refusing.
 */
export async function checkLocalPath(path: string, roots: readonly string[]): Promise<string> {
  const lexical = resolve(path);
  const lexicalRoots = roots.map((r) => resolve(r));
  const realRoots: string[] = [];
  for (const root of lexicalRoots) {
    try {
      realRoots.push(await realpath(root));
    } catch {
      // A listed directory that does not exist allows nothing.
    }
  }
  const notAllowed = (why: string) =>
    new ModelError(
      "path_not_allowed",
      `${shown(path)} ${why}; local models must be inside the model store or a directory listed under models.allowed_dirs in the agent's config`,
    );
  if (!lexicalRoots.some((r) => isInside(lexical, r)) && !realRoots.some((r) => isInside(lexical, r))) {
    throw notAllowed("is outside the allowed directories");
  }
  let real: string;
  try {
    real = await realpath(lexical);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ModelError("invalid_source", `no file at ${shown(path)} (${code ?? "unreadable"})`);
  }
  if (!realRoots.some((r) => isInside(real, r))) throw notAllowed("leads outside the allowed directories");
  const st = await stat(real);
  if (!st.isFile()) throw new ModelError("invalid_source", `${shown(path)} is not a regular file`);
  return real;
}
