import { mkdir, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { tempDir } from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ModelError } from "./model-error.ts";
import { parseHfRepoSource, parseSource, resolveSource, validateModelName } from "./sources.ts";

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof ModelError ? err.code : `not a ModelError: ${String(err)}`;
  }
  return undefined;
}

async function asyncCodeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (err) {
    return err instanceof ModelError ? err.code : `not a ModelError: ${String(err)}`;
  }
  return undefined;
}

describe("validateModelName", () => {
  it("accepts the names clients use, canonically lowercase", () => {
    expect(validateModelName("smollm2-135m")).toBe("smollm2-135m");
    expect(validateModelName("llama3.2:1b")).toBe("llama3.2:1b");
    expect(validateModelName("SmolLM2_135M-Instruct")).toBe("smollm2_135m-instruct");
    expect(validateModelName("qwen2.5:0.5b-instruct-q4_k_m")).toBe("qwen2.5:0.5b-instruct-q4_k_m");
  });

  it.each([
    ["", "empty"],
    ["../etc/passwd", "traversal"],
    ["a/b", "path separator"],
    ["a\\b", "backslash"],
    ["..", "dot-dot"],
    ["a..b", "dot-dot inside"],
    [".hidden", "leading dot"],
    ["model.", "trailing dot"],
    ["x; rm -rf /", "shell"],
    ["$(reboot)", "command substitution"],
    ["`id`", "backticks"],
    ["a|b", "pipe"],
    ["a b", "space"],
    ["a\nb", "newline"],
    ["a:b:c", "two tags"],
    [":latest", "no name"],
    ["con", "windows device"],
    ["nul.gguf", "windows device with extension"],
    ["x".repeat(129), "too long"],
  ])("refuses %j (%s)", (name) => {
    expect(codeOf(() => validateModelName(name))).toBe("invalid_model_name");
  });

  it("refuses what is not a string", () => {
    expect(codeOf(() => validateModelName(42))).toBe("invalid_model_name");
    expect(codeOf(() => validateModelName(undefined))).toBe("invalid_model_name");
  });
});

describe("parseSource", () => {
  const opts = { storeDir: "/store" };

  it("maps hf:ORG/REPO/FILE.gguf to a resolve URL on the configured base", () => {
    expect(
      parseSource("hf:HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/smollm2-135m-instruct-q8_0.gguf", opts),
    ).toEqual({
      kind: "hf",
      text: "hf:HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/smollm2-135m-instruct-q8_0.gguf",
      url: "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/resolve/main/smollm2-135m-instruct-q8_0.gguf",
      repo: "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
      file: "smollm2-135m-instruct-q8_0.gguf",
      revision: "main",
    });
    const pinned = parseSource("hf:org/repo/sub/dir/model.Q4_K_M.gguf@refs/pr/1", {
      ...opts,
      huggingFaceBaseUrl: "http://127.0.0.1:8080/",
    });
    expect(pinned).toMatchObject({
      url: "http://127.0.0.1:8080/org/repo/resolve/refs%2Fpr%2F1/sub/dir/model.Q4_K_M.gguf",
      file: "sub/dir/model.Q4_K_M.gguf",
      revision: "refs/pr/1",
    });
    expect(parseSource("hf:org/repo/m.gguf@a1b2c3d", opts)).toMatchObject({ revision: "a1b2c3d" });
  });

  it.each([
    "hf:org/repo",
    "hf:org/repo/model.safetensors",
    "hf:org/../model.gguf",
    "hf:org/repo/../../x.gguf",
    "hf:org/repo/a b.gguf",
    "hf:org/repo/m.gguf@../../x",
    "hf:org/repo/m.gguf@",
    "hf:-org/repo/m.gguf",
    "hf:org/repo/m.gguf?x=1",
  ])("refuses the hf: source %j", (text) => {
    expect(codeOf(() => parseSource(text, opts))).toBe("invalid_source");
  });

  it("reads ollama:NAME:TAG, defaulting the tag to latest", () => {
    expect(parseSource("ollama:llama3.2:1b", opts)).toEqual({
      kind: "ollama",
      text: "ollama:llama3.2:1b",
      ollamaName: "llama3.2:1b",
    });
    expect(parseSource("ollama:qwen2.5", opts)).toMatchObject({ ollamaName: "qwen2.5:latest" });
    expect(parseSource("ollama:hf.co/org/repo:Q4_K_M", opts)).toMatchObject({
      ollamaName: "hf.co/org/repo:Q4_K_M",
    });
  });

  it.each([
    "ollama:",
    "ollama:llama3:",
    "ollama:../x:1b",
    "ollama:a;b:1",
    "ollama:a/b/c/d:1",
  ])("refuses the ollama: source %j", (text) => {
    expect(codeOf(() => parseSource(text, opts))).toBe("invalid_source");
  });

  it("accepts http(s) URLs without credentials", () => {
    expect(parseSource("https://example.com/m.gguf", opts)).toEqual({
      kind: "url",
      text: "https://example.com/m.gguf",
      url: "https://example.com/m.gguf",
    });
    expect(codeOf(() => parseSource("https://user:secret@example.com/m.gguf", opts))).toBe("invalid_source");
    expect(codeOf(() => parseSource("ftp://example.com/m.gguf", opts))).toBe("invalid_source");
    expect(codeOf(() => parseSource("javascript:alert(1)", opts))).toBe("invalid_source");
  });

  it("refuses relative paths, control characters and empty or huge sources", () => {
    expect(codeOf(() => parseSource("models/m.gguf", opts))).toBe("invalid_source");
    expect(codeOf(() => parseSource("/store/m.gguf\u0000.txt", opts))).toBe("invalid_source");
    expect(codeOf(() => parseSource("", opts))).toBe("invalid_source");
    expect(codeOf(() => parseSource(`/store/${"a".repeat(5000)}`, opts))).toBe("invalid_source");
    expect(codeOf(() => parseSource(null, opts))).toBe("invalid_source");
  });

  it("collapses .. in local paths", () => {
    expect(parseSource("/store/a/../b/m.gguf", opts)).toMatchObject({
      kind: "local",
      path: "/store/b/m.gguf",
    });
    expect(parseSource("file:///store/m.gguf", opts)).toMatchObject({ kind: "local", path: "/store/m.gguf" });
  });
});

