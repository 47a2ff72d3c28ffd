import { type FileHandle, open } from "node:fs/promises";
import { BITS_PER_WEIGHT } from "@beta9/protocol";
import { ModelError } from "./model-error.ts";
import { baseModelFromGguf, spdxLicense } from "./provenance.ts";

/*
 * A reader for the header of a GGUF file (versions 2 and 3, either byte order): the metadata
 * key-value pairs and the tensor infos, never the tensor data. It streams through the file with one
 * bounded buffer and checks every count and length against the bytes the file can still hold, so a
 * corrupt or hostile file fails fast instead of allocating what it claims.
 * Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
 */

/** A value the reader walked past without keeping (a huge tokenizer.json string, a long array). */
export interface GgufOmitted {
  readonly omitted: true;
  readonly type: "string" | "array";
  /** Bytes for a string, elements for an array. */
  readonly length: number;
}

export type GgufValue = number | bigint | boolean | string | GgufOmitted | GgufValue[];
/** A Map, not an object: keys come from the file, and "__proto__" must stay a plain key. */
export type GgufMetadata = Map<string, GgufValue>;

export interface GgufTensorInfo {
  name: string;
  shape: number[];
  /** ggml_type of the tensor's data. */
  type: number;
  /** Offset of the data, relative to the start of the tensor data section. */
  offset: number;
  elements: number;
}

export interface GgufHeader {
  version: number;
  littleEndian: boolean;
  metadata: GgufMetadata;
  tensors: GgufTensorInfo[];
  /** Where the tensor data starts in the file (the end of the header, aligned). */
  dataOffset: number;
  fileBytes: number;
}

export interface GgufReadLimits {
  /** Give up on a header longer than this (real ones are a few MiB; a full tokenizer.json adds ~20). */
  maxHeaderBytes: number;
  maxKvCount: number;
  maxTensorCount: number;
  maxKeyBytes: number;
  maxTensorNameBytes: number;
  maxDimensions: number;
  maxArrayDepth: number;
  /** Longer strings are skipped and reported as GgufOmitted; this also bounds the read buffer. */
  keepStringBytes: number;
  /** Longer arrays are walked but not kept (reported as GgufOmitted). */
  keepArrayElements: number;
}

export const DEFAULT_GGUF_LIMITS: GgufReadLimits = {
  maxHeaderBytes: 256 * 1024 * 1024,
  maxKvCount: 65_536,
  maxTensorCount: 1_048_576,
  maxKeyBytes: 65_535,
  maxTensorNameBytes: 1024,
  maxDimensions: 8,
  maxArrayDepth: 4,
  keepStringBytes: 1024 * 1024,
  keepArrayElements: 1_048_576,
};

const MAGIC = Buffer.from("GGUF", "latin1");
const DEFAULT_ALIGNMENT = 32;
const CHUNK_BYTES = 256 * 1024;

const ValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;

/** Bytes a value of each type takes at the least (strings and arrays: their length prefix). */
const MIN_VALUE_BYTES = [1, 1, 2, 2, 4, 4, 4, 1, 8, 12, 8, 8, 8];

function invalid(path: string, why: string): ModelError {
  return new ModelError("invalid_gguf", `${path} is not a usable GGUF file: ${why}`);
}

/** Bytes of each scalar type (strings and arrays have a length prefix instead). */
const SCALAR_BYTES: Record<number, number> = {
  0: 1,
  1: 1,
  2: 2,
  3: 2,
  4: 4,
  5: 4,
  6: 4,
  7: 1,
  10: 8,
  11: 8,
  12: 8,
};

/**
 * Sequential reads over a file through one buffer that never grows past the largest kept item.
 * Reads are synchronous while the buffer holds enough bytes; only refills await (a header has
 * hundreds of thousands of small values, and an await per value costs more than the parsing).
 */
