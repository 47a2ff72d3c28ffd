import type { PullProgress, StoredModelView } from "@beta9/protocol";
import type { PoolOffer } from "./pool-copy.ts";

/** How a caller of the puller follows and scopes one pull. */
export interface PullerOptions {
  onProgress: (p: PullProgress) => void;
  signal: AbortSignal;
  expectedSha256?: string | undefined;
  /** For whom (a workspace id, from a gateway); absent, the machine's owner. */
  owner?: string | undefined;
  /** The pool's operator gave the source. */
  sourceTrusted?: boolean | undefined;
  /** A llama.cpp type: the source is pulled, then converted to it once, and `name` is the result. */
  quantize?: string | undefined;
  /** Another machine's conversion of it, to fetch through the gateway instead of converting (pool-copy.ts). */
  pool?: PoolOffer | undefined;
}

/** The model store as its callers (the control API, the dashboard's pull tracker) need it. */
export interface ModelPuller {
  pull(name: string, source: string | undefined, opts: PullerOptions): Promise<StoredModelView>;
  /** Refuses ("model_owned") when `name` is stored for another owner than `owner` (undefined: the machine's). */
  checkOwner(name: string, owner: string | undefined): Promise<void>;
  /** The models stored here, for a start that names none. */
  list?: () => Promise<StoredModelView[]>;
}
