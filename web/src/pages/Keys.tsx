import { useState } from "react";
import { Eye, EyeOff } from "lucide-react";
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { del, get, getPage, post, put, qs } from "@/api/http";
import type { Key, KeySummary } from "@/api/types";
import { usePermissions } from "@/auth/permissions";
import { ErrorBox, Field, Modal, PageHeader, Pager, Spinner } from "@/components/ui";
import { dateTime } from "@/lib/format";

const SCOPES = [["system", "System"], ["identity", "User"], ["pack", "Pack"], ["action", "Action"], ["sensor", "Sensor"]];
const FORMATS = ["text", "json", "yaml", "number", "integer", "boolean"];
const scopeLabel = (s: string) => SCOPES.find(([v]) => v === s)?.[1] ?? s;

function checkValue(format: string, value: string): string {
  if (format === "json") { try { JSON.parse(value); } catch { return "Value must be valid JSON"; } }
  if (format === "number" && Number.isNaN(Number(value))) return "Value must be a number";
  if (format === "integer" && !/^-?\d+$/.test(value.trim())) return "Value must be an integer";
  if (format === "boolean" && !["true", "false"].includes(value.trim())) return "Value must be true or false";
  return "";
}

function KeyForm({ editRef, onClose }: { editRef?: string; onClose: () => void }) {
  const client = useQueryClient();
  const existing = useQuery({ queryKey: ["keys", editRef], enabled: !!editRef, queryFn: () => get<Key>(`/api/v1/keys/${editRef}`) });
  const [ref, setRef] = useState("");
  const [name, setName] = useState<string | null>(null);
  const [value, setValue] = useState<string | null>(null);
  const [format, setFormat] = useState("text");
  const [encrypted, setEncrypted] = useState<boolean | null>(null);
  const [scope, setScope] = useState("system");
  const [owner, setOwner] = useState("");
  const [reveal, setReveal] = useState(false);
  const [problem, setProblem] = useState("");
  const k = existing.data;
  const currentName = name ?? k?.name ?? "";
  const currentValue = value ?? (k ? (typeof k.value === "string" ? k.value : JSON.stringify(k.value)) : "");
  const forcedPlain = ["number", "integer", "boolean"].includes(format);
  const currentEncrypted = forcedPlain ? false : encrypted ?? k?.encrypted ?? true;
  const save = useMutation({
    mutationFn: () => {
      if (editRef) {
        const body: Record<string, unknown> = {};
        if (name !== null && name !== k?.name) body.name = name;
        if (value !== null && value !== currentValue) body.value = value;
        if (value !== null) body.value = value;
        if (encrypted !== null && encrypted !== k?.encrypted) body.encrypted = encrypted;
        return put<Key>(`/api/v1/keys/${editRef}`, body);
      }
      // The owner is named by ref (pack/action/sensor) or by identity id (user scope).
      const ownerField = scope === "system" ? {} : scope === "identity" ? { owner_identity: Number(owner) } : { [`owner_${scope}_ref`]: owner };
      return post<Key>("/api/v1/keys", { ref, name: currentName, value: currentValue, encrypted: currentEncrypted, owner_type: scope, ...ownerField });
    },
    onSuccess: () => { void client.invalidateQueries({ queryKey: ["keys"] }); onClose(); },
  });
  if (editRef && existing.isLoading) return <Spinner />;
  return (
    <form className="space-y-3" onSubmit={(e) => {
      e.preventDefault();
      if (!editRef && !/^[a-zA-Z0-9_.-]+$/.test(ref)) return setProblem("Reference may only contain letters, digits, '_', '.' and '-'");
      if (!currentName || !currentValue) return setProblem("Name and value are required");
      const bad = checkValue(format, currentValue);
      if (bad) return setProblem(bad);
      setProblem("");
      save.mutate();
    }}>
      <ErrorBox error={existing.error || save.error || (problem ? new Error(problem) : null)} />
      <Field label="Reference *"><input className="input font-mono" name="ref" value={editRef ?? ref} disabled={!!editRef} onChange={(e) => setRef(e.target.value)} /></Field>
      <Field label="Name *"><input className="input" name="name" value={currentName} onChange={(e) => setName(e.target.value)} /></Field>
      {!editRef && <Field label="Value Format"><select className="input" name="format" value={format} onChange={(e) => setFormat(e.target.value)}>{FORMATS.map((f) => <option key={f} value={f}>{f.toUpperCase()}</option>)}</select></Field>}
      <Field label="Value *">
        <div className="flex gap-2">
          {editRef && !reveal ? <input className="input" type="password" name="value" value={currentValue} onChange={(e) => setValue(e.target.value)} /> : <textarea className="input font-mono" name="value" rows={2} value={currentValue} onChange={(e) => setValue(e.target.value)} />}
          {editRef && <button type="button" className="btn" aria-label="Reveal value" onClick={() => setReveal(!reveal)}>{reveal ? <EyeOff size={16} /> : <Eye size={16} />}</button>}
        </div>
      </Field>
      <label className="flex items-center gap-2 text-sm"><input type="checkbox" name="encrypted" checked={currentEncrypted} disabled={forcedPlain} onChange={(e) => setEncrypted(e.target.checked)} />Encrypt</label>
      {editRef && encrypted !== null && encrypted !== k?.encrypted && <p className="text-xs text-amber-700">Changing encryption re-stores the value.</p>}
      <Field label="Scope *"><select className="input" name="scope" value={k?.owner_type ?? scope} disabled={!!editRef} onChange={(e) => setScope(e.target.value)}>{SCOPES.map(([v, l]) => <option key={v} value={v}>{l}</option>)}</select></Field>
      {(k ? k.owner_type !== "system" : scope !== "system") && <Field label={(k?.owner_type ?? scope) === "identity" ? "Owner (identity id)" : "Owner (ref)"}><input className="input" name="owner" value={k?.owner ?? owner} disabled={!!editRef} onChange={(e) => setOwner(e.target.value)} /></Field>}
      <div className="flex justify-end gap-2"><button type="button" className="btn" onClick={onClose}>Cancel</button><button type="submit" className="btn btn-primary" disabled={save.isPending}>Save</button></div>
    </form>
  );
}

