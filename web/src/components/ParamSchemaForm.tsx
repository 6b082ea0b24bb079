import { useEffect, useState } from "react";
import { coerce, type FlatSchema, type ParamDef } from "./schema";

type Props = {
  schema: FlatSchema;
  values: Record<string, unknown>;
  onChange: (values: Record<string, unknown>) => void;
  errors?: Record<string, string>;
  allowTemplates?: boolean;
  hideTemplateHint?: boolean;
  disabled?: boolean;
};

const display = (value: unknown) =>
  value === undefined || value === null ? "" : typeof value === "string" ? value : JSON.stringify(value);

function JsonArea({ value, onCommit, disabled, name }: { value: unknown; onCommit: (v: unknown) => void; disabled?: boolean; name: string }) {
  const [text, setText] = useState(value === undefined ? "" : JSON.stringify(value, null, 2));
  const [bad, setBad] = useState(false);
  return (
    <>
      <textarea
        name={name}
        className="input font-mono"
        rows={3}
        value={text}
        disabled={disabled}
        onChange={(e) => setText(e.target.value)}
        onBlur={() => {
          if (text.trim() === "") return onCommit(undefined);
          try {
            onCommit(JSON.parse(text));
            setBad(false);
          } catch {
            setBad(true);
            onCommit(text);
          }
        }}
      />
      {bad && <p className="text-xs text-red-600">Invalid JSON</p>}
    </>
  );
}

function Input({ name, def, value, set, disabled, templates }: { name: string; def: ParamDef; value: unknown; set: (v: unknown) => void; disabled?: boolean; templates?: boolean }) {
  const type = def.type ?? "string";
  if (templates) {
    const hint = [type, def.minimum !== undefined ? `≥ ${def.minimum}` : "", def.maximum !== undefined ? `≤ ${def.maximum}` : "", def.enum ? `one of ${def.enum.join("/")}` : ""].filter(Boolean).join(", ");
    const placeholder = `{{ event.payload.${name} }} (${hint})`;
    if (type === "array" || type === "object")
      return <textarea name={name} className="input font-mono" rows={2} placeholder={placeholder} disabled={disabled} value={display(value)} onChange={(e) => set(coerce(e.target.value, type))} />;
    return <input name={name} className="input font-mono" placeholder={placeholder} disabled={disabled} value={display(value)} onChange={(e) => set(coerce(e.target.value, type))} />;
  }
  if (type === "boolean")
    return (
      <label className="flex items-center gap-2 text-sm">
        <input name={name} type="checkbox" disabled={disabled} checked={value === true} onChange={(e) => set(e.target.checked)} />
        {def.description ?? name}
      </label>
    );
  if (type === "number" || type === "integer")
    return <input name={name} type="number" className="input" disabled={disabled} min={def.minimum} max={def.maximum} step={type === "integer" ? 1 : "any"} value={value === undefined || value === null ? "" : String(value)} onChange={(e) => set(e.target.value === "" ? undefined : Number(e.target.value))} />;
  if (type === "array" || type === "object") return <JsonArea name={name} value={value} onCommit={set} disabled={disabled} />;
  if (def.enum)
    return (
      <select name={name} className="input" disabled={disabled} value={display(value)} onChange={(e) => set(e.target.value === "" ? undefined : e.target.value)}>
        <option value="">— select —</option>
        {def.enum.map((option) => <option key={String(option)} value={String(option)}>{String(option)}</option>)}
      </select>
    );
  return <input name={name} type={def.secret ? "password" : "text"} className="input" disabled={disabled} value={display(value)} onChange={(e) => set(e.target.value)} />;
}

export function ParamSchemaForm({ schema, values, onChange, errors = {}, allowTemplates, hideTemplateHint, disabled }: Props) {
  const entries = Object.entries(schema).sort(([, a], [, b]) => (a.position ?? 1e9) - (b.position ?? 1e9));
  // Defaults are filled when the schema changes (not in template mode, where unset means "use default").
  const schemaKey = JSON.stringify(schema);
  useEffect(() => {
    if (allowTemplates) return;
    // A required checkbox that is left unticked means `false`, so it starts as false.
    const initial = (def: ParamDef) => (def.default !== undefined ? def.default : def.type === "boolean" && def.required ? false : undefined);
    const missing = entries.filter(([name, def]) => initial(def) !== undefined && values[name] === undefined);
    if (missing.length) onChange({ ...values, ...Object.fromEntries(missing.map(([n, d]) => [n, initial(d)])) });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [schemaKey]);
  if (entries.length === 0) return <p className="text-sm text-gray-500">No parameters required</p>;
  return (
    <div className="space-y-3">
      {allowTemplates && !hideTemplateHint && (
        <div className="rounded border border-amber-200 bg-amber-50 p-2 text-xs text-amber-900">
          Values may use templates: <code>{"{{ event.payload.* }}"}</code>, <code>{"{{ pack.config.* }}"}</code>, <code>{"{{ system.* }}"}</code>
        </div>
      )}
      {entries.map(([name, def]) => (
        <div key={name} className="space-y-1" data-param={name}>
          <div className="flex flex-wrap items-center gap-1 text-sm">
            <span className="font-mono font-medium">{name}</span>
            {def.required && <span className="rounded bg-red-100 px-1 text-xs text-red-700">Required</span>}
            <span className="rounded bg-gray-100 px-1 text-xs text-gray-600">{def.type ?? "string"}</span>
            {def.secret && <span className="rounded bg-purple-100 px-1 text-xs text-purple-700">Secret</span>}
          </div>
          {def.description && (def.type ?? "string") !== "boolean" && <p className="text-xs text-gray-500">{def.description}</p>}
          <Input name={name} def={def} value={values[name]} disabled={disabled} templates={allowTemplates} set={(v) => onChange({ ...values, [name]: v })} />
          {errors[name] && <p className="text-xs text-red-600" data-error-for={name}>{errors[name]}</p>}
          {def.default !== undefined && (values[name] === undefined || values[name] === "") && (
            <p className="text-xs text-gray-400">Default: {JSON.stringify(def.default)}</p>
          )}
        </div>
      ))}
    </div>
  );
}

export function ParamSchemaDisplay({ schema, values, compact }: { schema: FlatSchema; values: Record<string, unknown> | null | undefined; compact?: boolean }) {
  const set = Object.entries(values ?? {}).filter(([, v]) => v !== undefined && v !== null);
  if (!set.length) return <p className="text-sm text-gray-500">None</p>;
  return (
    <dl className="space-y-1 text-sm">
      {set.map(([name, value]) => {
        const def = schema[name] ?? {};
        let shown: React.ReactNode;
        if (compact && def.secret) shown = "••••••••";
        else if (typeof value === "boolean") shown = value ? "✓ Enabled" : "✗ Disabled";
        else if (typeof value === "string" && /\{\{/.test(value)) shown = <code className="rounded bg-gray-100 px-1">{value}</code>;
        else if (Array.isArray(value)) shown = <ul className="list-disc pl-4">{value.map((v, i) => <li key={i}>{JSON.stringify(v)}</li>)}</ul>;
        else if (typeof value === "object") shown = <pre className="text-xs">{JSON.stringify(value, null, 2)}</pre>;
        else shown = String(value);
        return (
          <div key={name} className="grid grid-cols-3 gap-2">
            <dt className="font-mono text-gray-600">{name}</dt>
            <dd className="col-span-2 break-all">{shown}</dd>
          </div>
        );
      })}
    </dl>
  );
}