class HeaderCursor {
  private buf: Buffer;
  private start = 0;
  private end = 0;
  /** File offset of the next unread byte. */
  pos = 0;
  littleEndian = true;
  private readonly fh: FileHandle;
  readonly fileBytes: number;
  private readonly path: string;
  private readonly limits: GgufReadLimits;

  constructor(fh: FileHandle, fileBytes: number, path: string, limits: GgufReadLimits) {
    this.fh = fh;
    this.fileBytes = fileBytes;
    this.path = path;
    this.limits = limits;
    this.buf = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, Math.max(64, fileBytes)));
  }

  get remaining(): number {
    return this.fileBytes - this.pos;
  }

  fail(why: string): ModelError {
    return invalid(this.path, why);
  }

  private has(n: number): boolean {
    return this.end - this.start >= n;
  }

  private async fill(n: number): Promise<void> {
    if (this.has(n)) return;
    if (n > this.remaining) throw this.fail(`truncated at byte ${this.pos} (needs ${n} more bytes)`);
    if (this.pos + n > this.limits.maxHeaderBytes) {
      throw this.fail(`header is larger than ${this.limits.maxHeaderBytes} bytes`);
    }
    if (n > this.buf.length) {
      const bigger = Buffer.allocUnsafe(n);
      this.buf.copy(bigger, 0, this.start, this.end);
      this.buf = bigger;
    } else {
      this.buf.copy(this.buf, 0, this.start, this.end);
    }
    this.end -= this.start;
    this.start = 0;
    while (this.end < n) {
      const filePos = this.pos + this.end;
      const { bytesRead } = await this.fh.read(this.buf, this.end, this.buf.length - this.end, filePos);
      if (bytesRead === 0) throw this.fail(`truncated at byte ${filePos}`);
      this.end += bytesRead;
    }
  }

  /** `n` bytes; the caller made sure they are buffered. The view is valid until the next fill. */
  private take(n: number): Buffer {
    const out = this.buf.subarray(this.start, this.start + n);
    this.start += n;
    this.pos += n;
    return out;
  }

  async bytes(n: number): Promise<Buffer> {
    if (!this.has(n)) await this.fill(n);
    return this.take(n);
  }

  async skip(n: number): Promise<void> {
    if (n > this.remaining) throw this.fail(`truncated at byte ${this.pos} (skips ${n} bytes)`);
    if (this.pos + n > this.limits.maxHeaderBytes) {
      throw this.fail(`header is larger than ${this.limits.maxHeaderBytes} bytes`);
    }
    if (this.has(n)) {
      this.start += n;
    } else {
      this.start = 0;
      this.end = 0;
    }
    this.pos += n;
  }

  async u32(): Promise<number> {
    const b = await this.bytes(4);
    return this.littleEndian ? b.readUInt32LE(0) : b.readUInt32BE(0);
  }

  async u64(): Promise<bigint> {
    const b = await this.bytes(8);
    return this.littleEndian ? b.readBigUInt64LE(0) : b.readBigUInt64BE(0);
  }

  /** A u64 count or length, refused when the file cannot hold `count * minBytes` more bytes. */
  async count(what: string, minBytes: number, max: number): Promise<number> {
    return this.checkCount(await this.u64(), what, minBytes, max);
  }

  private checkCount(n: bigint, what: string, minBytes: number, max: number): number {
    if (n > BigInt(max)) throw this.fail(`${what} ${n} exceeds the limit of ${max}`);
    const count = Number(n);
    if (count * minBytes > this.remaining) {
      throw this.fail(`${what} ${count} is more than the ${this.remaining} remaining bytes can hold`);
    }
    return count;
  }

  /** A scalar of a known fixed-size type, already buffered. */
  private takeScalar(type: number): number | bigint | boolean {
    const le = this.littleEndian;
    switch (type) {
      case ValueType.UINT8:
        return this.take(1).readUInt8(0);
      case ValueType.INT8:
        return this.take(1).readInt8(0);
      case ValueType.UINT16: {
        const b = this.take(2);
        return le ? b.readUInt16LE(0) : b.readUInt16BE(0);
      }
      case ValueType.INT16: {
        const b = this.take(2);
        return le ? b.readInt16LE(0) : b.readInt16BE(0);
      }
      case ValueType.UINT32: {
        const b = this.take(4);
        return le ? b.readUInt32LE(0) : b.readUInt32BE(0);
      }
      case ValueType.INT32: {
        const b = this.take(4);
        return le ? b.readInt32LE(0) : b.readInt32BE(0);
      }
      case ValueType.FLOAT32: {
        const b = this.take(4);
        return le ? b.readFloatLE(0) : b.readFloatBE(0);
      }
      case ValueType.FLOAT64: {
        const b = this.take(8);
        return le ? b.readDoubleLE(0) : b.readDoubleBE(0);
      }
      case ValueType.UINT64: {
        const b = this.take(8);
        return safeNumber(le ? b.readBigUInt64LE(0) : b.readBigUInt64BE(0));
      }
      case ValueType.INT64: {
        const b = this.take(8);
        return safeNumber(le ? b.readBigInt64LE(0) : b.readBigInt64BE(0));
      }
      case ValueType.BOOL: {
        const v = this.take(1).readUInt8(0);
        if (v > 1) throw this.fail(`boolean value ${v} at byte ${this.pos - 1}`);
        return v === 1;
      }
      default:
        throw this.fail(`unknown value type ${type}`);
    }
  }

  /** A short string that is already buffered, taken without an await; undefined (nothing taken) otherwise. */
  private tryTakeString(keep: number): string | undefined {
    if (!this.has(8)) return undefined;
    const n = this.littleEndian ? this.buf.readBigUInt64LE(this.start) : this.buf.readBigUInt64BE(this.start);
    if (n > BigInt(keep) || !this.has(8 + Number(n))) return undefined;
    this.take(8);
    return this.take(Number(n)).toString("utf8");
  }

  /** A length-prefixed string, or a GgufOmitted when it is longer than `keep` bytes. */
  async string(what: string, keep: number, max = Number.MAX_SAFE_INTEGER): Promise<string | GgufOmitted> {
    if (!this.has(8)) await this.fill(8);
    const b = this.take(8);
    const length = this.checkCount(
      this.littleEndian ? b.readBigUInt64LE(0) : b.readBigUInt64BE(0),
      `${what} length`,
      1,
      max,
    );
    if (length > keep) {
      await this.skip(length);
      return { omitted: true, type: "string", length };
    }
    if (!this.has(length)) await this.fill(length);
    return this.take(length).toString("utf8");
  }

  async value(type: number, depth: number): Promise<GgufValue> {
    const size = SCALAR_BYTES[type];
    if (size !== undefined) {
      if (!this.has(size)) await this.fill(size);
      return this.takeScalar(type);
    }
    if (type === ValueType.STRING) return this.string("string", this.limits.keepStringBytes);
    if (type !== ValueType.ARRAY) throw this.fail(`unknown value type ${type} at byte ${this.pos - 4}`);
    if (depth >= this.limits.maxArrayDepth) throw this.fail(`arrays nested deeper than ${depth}`);
    const itemType = await this.u32();
    const minBytes = MIN_VALUE_BYTES[itemType];
    if (minBytes === undefined)
      throw this.fail(`unknown array item type ${itemType} at byte ${this.pos - 4}`);
    const length = await this.count("array length", minBytes, Number.MAX_SAFE_INTEGER);
    const itemSize = SCALAR_BYTES[itemType];
    if (length > this.limits.keepArrayElements) {
      if (itemSize !== undefined) await this.skip(length * itemSize);
      else for (let i = 0; i < length; i++) await this.value(itemType, depth + 1);
      return { omitted: true, type: "array", length };
    }
    const items: GgufValue[] = new Array(length);
    for (let i = 0; i < length; i++) {
      if (itemSize !== undefined) {
        if (!this.has(itemSize)) await this.fill(itemSize);
        items[i] = this.takeScalar(itemType);
      } else if (itemType === ValueType.STRING) {
        items[i] = this.tryTakeString(this.limits.keepStringBytes) ?? (await this.value(itemType, depth + 1));
      } else {
        items[i] = await this.value(itemType, depth + 1);
      }
    }
    return items;
  }
}

