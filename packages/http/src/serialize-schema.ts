/*
 * Response schemas as fastify's serializer (fast-json-stringify) should see them. A schema's `anyOf`
 * makes the serializer validate the value against each option in turn, with ajv, before it writes it:
 * `Type.Union([Usage, Type.Null()])` checks a whole usage object, formats and all, every time one is
 * sent. The two unions our schemas use for plain data are written so that no check is needed: a value
 * or null (`nullable: true`), and a set of string literals (a string). The bytes written are the same
 * for every value the original schema accepts; what is not in the schema is still left out.
 */

type Schema = Record<string, unknown>;

const isSchema = (v: unknown): v is Schema => typeof v === "object" && v !== null && !Array.isArray(v);
const isNull = (s: Schema) => s.type === "null";
const isStringLiteral = (s: Schema) => s.type === "string" && typeof s.const === "string";

/** A deep copy of `schema` with its nullable and string-literal unions written without `anyOf`. */
export function forSerialization<T>(schema: T): T {
  return rewrite(schema) as T;
}

function rewrite(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(rewrite);
  if (!isSchema(node)) return node;
  const out: Schema = {};
  for (const [k, v] of Object.entries(node)) out[k] = k === "const" || k === "enum" ? v : rewrite(v);
  const options = out.anyOf;
  if (!Array.isArray(options) || !options.every(isSchema)) return out;
  const { anyOf: _, ...siblings } = out;
  const nullable = options.some(isNull);
  const rest = options.filter((o) => !isNull(o));
  if (rest.length > 0 && rest.every(isStringLiteral))
    return { ...siblings, type: "string", ...(nullable ? { nullable: true } : {}) };
  const [only] = rest;
  // One option and null: that option, nullable; unless it is itself a choice, which stays as it is.
  if (nullable && rest.length === 1 && only && typeof only.type === "string" && !only.anyOf && !only.oneOf)
    return { ...siblings, ...only, nullable: true };
  return out;
}
