import { open, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { TEST_MODEL, tempDir, testModelPath } from "@beta9/test-utils";
import { afterAll, describe, expect, it } from "vitest";
import { type GgufMetadata, type GgufValue, ggufFacts, parseSizeLabel, readGgufHeader } from "./gguf.ts";
import { ModelError } from "./model-error.ts";

const dir = tempDir("b9-gguf-");
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Builds small GGUF files byte by byte, hostile ones included. */
class GgufBytes {
  private parts: Buffer[] = [];
  private readonly le: boolean;
  constructor(le = true) {
    this.le = le;
  }
  raw(b: Buffer | string): this {
    this.parts.push(typeof b === "string" ? Buffer.from(b, "latin1") : b);
    return this;
  }
  private num(size: number, write: (b: Buffer) => void): this {
    const b = Buffer.alloc(size);
    write(b);
    return this.raw(b);
  }
  u8(n: number) {
    return this.num(1, (b) => b.writeUInt8(n));
  }
  i8(n: number) {
    return this.num(1, (b) => b.writeInt8(n));
  }
  u16(n: number) {
    return this.num(2, (b) => (this.le ? b.writeUInt16LE(n) : b.writeUInt16BE(n)));
  }
  i16(n: number) {
    return this.num(2, (b) => (this.le ? b.writeInt16LE(n) : b.writeInt16BE(n)));
  }
  u32(n: number) {
    return this.num(4, (b) => (this.le ? b.writeUInt32LE(n) : b.writeUInt32BE(n)));
  }
  i32(n: number) {
    return this.num(4, (b) => (this.le ? b.writeInt32LE(n) : b.writeInt32BE(n)));
  }
  f32(n: number) {
    return this.num(4, (b) => (this.le ? b.writeFloatLE(n) : b.writeFloatBE(n)));
  }
  f64(n: number) {
    return this.num(8, (b) => (this.le ? b.writeDoubleLE(n) : b.writeDoubleBE(n)));
  }
  u64(n: number | bigint) {
    return this.num(8, (b) => (this.le ? b.writeBigUInt64LE(BigInt(n)) : b.writeBigUInt64BE(BigInt(n))));
  }
  i64(n: number | bigint) {
    return this.num(8, (b) => (this.le ? b.writeBigInt64LE(BigInt(n)) : b.writeBigInt64BE(BigInt(n))));
  }
  str(s: string) {
    const b = Buffer.from(s, "utf8");
    return this.u64(b.length).raw(b);
  }
  header(version: number, tensors: number | bigint, kvs: number | bigint) {
    return this.raw("GGUF").u32(version).u64(tensors).u64(kvs);
  }
  async write(name: string, padTo = 0): Promise<string> {
    const path = join(dir, name);
    let bytes = Buffer.concat(this.parts);
    if (bytes.length < padTo) bytes = Buffer.concat([bytes, Buffer.alloc(padTo - bytes.length)]);
    await writeFile(path, bytes);
    return path;
  }
}

async function rejection(path: string, limits = {}): Promise<ModelError> {
  const started = Date.now();
  const err = await readGgufHeader(path, limits).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ModelError);
  expect((err as ModelError).code).toBe("invalid_gguf");
  expect(Date.now() - started).toBeLessThan(1000);
  return err as ModelError;
}

/** One of every value type, an array of strings and a nested array. */
function everyType(le: boolean, version = 3): GgufBytes {
  return new GgufBytes(le)
    .header(version, 0, 15)
    .str("t.u8")
    .u32(0)
    .u8(200)
    .str("t.i8")
    .u32(1)
    .i8(-5)
    .str("t.u16")
    .u32(2)
    .u16(65000)
    .str("t.i16")
    .u32(3)
    .i16(-300)
    .str("t.u32")
    .u32(4)
    .u32(4_000_000_000)
    .str("t.i32")
    .u32(5)
    .i32(-70000)
    .str("t.f32")
    .u32(6)
    .f32(0.5)
    .str("t.bool")
    .u32(7)
    .u8(1)
    .str("t.string")
    .u32(8)
    .str("héllo")
    .str("t.array")
    .u32(9)
    .u32(8)
    .u64(2)
    .str("a")
    .str("b")
    .str("t.u64")
    .u32(10)
    .u64(2n ** 60n)
    .str("t.i64")
    .u32(11)
    .i64(-42)
    .str("t.f64")
    .u32(12)
    .f64(1.25)
    .str("t.nested")
    .u32(9)
    .u32(9)
    .u64(2)
    .u32(4)
    .u64(1)
    .u32(7)
    .u32(4)
    .u64(0)
    .str("__proto__")
    .u32(8)
    .str("just a key");
}

