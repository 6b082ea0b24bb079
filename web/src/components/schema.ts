// Flat parameter schemas (web-ui.md §4.1): {name: {type, description, required, secret, default, enum, ...}}.
export type ParamDef = {
  type?: string;
  description?: string;
  required?: boolean;
  secret?: boolean;
  default?: unknown;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  position?: number;
  items?: unknown;
};
export type FlatSchema = Record<string, ParamDef>;

/** Only object entries are parameters; a JSON-Schema style `{properties, required}` is flattened. */
export function flatten(schema: unknown): FlatSchema {
  if (!schema || typeof schema !== "object") return {};
  const raw = schema as Record<string, unknown>;
  if (raw.type === "object" && raw.properties && typeof raw.properties === "object") {
    const required = new Set(Array.isArray(raw.required) ? (raw.required as string[]) : []);
    const out: FlatSchema = {};
    for (const [name, def] of Object.entries(raw.properties as Record<string, ParamDef>)) {
      if (def && typeof def === "object") out[name] = { ...def, required: def.required ?? required.has(name) };
    }
    return out;
  }
  const out: FlatSchema = {};
  for (const [name, def] of Object.entries(raw)) {
    if (def && typeof def === "object" && !Array.isArray(def)) out[name] = def as ParamDef;
  }
  return out;
}

export const isTemplate = (value: unknown) => typeof value === "string" && /\{\{.*\}\}/s.test(value);

export function defaultsOf(schema: FlatSchema): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, def] of Object.entries(schema)) if (def.default !== undefined) out[name] = def.default;
  return out;
}

const empty = (v: unknown) => v === undefined || v === null || v === "";

export function validateParams(schema: FlatSchema, values: Record<string, unknown>, templates = false): Record<string, string> {
  const errors: Record<string, string> = {};
  for (const [name, def] of Object.entries(schema)) {
    const value = values[name];
    const type = def.type ?? "string";
    if (empty(value)) {
      if (def.required) errors[name] = "This field is required";
      continue;
    }
    if (templates && isTemplate(value)) continue;
    if (type === "number" || type === "integer") {
      const n = typeof value === "number" ? value : Number(value);
      if (Number.isNaN(n)) errors[name] = "Must be a number";
      else if (type === "integer" && !Number.isInteger(n)) errors[name] = "Must be an integer";
      else if (def.minimum !== undefined && n < def.minimum) errors[name] = `Must be at least ${def.minimum}`;
      else if (def.maximum !== undefined && n > def.maximum) errors[name] = `Must be at most ${def.maximum}`;
    } else if (type === "array" && !Array.isArray(value) && !(templates && typeof value === "string")) {
      errors[name] = "Must be a JSON array";
    } else if (type === "object" && (typeof value !== "object" || Array.isArray(value)) && !(templates && typeof value === "string")) {
      errors[name] = "Must be a JSON object";
    } else if (type === "string" && typeof value === "string") {
      if (def.minLength !== undefined && value.length < def.minLength) errors[name] = `Must be at least ${def.minLength} characters`;
      else if (def.maxLength !== undefined && value.length > def.maxLength) errors[name] = `Must be at most ${def.maxLength} characters`;
    }
    if (!templates && def.enum && !errors[name] && !def.enum.includes(value)) {
      errors[name] = `Must be one of: ${def.enum.map(String).join(", ")}`;
    }
  }
  return errors;
}

/** Template mode: text stays text when it holds `{{ }}`, else it is coerced to the type when possible. */
export function coerce(text: string, type: string): unknown {
  if (isTemplate(text) || text === "") return text;
  try {
    if (type === "number" || type === "integer") {
      const n = Number(text);
      return Number.isNaN(n) ? text : n;
    }
    if (type === "boolean") return text === "true" ? true : text === "false" ? false : text;
    if (type === "array" || type === "object") return JSON.parse(text);
  } catch {
    return text;
  }
  return text;
}