function safeNumber(n: bigint): number | bigint {
  return n <= BigInt(Number.MAX_SAFE_INTEGER) && n >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(n) : n;
}

/** Read the header of the GGUF file at `path`. Throws ModelError "invalid_gguf" with the reason. */
export async function readGgufHeader(
  path: string,
  limits: Partial<GgufReadLimits> = {},
): Promise<GgufHeader> {
  const lim: GgufReadLimits = { ...DEFAULT_GGUF_LIMITS, ...limits };
  const fh = await open(path, "r");
  try {
    const fileBytes = (await fh.stat()).size;
    const c = new HeaderCursor(fh, fileBytes, path, lim);
    if (fileBytes < 4 || !(await c.bytes(4)).equals(MAGIC)) throw c.fail("it does not start with GGUF");
    const versionBytes = Buffer.from(await c.bytes(4));
    const le = versionBytes.readUInt32LE(0);
    const be = versionBytes.readUInt32BE(0);
    let version: number;
    if (le === 2 || le === 3) {
      version = le;
    } else if (be === 2 || be === 3) {
      // Big-endian files carry the same magic bytes; the version number gives the byte order away.
      version = be;
      c.littleEndian = false;
    } else if (le === 1 || be === 1) {
      throw c.fail(
        "GGUF version 1 (2023) is not supported; convert the model again with a current llama.cpp",
      );
    } else {
      throw c.fail(`unsupported GGUF version ${le}`);
    }
    const tensorCount = await c.count("tensor count", 24, lim.maxTensorCount);
    const kvCount = await c.count("metadata count", 13, lim.maxKvCount);

    const metadata: GgufMetadata = new Map();
    for (let i = 0; i < kvCount; i++) {
      const key = await c.string("key", lim.maxKeyBytes, lim.maxKeyBytes);
      if (typeof key !== "string") throw c.fail("metadata key too long");
      if (metadata.has(key)) throw c.fail(`duplicate metadata key ${JSON.stringify(key)}`);
      const type = await c.u32();
      if (MIN_VALUE_BYTES[type] === undefined) throw c.fail(`unknown value type ${type} for ${key}`);
      metadata.set(key, await c.value(type, 0));
    }

    const tensors: GgufTensorInfo[] = [];
    for (let i = 0; i < tensorCount; i++) {
      const name = await c.string("tensor name", lim.maxTensorNameBytes, lim.maxTensorNameBytes);
      if (typeof name !== "string") throw c.fail("tensor name too long");
      const dims = await c.u32();
      if (dims > lim.maxDimensions) throw c.fail(`tensor ${name} has ${dims} dimensions`);
      const shape: number[] = [];
      let elements = 1;
      for (let d = 0; d < dims; d++) {
        const size = await c.u64();
        if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw c.fail(`tensor ${name} has an absurd dimension`);
        shape.push(Number(size));
        elements *= Number(size);
      }
      if (!Number.isSafeInteger(elements)) throw c.fail(`tensor ${name} has an absurd element count`);
      const type = await c.u32();
      const offset = await c.u64();
      if (offset > BigInt(fileBytes)) throw c.fail(`tensor ${name} starts past the end of the file`);
      tensors.push({ name, shape, type, offset: Number(offset), elements });
    }

    const alignmentValue = metadata.get("general.alignment");
    const alignment = alignmentValue === undefined ? DEFAULT_ALIGNMENT : alignmentValue;
    if (
      typeof alignment !== "number" ||
      !Number.isInteger(alignment) ||
      alignment <= 0 ||
      alignment % 8 !== 0
    ) {
      throw c.fail(`general.alignment ${String(alignment)} is not a positive multiple of 8`);
    }
    const dataOffset = Math.ceil(c.pos / alignment) * alignment;
    if (tensors.length > 0 && dataOffset > fileBytes)
      throw c.fail("the tensor data is missing (file cut short?)");
    for (const t of tensors) {
      if (dataOffset + t.offset > fileBytes) throw c.fail(`tensor ${t.name} lies past the end of the file`);
    }
    return { version, littleEndian: c.littleEndian, metadata, tensors, dataOffset, fileBytes };
  } finally {
    await fh.close();
  }
}

