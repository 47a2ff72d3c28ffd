import type { TObject } from "typebox";
import { Compile } from "typebox/compile";

/**
 * A request body's check against its schema, compiled once: undefined when the body passes, else
 * the sentence a refusal says ("`stream` must be true or false"). Each field's schema `description`
 * finishes that sentence; `field` writes a field's name as the API's errors do.
 */
export function bodyCheck(
  schema: TObject,
  field: (name: string) => string = (name) => name,
): (body: unknown) => string | undefined {
  const validator = Compile(schema);
  const required = new Set<string>(schema.required ?? []);
  return (body) => {
    if (validator.Check(body)) return undefined;
    if (typeof body !== "object" || body === null || Array.isArray(body))
      return "the body must be a JSON object";
    const error = validator.Errors(body)[0];
    if (error?.keyword === "required") {
      const missing = (error.params as { requiredProperties?: string[] }).requiredProperties?.[0] ?? "";
      return `${field(missing)} is required`;
    }
    const name = error?.instancePath.split("/")[1] ?? "";
    // An empty required string is as good as none.
    if (error?.keyword === "minLength" && required.has(name)) return `${field(name)} is required`;
    const description = (schema.properties[name] as { description?: string } | undefined)?.description;
    return `${field(name)} must be ${description ?? "of another type"}`;
  };
}
