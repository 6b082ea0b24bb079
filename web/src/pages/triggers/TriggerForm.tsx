import { useEffect, useState, type FormEvent } from "react";
import { useNavigate, useParams } from "react-router-dom";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { get, getAll, post, put } from "@/api/http";
import type { PackSummary, Trigger } from "@/api/types";
import { Card, ErrorBox, Field, PageHeader, Spinner } from "@/components/ui";
import { SchemaBuilder } from "@/components/SchemaBuilder";
import { flatten, type FlatSchema } from "@/components/schema";

export default function TriggerForm() {
  const { ref: editRef } = useParams();
  const navigate = useNavigate();
  const client = useQueryClient();
  const existing = useQuery({ queryKey: ["triggers", editRef], enabled: !!editRef, queryFn: () => get<Trigger>(`/api/v1/triggers/${editRef}`) });
  const packs = useQuery({ queryKey: ["packs", "all"], queryFn: () => getAll<PackSummary>("/api/v1/packs") });
  const [pack, setPack] = useState("");
  const [label, setLabel] = useState("");
  const [local, setLocal] = useState("");
  const [description, setDescription] = useState("");
  const [params, setParams] = useState<FlatSchema>({});
  const [out, setOut] = useState<FlatSchema>({});
  const [webhook, setWebhook] = useState(false);
  const [enabled, setEnabled] = useState(true);
  const [problem, setProblem] = useState("");
  useEffect(() => {
    const t = existing.data;
    if (!t) return;
    setPack(t.pack_ref ?? ""); setLabel(t.label); setLocal(t.ref.split(".").slice(1).join(".")); setDescription(t.description ?? "");
    setParams(flatten(t.param_schema)); setOut(flatten(t.out_schema)); setWebhook(t.webhook_enabled); setEnabled(t.enabled);
  }, [existing.data]);
  const save = useMutation({
    mutationFn: async () => {
      const body = { label, description: description || undefined, enabled, param_schema: Object.keys(params).length ? params : undefined, out_schema: Object.keys(out).length ? out : undefined };
      const trigger = editRef ? await put<Trigger>(`/api/v1/triggers/${editRef}`, body) : await post<Trigger>("/api/v1/triggers", { ...body, pack_ref: pack, ref: `${pack}.${local}` });
      const before = existing.data?.webhook_enabled ?? false;
      if (webhook !== before) {
        try { await post(`/api/v1/triggers/${trigger.ref}/webhooks/${webhook ? "enable" : "disable"}`); } catch (error) { console.error("webhook toggle failed", error); }
      }
      return trigger;
    },
    onSuccess: (t) => { void client.invalidateQueries({ queryKey: ["triggers"] }); navigate(`/triggers/${t.ref}`); },
  });
  if (editRef && existing.isLoading) return <Spinner />;
  if (existing.data && !existing.data.is_adhoc) return <ErrorBox error={new Error("Only ad-hoc triggers can be edited")} />;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!editRef && (!pack || !/^[a-z0-9_]+$/.test(local))) return setProblem("Choose a pack; the reference must match ^[a-z0-9_]+$");
    setProblem("");
    save.mutate();
  };
  return (
    <form onSubmit={submit} className="max-w-3xl space-y-4">
      <PageHeader title={editRef ? `Edit trigger ${editRef}` : "Create Trigger"} />
      <ErrorBox error={existing.error || save.error} />
      {problem && <ErrorBox error={new Error(problem)} />}
      <Card title="Trigger">
        <div className="grid grid-cols-2 gap-3">
          <Field label="Pack *"><select className="input" name="pack" value={pack} disabled={!!editRef} onChange={(e) => setPack(e.target.value)}>
            <option value="">— select a pack —</option>{(packs.data ?? []).map((p) => <option key={p.ref} value={p.ref}>{p.ref}</option>)}</select></Field>
          <Field label="Label *"><input className="input" name="label" required value={label} onChange={(e) => setLabel(e.target.value)} onBlur={() => !local && setLocal(label.toLowerCase().replace(/[^a-z0-9_]+/g, "_").replace(/^_+|_+$/g, ""))} /></Field>
          <Field label="Reference *"><div className="flex"><span className="rounded-l border border-r-0 bg-gray-100 px-2 py-1.5 text-sm">{pack || "pack"}.</span><input className="input rounded-l-none font-mono" name="ref" value={local} disabled={!!editRef} onChange={(e) => setLocal(e.target.value)} /></div></Field>
          <Field label="Description"><input className="input" name="description" value={description} onChange={(e) => setDescription(e.target.value)} /></Field>
          <label className="flex items-center gap-2 text-sm"><input type="checkbox" name="webhook" checked={webhook} onChange={(e) => setWebhook(e.target.checked)} />Enable Webhook</label>
          <label className="flex items-center gap-2 text-sm"><input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} />Enabled</label>
        </div>
      </Card>
      <Card title="Parameter Schema"><SchemaBuilder value={params} onChange={setParams} /></Card>
      <Card title="Output Schema"><SchemaBuilder value={out} onChange={setOut} /></Card>
      <button type="submit" className="btn btn-primary" disabled={save.isPending}>{save.isPending ? "Saving…" : editRef ? "Save" : "Create Trigger"}</button>
    </form>
  );
}
