import { type Static, Type } from "typebox";

export const GpuVendor = Type.Union([
  Type.Literal("nvidia"),
  Type.Literal("apple"),
  Type.Literal("amd"),
  Type.Literal("intel"),
]);
export type GpuVendor = Static<typeof GpuVendor>;

export const Gpu = Type.Object({
  index: Type.Integer({ minimum: 0 }),
  vendor: GpuVendor,
  name: Type.String({ maxLength: 256 }),
  /** Memory the GPU can use, in bytes. Apple Silicon reports its unified memory here. */
  memory_total_bytes: Type.Number({ minimum: 0 }),
  /** Omitted when the tool cannot tell. */
  memory_used_bytes: Type.Optional(Type.Number({ minimum: 0 })),
  utilization_percent: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
  /** True when GPU memory is the machine's RAM (Apple Silicon, some integrated GPUs). */
  unified_memory: Type.Boolean(),
  driver_version: Type.Optional(Type.String({ maxLength: 128 })),
  uuid: Type.Optional(Type.String({ maxLength: 128 })),
  /** Compute API the GPU is driven through: cuda, metal, rocm, vulkan, sycl. */
  backend: Type.Optional(Type.String({ maxLength: 32 })),
});
export type Gpu = Static<typeof Gpu>;

export const Hardware = Type.Object({
  os: Type.String({ maxLength: 64 }),
  arch: Type.String({ maxLength: 64 }),
  cpu_model: Type.String({ maxLength: 256 }),
  cpu_cores: Type.Integer({ minimum: 0 }),
  memory_total_bytes: Type.Number({ minimum: 0 }),
  gpus: Type.Array(Gpu, { maxItems: 64 }),
});
export type Hardware = Static<typeof Hardware>;

/** What changes from one heartbeat to the next. */
export const Usage = Type.Object({
  cpu_percent: Type.Number({ minimum: 0, maximum: 100 }),
  memory_used_bytes: Type.Number({ minimum: 0 }),
  memory_total_bytes: Type.Number({ minimum: 0 }),
  gpus: Type.Array(
    Type.Object({
      index: Type.Integer({ minimum: 0 }),
      memory_used_bytes: Type.Optional(Type.Number({ minimum: 0 })),
      utilization_percent: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
    }),
    { maxItems: 64 },
  ),
});
export type Usage = Static<typeof Usage>;

/**
 * How this machine can run jobs, as its agent found it at start: the gateway places a job that names
 * a rootfs or an image only where podman is, and says so when none has it.
 */
export const JobRunners = Type.Object({
  /** The runner a job without a rootfs or an image gets here. */
  default: Type.Union([Type.Literal("native"), Type.Literal("bwrap")]),
  bwrap: Type.Boolean(),
  /** null: no podman; rootless when the agent (and so podman) runs as an ordinary user. */
  podman: Type.Union([Type.Object({ rootless: Type.Boolean() }), Type.Null()]),
  /** The cgroup hierarchy jobs' memory limits go in; null: jobs run without limits here. */
  cgroups: Type.Union([Type.Literal("v1"), Type.Literal("v2"), Type.Null()]),
});
export type JobRunners = Static<typeof JobRunners>;