describe("resolveSource for local files", () => {
  const root = tempDir("b9-sources-");
  const store = join(root, "store");
  const allowed = join(root, "allowed");
  const outside = join(root, "outside");
  const opts = { storeDir: store, allowedDirs: [allowed] };

  beforeAll(async () => {
    for (const d of [store, allowed, outside, join(allowed, "sub")]) await mkdir(d, { recursive: true });
    await writeFile(join(store, "in-store.gguf"), "x");
    await writeFile(join(allowed, "sub", "ok.gguf"), "x");
    await writeFile(join(outside, "secret.gguf"), "x");
    await symlink(join(outside, "secret.gguf"), join(allowed, "escape.gguf"));
    await symlink(outside, join(allowed, "escape-dir"));
    await symlink(join(allowed, "sub", "ok.gguf"), join(allowed, "inside-link.gguf"));
  });
  afterAll(() => rm(root, { recursive: true, force: true }));

  it("allows files inside the store and inside the owner's directories, by their real path", async () => {
    expect(await resolveSource(join(store, "in-store.gguf"), opts)).toMatchObject({
      kind: "local",
      path: join(store, "in-store.gguf"),
    });
    expect(await resolveSource(join(allowed, "sub", "ok.gguf"), opts)).toMatchObject({
      path: join(allowed, "sub", "ok.gguf"),
    });
    expect(await resolveSource(join(allowed, "inside-link.gguf"), opts)).toMatchObject({
      path: join(allowed, "sub", "ok.gguf"),
    });
  });

  it("refuses paths outside, whether written out, climbed with .., or reached through a symlink", async () => {
    expect(await asyncCodeOf(resolveSource(join(outside, "secret.gguf"), opts))).toBe("path_not_allowed");
    expect(await asyncCodeOf(resolveSource(`${allowed}/../outside/secret.gguf`, opts))).toBe(
      "path_not_allowed",
    );
    expect(await asyncCodeOf(resolveSource(join(allowed, "escape.gguf"), opts))).toBe("path_not_allowed");
    expect(await asyncCodeOf(resolveSource(join(allowed, "escape-dir", "secret.gguf"), opts))).toBe(
      "path_not_allowed",
    );
    expect(await asyncCodeOf(resolveSource("/etc/passwd", opts))).toBe("path_not_allowed");
    expect(await asyncCodeOf(resolveSource(`${allowed}-evil/x.gguf`, opts))).toBe("path_not_allowed");
  });

  it("refuses missing files and directories with invalid_source", async () => {
    expect(await asyncCodeOf(resolveSource(join(allowed, "missing.gguf"), opts))).toBe("invalid_source");
    expect(await asyncCodeOf(resolveSource(join(allowed, "sub"), opts))).toBe("invalid_source");
  });
});

describe("parseHfRepoSource", () => {
  it("reads hf:ORG/REPO[/FOLDER][@REVISION] as a repository, and leaves files and other sources alone", () => {
    expect(parseHfRepoSource("hf:acme/smol-st")).toEqual({
      text: "hf:acme/smol-st",
      repo: "acme/smol-st",
      folder: "",
      revision: "main",
    });
    expect(parseHfRepoSource("hf:acme/smol-st@refs/pr/1")?.revision).toBe("refs/pr/1");
    expect(parseHfRepoSource("hf:acme/models/smol/instruct@v2")).toEqual({
      text: "hf:acme/models/smol/instruct@v2",
      repo: "acme/models",
      folder: "smol/instruct",
      revision: "v2",
    });
    expect(parseHfRepoSource("hf:acme/smol-st/model.gguf")).toBeUndefined();
    expect(parseHfRepoSource("hf:acme/smol-st/q4/model.GGUF")).toBeUndefined();
    expect(parseHfRepoSource("https://host/acme/smol-st")).toBeUndefined();
    expect(parseHfRepoSource("ollama:acme/smol")).toBeUndefined();
  });

  it("refuses invalid organization, repository, folder or revision names with invalid_source", () => {
    for (const bad of [
      "hf:ac me/smol",
      "hf:acme/..",
      "hf:acme/smol@",
      "hf:acme/smol@a/../b",
      "hf:acme/smol@x/",
      "hf:acme/smol/../other",
      "hf:acme/smol/sub dir",
      "hf:acme/smol/sub/",
    ])
      expect(
        codeOf(() => parseHfRepoSource(bad)),
        bad,
      ).toBe("invalid_source");
  });
});
