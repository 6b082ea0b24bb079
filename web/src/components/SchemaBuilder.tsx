// Edit a flat parameter schema as rows, or as raw JSON (web-ui.md §4.3).
import { useState } from "react";
import type { FlatSchema, ParamDef } from "./schema";

const TYPES = ["string", "number", "integer", "boolean", "array", "object"];

function Row({ name, def, onRename, onChange, onDelete, disabled }: { name: string; def: ParamDef; onRename: (n: string) => void; onChange: (d: ParamDef) => void; onDelete: () => void; disabled?: boolean }) {
  const [open, setOpen] = useState(false);
  const [defaultText, setDefaultText] = useState(def.default === undefined ? "" : JSON.stringify(def.default));
  const [nameText, setNameText] = useState(name);
  return (
    <div className="rounded border border-gray-200 p-2" data-property={name}>
      <div className="flex items-center gap-2">
        <button type="button" className="text-xs text-gray-500" onClick={() => setOpen(!open)}>{open ? "▾" : "▸"}</button>
        <input aria-label="Property name" className="input w-40 font-mono" value={nameText} disabled={disabled} onChange={(e) => setNameText(e.target.value)} onBlur={() => nameText && nameText !== name && onRename(nameText)} />
        <select aria-label="Type" className="input w-28" value={def.type ?? "string"} disabled={disabled} onChange={(e) => onChange({ ...def, type: e.target.value })}>
          {TYPES.map((t) => <option key={t} value={t}>{t[0].toUpperCase() + t.slice(1)}</option>)}
        </select>
        <label className="flex items-center gap-1 text-xs"><input type="checkbox" checked={!!def.required} disabled={disabled} onChange={(e) => onChange({ ...def, required: e.target.checked || undefined })} />Required</label>
        <label className="flex items-center gap-1 text-xs"><input type="checkbox" checked={!!def.secret} disabled={disabled} onChange={(e) => onChange({ ...def, secret: e.target.checked || undefined })} />Secret</label>
        {!disabled && <button type="button" className="ml-auto text-xs text-red-600" onClick={onDelete}>Delete</button>}
      </div>
      {open && (
        <div className="mt-2 grid grid-cols-2 gap-2">
          <input className="input col-span-2" placeholder="Description" value={def.description ?? ""} disabled={disabled} onChange={(e) => onChange({ ...def, description: e.target.value || undefined })} />
          <input className="input col-span-2 font-mono" placeholder="Default (JSON)" value={defaultText} disabled={disabled} onChange={(e) => setDefaultText(e.target.value)} onBlur={() => {
            if (defaultText === "") return onChange({ ...def, default: undefined });
            try { onChange({ ...def, default: JSON.parse(defaultText) }); } catch { onChange({ ...def, default: defaultText }); }
          }} />
          {(def.type ?? "string") === "string" && (
            <>
              <input className="input" type="number" placeholder="Min length" value={def.minLength ?? ""} disabled={disabled} onChange={(e) => onChange({ ...def, minLength: e.target.value === "" ? undefined : Number(e.target.value) })} />
              <input className="input" type="number" placeholder="Max length" value={def.maxLength ?? ""} disabled={disabled} onChange={(e) => onChange({ ...def, maxLength: e.target.value === "" ? undefined : Number(e.target.value) })} />
              <input className="input" placeholder="Pattern" value={def.pattern ?? ""} disabled={disabled} onChange={(e) => onChange({ ...def, pattern: e.target.value || undefined })} />
              <input className="input" placeholder="Enum (comma-separated)" value={(def.enum ?? []).join(",")} disabled={disabled} onChange={(e) => onChange({ ...def, enum: e.target.value ? e.target.value.split(",").map((s) => s.trim()) : undefined })} />
            </>
          )}
          {(def.type === "number" || def.type === "integer") && (
            <>
              <input className="input" type="number" placeholder="Minimum" value={def.minimum ?? ""} disabled={disabled} onChange={(e) => onChange({ ...def, minimum: e.target.value === "" ? undefined : Number(e.target.value) })} />
              <input className="input" type="number" placeholder="Maximum" value={def.maximum ?? ""} disabled={disabled} onChange={(e) => onChange({ ...def, maximum: e.target.value === "" ? undefined : Number(e.target.value) })} />
            </>
          )}
        </div>
      )}
    </div>
  );
}

export function SchemaBuilder({ value, onChange, disabled }: { value: FlatSchema; onChange: (s: FlatSchema) => void; disabled?: boolean }) {
  const [raw, setRaw] = useState(false);
  const [text, setText] = useState(JSON.stringify(value, null, 2));
  const [problem, setProblem] = useState("");
  const clean = (d: ParamDef) => Object.fromEntries(Object.entries(d).filter(([, v]) => v !== undefined)) as ParamDef;
  return (
    <div className="space-y-2" data-testid="schema-builder">
      <div className="flex justify-end">
        <button type="button" className="btn text-xs" onClick={() => { setText(JSON.stringify(value, null, 2)); setProblem(""); setRaw(!raw); }}>
          {raw ? "Visual Editor" : "Raw JSON"}
        </button>
      </div>
      {raw ? (
        <>
          <textarea aria-label="Schema JSON" className="input font-mono" rows={10} value={text} disabled={disabled} onChange={(e) => {
            setText(e.target.value);
            try {
              const parsed = JSON.parse(e.target.value);
              if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) setProblem("Schema must be a JSON object");
              else { setProblem(""); onChange(parsed as FlatSchema); }
            } catch (err) { setProblem(String((err as Error).message)); }
          }} />
          {problem && <p className="text-xs text-red-600">{problem}</p>}
        </>
      ) : (
        <>
          {Object.entries(value).map(([name, def]) => (
            <Row key={name} name={name} def={def} disabled={disabled}
              onChange={(d) => onChange({ ...value, [name]: clean(d) })}
              onRename={(n) => onChange(Object.fromEntries(Object.entries(value).map(([k, v]) => [k === name ? n : k, v])))}
              onDelete={() => onChange(Object.fromEntries(Object.entries(value).filter(([k]) => k !== name)))} />
          ))}
          {Object.keys(value).length === 0 && <p className="text-sm text-gray-500">No properties.</p>}
          {!disabled && (
            <button type="button" className="btn text-xs" onClick={() => {
              let i = Object.keys(value).length + 1;
              while (`param${i}` in value) i++;
              onChange({ ...value, [`param${i}`]: { type: "string" } });
            }}>Add Property</button>
          )}
        </>
      )}
    </div>
  );
}