// ---- facts ---------------------------------------------------------------------------------------

/** llama_ftype (general.file_type) → the name people use for the quantization. */
const FILE_TYPES: Record<number, string> = {
  0: "F32",
  1: "F16",
  2: "Q4_0",
  3: "Q4_1",
  4: "Q4_1_SOME_F16",
  7: "Q8_0",
  8: "Q5_0",
  9: "Q5_1",
  10: "Q2_K",
  11: "Q3_K_S",
  12: "Q3_K_M",
  13: "Q3_K_L",
  14: "Q4_K_S",
  15: "Q4_K_M",
  16: "Q5_K_S",
  17: "Q5_K_M",
  18: "Q6_K",
  19: "IQ2_XXS",
  20: "IQ2_XS",
  21: "Q2_K_S",
  22: "IQ3_XS",
  23: "IQ3_XXS",
  24: "IQ1_S",
  25: "IQ4_NL",
  26: "IQ3_S",
  27: "IQ3_M",
  28: "IQ2_S",
  29: "IQ2_M",
  30: "IQ4_XS",
  31: "IQ1_M",
  32: "BF16",
  33: "Q4_0_4_4",
  34: "Q4_0_4_8",
  35: "Q4_0_8_8",
  36: "TQ1_0",
  37: "TQ2_0",
  38: "MXFP4_MOE",
};

