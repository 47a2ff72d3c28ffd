import { createHash, randomBytes } from "node:crypto";
import type { InferencePullRequest, PoolDirOffer, ServedModelView, StoredModelView } from "@beta9/protocol";

export type PoolOffer = NonNullable<InferencePullRequest["pool"]>;
/** What a conversion is: a GGUF (a pull's), or a directory an engine loads (a start's). */
export type CopyFormat = "gguf" | PoolDirOffer["format"];
const DIR_FORMATS: readonly PoolDirOffer["format"][] = ["safetensors", "mlx"];

/** What a deployment is converted to: one conversion per workspace, source and type, whoever's machine made it. */
export interface ConvertedDeployment {
  workspaceId: string;
  source: string;
  quantize: string | null;
}

interface Copy {
  machineId: string;
  sha256: string;
  size: number;
  converted_from: NonNullable<StoredModelView["converted_from"]>;
}

interface Grant {
  machineId: string;
  key: string;
  sha256: string;
  owner: string;
  expires: number;
  /** The holders that sent bytes for it. */
  sent: Set<string>;
}

/** A ticket lives long enough for a large model's download and its resumes, not for ever. */
const TICKET_TTL_MS = 12 * 3600 * 1000;

/**
 * The conversions the pool's machines hold (a deployment's `--quantize` GGUF, a safetensors repository
 * converted to GGUF), so that a conversion is made once: a later pull of the same deployment on another
 * machine gets an offer (InferencePullRequest.pool) to fetch those bytes through this gateway instead.
 *
 * An offer carries a ticket bound to the machine it was made for, the bytes' sha256 and the deployment's
 * workspace: no other machine can spend it, and no workspace is offered another's conversion. Tickets
 * are kept as their sha256 only. Kept in memory, like PulledModels: after a restart the next pull
 * converts again, and a machine that converted is a holder once more when it is pulled on again.
 */
export class PoolCopies {
  readonly #held = new Map<string, Copy[]>();
  readonly #grants = new Map<string, Grant>();
  readonly #converting = new Map<string, { machineId: string; done: Promise<void> }>();
  readonly #now: () => number;
  readonly #ttlMs: number;

  constructor(opts: { now?: () => number; ttlMs?: number } = {}) {
    this.#now = opts.now ?? Date.now;
    this.#ttlMs = opts.ttlMs ?? TICKET_TTL_MS;
  }