describe("readGgufHeader", () => {
  it("reads the real SmolLM2 file's header (and only its header)", async () => {
    const header = await readGgufHeader(testModelPath(), { maxHeaderBytes: 4 * 1024 * 1024 });
    expect(header.version).toBe(3);
    expect(header.littleEndian).toBe(true);
    expect(header.fileBytes).toBe(TEST_MODEL.bytes);
    expect(header.tensors).toHaveLength(272);
    expect(header.dataOffset % 32).toBe(0);
    expect(header.dataOffset).toBeLessThan(4 * 1024 * 1024);
    expect(header.metadata.get("general.architecture")).toBe("llama");
    expect((header.metadata.get("tokenizer.ggml.tokens") as string[]).length).toBe(49152);
  });

  it("keeps long arrays out of memory when asked, reporting only their length", async () => {
    const header = await readGgufHeader(testModelPath(), { keepArrayElements: 64 });
    expect(header.metadata.get("tokenizer.ggml.tokens")).toEqual({
      omitted: true,
      type: "array",
      length: 49152,
    });
    expect(header.metadata.get("llama.block_count")).toBe(30);
  });

  it("reads every value type, arrays and nested arrays, in both byte orders", async () => {
    for (const le of [true, false]) {
      const path = await everyType(le).write(le ? "every-le.gguf" : "every-be.gguf");
      const { metadata, littleEndian, version } = await readGgufHeader(path);
      expect(littleEndian).toBe(le);
      expect(version).toBe(3);
      expect(Object.fromEntries(metadata)).toEqual({
        "t.u8": 200,
        "t.i8": -5,
        "t.u16": 65000,
        "t.i16": -300,
        "t.u32": 4_000_000_000,
        "t.i32": -70000,
        "t.f32": 0.5,
        "t.bool": true,
        "t.string": "héllo",
        "t.array": ["a", "b"],
        "t.u64": 2n ** 60n,
        "t.i64": -42,
        "t.f64": 1.25,
        "t.nested": [[7], []],
        ["__proto__"]: "just a key",
      });
      expect(metadata.get("__proto__")).toBe("just a key");
    }
  });

  it("reads version 2 files", async () => {
    const path = await everyType(true, 2).write("v2.gguf");
    expect((await readGgufHeader(path)).version).toBe(2);
  });

  it("rejects a file that is not GGUF", async () => {
    const path = await new GgufBytes().raw("GGML").u32(3).u64(0).u64(0).write("magic.gguf");
    expect((await rejection(path)).message).toContain("does not start with GGUF");
    expect((await rejection(await new GgufBytes().raw("GG").write("tiny.gguf"))).message).toContain("GGUF");
  });

  it("rejects versions it does not know", async () => {
    expect((await rejection(await new GgufBytes().header(1, 0, 0).write("v1.gguf"))).message).toContain(
      "version 1",
    );
    expect((await rejection(await new GgufBytes().header(7, 0, 0).write("v7.gguf"))).message).toContain(
      "version 7",
    );
  });

  it("rejects a truncated copy of the real file", async () => {
    const fh = await open(testModelPath(), "r");
    const head = Buffer.alloc(100_000);
    await fh.read(head, 0, head.length, 0);
    await fh.close();
    const path = join(dir, "truncated.gguf");
    await writeFile(path, head);
    expect((await rejection(path)).message).toContain("truncated");
  });

  it("rejects absurd counts and lengths before allocating anything", async () => {
    const absurdString = await new GgufBytes()
      .header(3, 0, 1)
      .u64(2n ** 62n)
      .write("string.gguf", 4096);
    expect((await rejection(absurdString)).message).toMatch(/exceeds the limit|remaining bytes/);

    const absurdValue = await new GgufBytes()
      .header(3, 0, 1)
      .str("k")
      .u32(8)
      .u64(1_000_000)
      .write("value.gguf", 4096);
    expect((await rejection(absurdValue)).message).toContain("remaining bytes");

    const absurdKvs = await new GgufBytes().header(3, 0, 2n ** 40n).write("kvs.gguf");
    expect((await rejection(absurdKvs)).message).toContain("metadata count");

    const absurdTensors = await new GgufBytes().header(3, 2n ** 63n, 0).write("tensors.gguf");
    expect((await rejection(absurdTensors)).message).toContain("tensor count");

    const absurdArray = await new GgufBytes()
      .header(3, 0, 1)
      .str("k")
      .u32(9)
      .u32(5)
      .u64(2n ** 50n)
      .write("array.gguf", 4096);
    expect((await rejection(absurdArray)).message).toContain("array length");

    const absurdDims = await new GgufBytes().header(3, 1, 0).str("w").u32(1000).write("dims.gguf", 4096);
    expect((await rejection(absurdDims)).message).toContain("dimensions");
  });

  it("rejects a huge string in a large sparse file without reading it", async () => {
    const path = await new GgufBytes().header(3, 0, 1).str("k").u32(8).u64(900_000_000).write("sparse.gguf");
    const fh = await open(path, "r+");
    await fh.truncate(1024 ** 3);
    await fh.close();
    expect((await rejection(path)).message).toContain("header is larger than");
  });

  it("rejects unknown types, bad booleans, duplicate keys, deep nesting and tensors past the end", async () => {
    const unknownType = await new GgufBytes().header(3, 0, 1).str("k").u32(13).u32(0).write("type.gguf");
    expect((await rejection(unknownType)).message).toContain("unknown value type");

    const badBool = await new GgufBytes().header(3, 0, 1).str("k").u32(7).u8(2).write("bool.gguf");
    expect((await rejection(badBool)).message).toContain("boolean");

    const duplicate = await new GgufBytes()
      .header(3, 0, 2)
      .str("k")
      .u32(0)
      .u8(1)
      .str("k")
      .u32(0)
      .u8(2)
      .write("dup.gguf");
    expect((await rejection(duplicate)).message).toContain("duplicate");

    const deep = new GgufBytes().header(3, 0, 1).str("k").u32(9);
    for (let i = 0; i < 10; i++) deep.u32(9).u64(1);
    deep.u32(0).u64(0);
    expect((await rejection(await deep.write("deep.gguf", 4096))).message).toContain("nested");

    const pastEnd = await new GgufBytes()
      .header(3, 1, 0)
      .str("w")
      .u32(1)
      .u64(16)
      .u32(0)
      .u64(1_000_000)
      .write("past-end.gguf");
    expect((await rejection(pastEnd)).message).toContain("past the end");
  });
});