/** ggml_type (per tensor) → name; used when general.file_type is absent. */
const TENSOR_TYPES: Record<number, string> = {
  0: "F32",
  1: "F16",
  2: "Q4_0",
  3: "Q4_1",
  6: "Q5_0",
  7: "Q5_1",
  8: "Q8_0",
  9: "Q8_1",
  10: "Q2_K",
  11: "Q3_K",
  12: "Q4_K",
  13: "Q5_K",
  14: "Q6_K",
  15: "Q8_K",
  16: "IQ2_XXS",
  17: "IQ2_XS",
  18: "IQ3_XXS",
  19: "IQ1_S",
  20: "IQ4_NL",
  21: "IQ3_S",
  22: "IQ2_S",
  23: "IQ4_XS",
  24: "I8",
  25: "I16",
  26: "I32",
  27: "I64",
  28: "F64",
  29: "IQ1_M",
  30: "BF16",
  34: "TQ1_0",
  35: "TQ2_0",
  39: "MXFP4",
};

/** Rough bits per weight of each quantization, to estimate a parameter count from the file size. */
export { BITS_PER_WEIGHT };

export interface GgufFacts {
  architecture: string | null;
  parameter_count: number | null;
  /** Where parameter_count came from: exact ("metadata", "tensors") or not ("size_label", "estimate"). */
  parameter_count_source: "metadata" | "tensors" | "size_label" | "estimate" | null;
  quantization: string | null;
  context_length: number | null;
  block_count: number | null;
  embedding_length: number | null;
  /** When the file gives one count per layer, the largest (memory estimates must not fall short). */
  head_count: number | null;
  head_count_kv: number | null;
  /** SPDX spelling when it is a known id (general.license). */
  license: string | null;
  /** What it was made from (general.base_model.*), "ORG/NAME" each. */
  base_model: string | null;
  name: string | null;
}

function str(meta: GgufMetadata, key: string): string | null {
  const v = meta.get(key);
  return typeof v === "string" ? v : null;
}

