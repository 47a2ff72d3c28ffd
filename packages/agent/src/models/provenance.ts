import { type LazyDispatcher, loadUndici } from "@beta9/http/undici-lazy";
import { parse as parseYaml } from "yaml";
import type { GgufMetadata } from "./gguf.ts";

/*
 * Where a model comes from and under what licence, for compliance reports (EU AI Act Art. 53 and
 * Annexes XI/XII): read from the GGUF metadata and, for hf: sources, the repository's model card.
 * Nothing is guessed: what neither says stays null (a report shows "unknown").
 */

/** Licence ids GGUF files and model cards write in lower case, in their SPDX spelling. */
const SPDX_CASE = new Map(
  [
    "Apache-2.0",
    "MIT",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "GPL-2.0",
    "GPL-3.0",
    "LGPL-2.1",
    "LGPL-3.0",
    "AGPL-3.0",
    "MPL-2.0",
    "CC0-1.0",
    "CC-BY-4.0",
    "CC-BY-SA-4.0",
    "CC-BY-NC-4.0",
    "CC-BY-NC-SA-4.0",
    "OpenRAIL",
    "BigScience-OpenRAIL-M",
    "CreativeML-OpenRAIL-M",
    "Unlicense",
  ].map((id) => [id.toLowerCase(), id]),
);

/** The SPDX spelling of a known licence id; anything else as written (trimmed); empty → null. */
export function spdxLicense(raw: unknown): string | null {
  if (typeof raw !== "string") return null;
  const text = raw.trim();
  if (text === "") return null;
  return SPDX_CASE.get(text.toLowerCase()) ?? text;
}

/** GGUF general.base_model.*: "ORG/NAME" (or its repo URL) of each model it was made from. */
export function baseModelFromGguf(meta: GgufMetadata): string | null {
  const count = meta.get("general.base_model.count");
  if (typeof count !== "number" || count < 1) return null;
  const names: string[] = [];
  for (let i = 0; i < Math.min(count, 8); i++) {
    const at = (k: string) => {
      const v = meta.get(`general.base_model.${i}.${k}`);
      return typeof v === "string" && v.trim() !== "" ? v.trim() : null;
    };
    const name = at("name");
    const org = at("organization");
    const named = name ? (org ? `${org}/${name}` : name) : null;
    const one = named ?? at("repo_url");
    if (one) names.push(one);
  }
  return names.length > 0 ? names.join(", ") : null;
}

export interface ModelCardFacts {
  license: string | null;
  base_model: string | null;
}

/** The licence and base model a model card's YAML front matter states. */
export function modelCardFacts(text: string): ModelCardFacts {
  const m = /^---\r?\n([\s\S]*?)\r?\n---/.exec(text);
  let front: unknown;
  try {
    front = m ? parseYaml(m[1]!) : undefined;
  } catch {
    front = undefined;
  }
  if (typeof front !== "object" || front === null) return { license: null, base_model: null };
  const f = front as Record<string, unknown>;
  // "other" means the card names its licence elsewhere (license_name): take that name, not "other".
  const license =
    typeof f.license === "string" && f.license.toLowerCase() === "other"
      ? spdxLicense(f.license_name)
      : spdxLicense(f.license);
  const bases = (Array.isArray(f.base_model) ? f.base_model : [f.base_model]).filter(
    (b): b is string => typeof b === "string" && b.trim() !== "",
  );
  return { license, base_model: bases.length > 0 ? bases.join(", ") : null };
}

const CARD_TIMEOUT_MS = 15_000;
const MAX_CARD_BYTES = 512 * 1024;

/**
 * Fetch and read the model card (README.md) of `repo` at `revision` from the hub at `baseUrl`, the
 * origin the weights came from. Any failure (none, too big, slow) is no facts: the card is optional.
 */
export async function fetchModelCard(
  baseUrl: string,
  repo: string,
  revision: string,
  dispatcher?: LazyDispatcher,
): Promise<ModelCardFacts | null> {
  const url = `${baseUrl.replace(/\/+$/, "")}/${repo}/resolve/${encodeURIComponent(revision)}/README.md`;
  try {
    const { fetch } = await loadUndici();
    const res = await fetch(url, {
      signal: AbortSignal.timeout(CARD_TIMEOUT_MS),
      redirect: "follow",
      ...(dispatcher ? { dispatcher: await dispatcher.get() } : {}),
    });
    if (res.status !== 200 || !res.body) {
      await res.body?.cancel();
      return null;
    }
    const chunks: Buffer[] = [];
    let bytes = 0;
    for await (const chunk of res.body) {
      bytes += chunk.length;
      if (bytes > MAX_CARD_BYTES) return null;
      chunks.push(Buffer.from(chunk));
    }
    return modelCardFacts(Buffer.concat(chunks).toString("utf8"));
  } catch {
    return null;
  }
}