describe("ggufFacts", () => {
  it("gives the real SmolLM2 file's facts", async () => {
    const header = await readGgufHeader(testModelPath());
    const facts = ggufFacts(header.metadata, header.fileBytes, header.tensors);
    expect(facts).toMatchObject({
      architecture: "llama",
      context_length: 8192,
      block_count: 30,
      embedding_length: 576,
      head_count: 9,
      head_count_kv: 3,
      quantization: "Q4_1",
      parameter_count_source: "tensors",
    });
    expect(facts.parameter_count).toBeGreaterThan(130e6);
    expect(facts.parameter_count).toBeLessThan(140e6);
    expect(facts.license?.toLowerCase()).toBe(TEST_MODEL.license.toLowerCase());
    expect(facts.name).toContain("135M");
  });

  it("falls back to the size label, then to an estimate from the file size", () => {
    const meta: GgufMetadata = new Map();
    meta.set("general.architecture", "llama");
    meta.set("general.file_type", 7);
    meta.set("general.size_label", "8x7B");
    expect(ggufFacts(meta, 1).parameter_count).toBe(56e9);
    meta.delete("general.size_label");
    const facts = ggufFacts(meta, 8.5e9 / 8);
    expect(facts).toMatchObject({
      quantization: "Q8_0",
      parameter_count: 1e9,
      parameter_count_source: "estimate",
    });
    expect(parseSizeLabel("135M")).toBe(135e6);
    expect(parseSizeLabel("small")).toBeNull();
  });

  it("names the quantization from the tensors when general.file_type is missing, and takes the largest per-layer head count", () => {
    const meta: GgufMetadata = new Map<string, GgufValue>([
      ["general.architecture", "openelm"],
      ["openelm.attention.head_count", [12, 16, 20]],
      ["openelm.attention.head_count_kv", [3, 4, 5]],
    ]);
    const tensors = [
      { name: "a", shape: [4096, 4096], type: 12, offset: 0, elements: 4096 * 4096 },
      { name: "b", shape: [4096, 10], type: 14, offset: 0, elements: 40960 },
      { name: "norm", shape: [4096], type: 0, offset: 0, elements: 4096 },
    ];
    expect(ggufFacts(meta, 1, tensors)).toMatchObject({
      quantization: "Q4_K",
      head_count: 20,
      head_count_kv: 5,
    });
  });
});