  /** A machine answered a pull of `dep` with `stored`: if it is a conversion, that machine holds a copy. */
  note(machineId: string, dep: ConvertedDeployment, stored: StoredModelView | null): void {
    const from = stored?.converted_from;
    if (!stored || !from || stored.format !== "gguf" || !stored.sha256 || !stored.size) return;
    this.#hold(keyOf(dep, "gguf"), {
      machineId,
      sha256: stored.sha256,
      size: stored.size,
      converted_from: from,
    });
  }

  /**
   * A machine answered a start of `dep` serving `served`: if it serves a directory converted for its
   * engine (safetensors for vLLM/SGLang, MLX), that machine holds a copy of that.
   */
  noteServed(machineId: string, dep: ConvertedDeployment, served: ServedModelView | undefined): void {
    const format = DIR_FORMATS.find((f) => f === served?.converted_to);
    const conversion = served?.conversion;
    if (!format || !conversion || !conversion.size) return;
    this.#hold(keyOf(dep, format), {
      machineId,
      sha256: conversion.sha256,
      size: conversion.size,
      converted_from: conversion.converted_from,
    });
  }

  /** Offers for a start of `dep` on `machineId`: one per directory format another machine holds. */
  dirOffers(
    dep: ConvertedDeployment,
    machineId: string,
    connected: (machineId: string) => string | undefined,
  ): PoolDirOffer[] {
    return DIR_FORMATS.flatMap((format) => {
      const offer = this.offer(dep, machineId, connected, format);
      return offer ? [{ ...offer, format }] : [];
    });
  }

  #hold(key: string, copy: Copy): void {
    // Another converter (a newer llama.cpp) made other bytes: those are what is handed on from now.
    const others = (this.#held.get(key) ?? []).filter(
      (c) => c.machineId !== copy.machineId && c.sha256 === copy.sha256,
    );
    this.#held.set(key, [...others, copy]);
  }

  /** The machine no longer holds it (its copy was not found, or the pull there failed). */
  forget(machineId: string, dep: ConvertedDeployment, format: CopyFormat = "gguf"): void {
    this.#drop(keyOf(dep, format), machineId);
  }

  /**
   * An offer for `machineId`'s pull of `dep`: another connected machine's copy and a ticket to fetch it.
   * Undefined when the deployment converts nothing, no other connected machine holds it, or this
   * machine holds it itself.
   */
  offer(
    dep: ConvertedDeployment,
    machineId: string,
    connected: (machineId: string) => string | undefined,
    format: CopyFormat = "gguf",
  ): PoolOffer | undefined {
    const key = keyOf(dep, format);
    const copies = this.#held.get(key) ?? [];
    if (copies.some((c) => c.machineId === machineId)) return undefined;
    for (const copy of copies) {
      const name = connected(copy.machineId);
      if (name === undefined) continue;
      this.#sweep();
      const ticket = randomBytes(32).toString("base64url");
      this.#grants.set(hashTicket(ticket), {
        machineId,
        key,
        sha256: copy.sha256,
        owner: dep.workspaceId,
        expires: this.#now() + this.#ttlMs,
        sent: new Set(),
      });
      return {
        ticket,
        sha256: copy.sha256,
        size: copy.size,
        machine_name: name,
        converted_from: copy.converted_from,
      };
    }
    return undefined;
  }

  /**
   * Who may serve `machineId` the bytes `sha256` with `ticket`: the holders of that copy (connected or
   * not; the caller tries them in turn) and the owner to ask them for. Undefined for a ticket that is
   * unknown, expired, another machine's, or for other bytes.
   */
  claim(
    ticket: string | undefined,
    machineId: string,
    sha256: string,
  ):
    | { owner: string; holders: string[]; forget(holder: string): void; sending(holder: string): void }
    | undefined {
    if (!ticket) return undefined;
    const grant = this.#grants.get(hashTicket(ticket));
    if (!grant || grant.machineId !== machineId || grant.sha256 !== sha256) return undefined;
    if (grant.expires <= this.#now()) {
      this.#grants.delete(hashTicket(ticket));
      return undefined;
    }
    const holders = (this.#held.get(grant.key) ?? [])
      .filter((c) => c.sha256 === sha256 && c.machineId !== machineId)
      .map((c) => c.machineId);
    return {
      owner: grant.owner,
      holders,
      forget: (holder) => this.#drop(grant.key, holder),
      sending: (holder) => grant.sent.add(holder),
    };
  }

  /**
   * The pull that was offered a copy with `ticket` ended without it (the machine converted for itself):
   * the bytes the holders sent did not hash to what they claimed, or stopped coming. Those holders are
   * not offered again until they pull the model once more; returns them.
   */
  unreliable(ticket: string): string[] {
    const grant = this.#grants.get(hashTicket(ticket));
    if (!grant) return [];
    this.#grants.delete(hashTicket(ticket));
    for (const holder of grant.sent) this.#drop(grant.key, holder);
    return [...grant.sent];
  }

  /**
   * A pull of `dep` on `machineId` that was offered no copy. When it converts (a `--quantize` type, or a
   * safetensors repository) and no other machine is converting it now, it is this machine's turn:
   * `release` once its pull has ended (its result noted first). When another machine is converting it,
   * `wait` settles when that one ends; the caller then asks for an offer again.
   */
  turn(dep: ConvertedDeployment, machineId: string): { release: () => void } | { wait: Promise<void> } {
    const key = keyOf(dep, "gguf");
    const running = this.#converting.get(key);
    if (!convertsOnPull(dep) || running?.machineId === machineId) return { release: () => {} };
    if (running) return { wait: running.done };
    let end = () => {};
    const done = new Promise<void>((resolve) => {
      end = resolve;
    });
    const mine = { machineId, done };
    this.#converting.set(key, mine);
    return {
      release: () => {
        if (this.#converting.get(key) === mine) this.#converting.delete(key);
        end();
      },
    };
  }

  /** Whether pulling `dep` converts (so that a machine may copy it rather than convert). */
  converts(dep: ConvertedDeployment): boolean {
    return convertsOnPull(dep);
  }

  /** Whether some machine holds a conversion of `dep` (a GGUF). */
  held(dep: ConvertedDeployment): boolean {
    return this.#held.has(keyOf(dep, "gguf"));
  }

  /** Whether some machine holds `dep` converted to a directory of `format`. */
  heldAs(dep: ConvertedDeployment, format: PoolDirOffer["format"]): boolean {
    return this.#held.has(keyOf(dep, format));
  }

  /** The machine converting `dep` now, when it is not `machineId` (whose pull of it would wait). */
  convertingElsewhere(dep: ConvertedDeployment, machineId: string): string | undefined {
    const running = this.#converting.get(keyOf(dep, "gguf"));
    return running && running.machineId !== machineId ? running.machineId : undefined;
  }

  #drop(key: string, machineId: string): void {
    const left = (this.#held.get(key) ?? []).filter((c) => c.machineId !== machineId);
    if (left.length > 0) this.#held.set(key, left);
    else this.#held.delete(key);
  }

  #sweep(): void {
    const now = this.#now();
    for (const [hash, grant] of this.#grants) if (grant.expires <= now) this.#grants.delete(hash);
  }
}

/** A pull that converts: to a `--quantize` type, or a safetensors repository (an hf: source that names no .gguf file). */
function convertsOnPull(dep: ConvertedDeployment): boolean {
  return dep.quantize !== null || (dep.source.startsWith("hf:") && !/\.gguf(@[^/]*)?$/i.test(dep.source));
}

const keyOf = (dep: ConvertedDeployment, format: CopyFormat) =>
  [dep.workspaceId, dep.source, dep.quantize ?? "", format].join("\u0000");
const hashTicket = (ticket: string) => createHash("sha256").update(ticket).digest("hex");