/** A count: a number, or the largest of a per-layer array. */
function count(meta: GgufMetadata, key: string): number | null {
  const v = meta.get(key);
  if (typeof v === "number" && Number.isFinite(v) && v >= 0) return v;
  if (typeof v === "bigint") return null;
  if (Array.isArray(v)) {
    const nums = v.filter((x): x is number => typeof x === "number" && Number.isFinite(x) && x >= 0);
    return nums.length > 0 ? Math.max(...nums) : null;
  }
  return null;
}

/** "135M", "1.7B", "8x7B" → a parameter count; labels like "small" → null. */
export function parseSizeLabel(label: string): number | null {
  const m = /^(?:(\d+)x)?(\d+(?:\.\d+)?)([KMBT])$/i.exec(label.trim());
  if (!m) return null;
  const scale = { K: 1e3, M: 1e6, B: 1e9, T: 1e12 }[m[3]!.toUpperCase() as "K" | "M" | "B" | "T"];
  return Math.round((m[1] ? Number(m[1]) : 1) * Number(m[2]) * scale);
}

function quantizationFromTensors(tensors: readonly GgufTensorInfo[]): string | null {
  // The type that holds the most weights among the matrices (1-D norms stay F32 in every file).
  const byType = new Map<number, number>();
  for (const t of tensors) {
    if (t.shape.length < 2) continue;
    byType.set(t.type, (byType.get(t.type) ?? 0) + t.elements);
  }
  let best: number | undefined;
  for (const [type, n] of byType) if (best === undefined || n > byType.get(best)!) best = type;
  return best === undefined ? null : (TENSOR_TYPES[best] ?? `type ${best}`);
}

/**
 * What a person (and the scheduler) wants to know about a GGUF model, from its header. `tensors`, when
 * given, makes the parameter count exact and names the quantization of files without general.file_type.
 */
export function ggufFacts(
  meta: GgufMetadata,
  fileBytes: number,
  tensors?: readonly GgufTensorInfo[],
): GgufFacts {
  const architecture = str(meta, "general.architecture");
  const arch = (key: string) => (architecture ? count(meta, `${architecture}.${key}`) : null);

  const fileType = meta.get("general.file_type");
  let quantization: string | null = null;
  if (typeof fileType === "number") quantization = FILE_TYPES[fileType] ?? `file type ${fileType}`;
  else if (typeof fileType === "string") quantization = fileType;
  else if (tensors) quantization = quantizationFromTensors(tensors);

  let parameter_count: number | null = null;
  let parameter_count_source: GgufFacts["parameter_count_source"] = null;
  const fromMeta = count(meta, "general.parameter_count");
  const sizeLabel = str(meta, "general.size_label");
  const fromLabel = sizeLabel ? parseSizeLabel(sizeLabel) : null;
  const bits = quantization ? BITS_PER_WEIGHT[quantization] : undefined;
  if (fromMeta !== null && fromMeta > 0) {
    parameter_count = fromMeta;
    parameter_count_source = "metadata";
  } else if (tensors && tensors.length > 0) {
    parameter_count = tensors.reduce((sum, t) => sum + t.elements, 0);
    parameter_count_source = "tensors";
  } else if (fromLabel !== null) {
    parameter_count = fromLabel;
    parameter_count_source = "size_label";
  } else if (bits !== undefined && fileBytes > 0) {
    parameter_count = Math.round((fileBytes * 8) / bits);
    parameter_count_source = "estimate";
  }

  return {
    architecture,
    parameter_count,
    parameter_count_source,
    quantization,
    context_length: arch("context_length"),
    block_count: arch("block_count"),
    embedding_length: arch("embedding_length"),
    head_count: arch("attention.head_count"),
    head_count_kv: arch("attention.head_count_kv"),
    license: spdxLicense(meta.get("general.license")),
    base_model: baseModelFromGguf(meta),
    name: str(meta, "general.name"),
  };
}