export default function Keys() {
  const client = useQueryClient();
  const { can } = usePermissions();
  const [search, setSearch] = useState("");
  const [scope, setScope] = useState("");
  const [page, setPage] = useState(1);
  const [form, setForm] = useState<{ ref?: string } | null>(null);
  const list = useQuery({ queryKey: ["keys", "list", scope, page], placeholderData: keepPreviousData, queryFn: () => getPage<KeySummary>(`/api/v1/keys${qs({ page, per_page: 20, owner_type: scope })}`) });
  const remove = useMutation({ mutationFn: (ref: string) => del(`/api/v1/keys/${ref}`), onSuccess: () => client.invalidateQueries({ queryKey: ["keys"] }) });
  const rows = (list.data?.data ?? []).filter((k) => !search || `${k.ref} ${k.name}`.toLowerCase().includes(search.toLowerCase()));
  return (
    <div className="space-y-4">
      <PageHeader title="Keys & Secrets">{can("keys", "create") && <button className="btn btn-primary" onClick={() => setForm({})}>+ New Key</button>}</PageHeader>
      <div className="flex gap-2">
        <input className="input" placeholder="Search keys" aria-label="Search keys" value={search} onChange={(e) => setSearch(e.target.value)} />
        <select className="input w-40" aria-label="Scope filter" value={scope} onChange={(e) => { setScope(e.target.value); setPage(1); }}><option value="">All scopes</option>{SCOPES.map(([v, l]) => <option key={v} value={v}>{l}</option>)}</select>
      </div>
      <ErrorBox error={list.error || remove.error} />
      <div className="overflow-x-auto rounded-lg border bg-white">
        {list.isLoading ? <Spinner /> : (
          <table className="table" data-testid="keys-table">
            <thead><tr><th>Reference</th><th>Name</th><th>Scope</th><th>Owner</th><th>Encrypted</th><th>Created</th><th /></tr></thead>
            <tbody>
              {rows.map((k) => (
                <tr key={k.ref} data-key={k.ref}>
                  <td className="font-mono">{k.ref}</td><td>{k.name}</td><td><span className="rounded bg-gray-100 px-2 text-xs">{scopeLabel(k.owner_type)}</span></td><td>{k.owner ?? "—"}</td>
                  <td>{k.encrypted ? "Yes" : "No"}</td><td>{dateTime(k.created)}</td>
                  <td className="space-x-2 whitespace-nowrap">
                    {can("keys", "update") && <button className="text-blue-600" onClick={() => setForm({ ref: k.ref })}>Edit</button>}
                    {can("keys", "delete") && <button className="text-red-600" onClick={() => window.confirm(`Delete key ${k.ref}?`) && remove.mutate(k.ref)}>Delete</button>}
                  </td>
                </tr>
              ))}
              {rows.length === 0 && <tr><td colSpan={7} className="py-6 text-center text-gray-400">No keys</td></tr>}
            </tbody>
          </table>
        )}
        {list.data && <Pager page={page} totalPages={list.data.pagination.total_pages} total={list.data.pagination.total_items} pageSize={20} onPage={setPage} />}
      </div>
      {form && <Modal title={form.ref ? `Edit key ${form.ref}` : "New Key"} onClose={() => setForm(null)}><KeyForm editRef={form.ref} onClose={() => setForm(null)} /></Modal>}
    </div>
  );
}
