import { useEffect, useState, type FormEvent } from "react";
import { useNavigate, useParams } from "react-router-dom";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { get, getAll, post, put } from "@/api/http";
import type { Action, ActionSummary, PackSummary, Rule, Trigger, TriggerSummary } from "@/api/types";
import { Card, ErrorBox, Field, PageHeader, Spinner } from "@/components/ui";
import { ParamSchemaForm } from "@/components/ParamSchemaForm";
import { flatten, validateParams } from "@/components/schema";

const nonEmpty = (o: Record<string, unknown>) => {
  const clean = Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== ""));
  return Object.keys(clean).length ? clean : undefined;
};

export default function RuleForm() {
  const { ref: editRef } = useParams();
  const navigate = useNavigate();
  const client = useQueryClient();
  const existing = useQuery({ queryKey: ["rules", editRef], enabled: !!editRef, queryFn: () => get<Rule>(`/api/v1/rules/${editRef}`) });
  const packs = useQuery({ queryKey: ["packs", "all"], queryFn: () => getAll<PackSummary>("/api/v1/packs") });
  const triggers = useQuery({ queryKey: ["triggers", "all"], queryFn: () => getAll<TriggerSummary>("/api/v1/triggers") });
  const actions = useQuery({ queryKey: ["actions", "all"], queryFn: () => getAll<ActionSummary>("/api/v1/actions") });
  const [pack, setPack] = useState("");
  const [label, setLabel] = useState("");
  const [local, setLocal] = useState("");
  const [description, setDescription] = useState("");
  const [enabled, setEnabled] = useState(true);
  const [triggerRef, setTriggerRef] = useState("");
  const [actionRef, setActionRef] = useState("");
  const [conditions, setConditions] = useState("");
  const [triggerParams, setTriggerParams] = useState<Record<string, unknown>>({});
  const [actionParams, setActionParams] = useState<Record<string, unknown>>({});
  const [errors, setErrors] = useState<{ trigger: Record<string, string>; action: Record<string, string>; form: string }>({ trigger: {}, action: {}, form: "" });
  useEffect(() => {
    const r = existing.data;
    if (!r) return;
    setPack(r.pack_ref); setLabel(r.label); setLocal(r.ref.slice(r.pack_ref.length + 1)); setDescription(r.description ?? "");
    setEnabled(r.enabled); setTriggerRef(r.trigger_ref); setActionRef(r.action_ref);
    setConditions(r.conditions && Object.keys(r.conditions).length ? JSON.stringify(r.conditions, null, 2) : "");
    setTriggerParams((r.trigger_params ?? {}) as Record<string, unknown>); setActionParams((r.action_params ?? {}) as Record<string, unknown>);
  }, [existing.data]);
  const trigger = useQuery({ queryKey: ["triggers", triggerRef], enabled: !!triggerRef, queryFn: () => get<Trigger>(`/api/v1/triggers/${triggerRef}`) });
  const action = useQuery({ queryKey: ["actions", actionRef], enabled: !!actionRef, queryFn: () => get<Action>(`/api/v1/actions/${actionRef}`) });
  const triggerSchema = flatten(trigger.data?.param_schema);
  const actionSchema = flatten(action.data?.param_schema);
  const save = useMutation({
    mutationFn: () => {
      const parsed = conditions.trim() ? JSON.parse(conditions) : undefined;
      const body = { label, description, enabled, conditions: parsed, trigger_params: nonEmpty(triggerParams), action_params: nonEmpty(actionParams) };
      return editRef ? put<Rule>(`/api/v1/rules/${editRef}`, body) : post<Rule>("/api/v1/rules", { ...body, pack_ref: pack, ref: `${pack}.${local}`, trigger_ref: triggerRef, action_ref: actionRef });
    },
    onSuccess: (rule) => { void client.invalidateQueries({ queryKey: ["rules"] }); navigate(`/rules/${rule.ref}`); },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    let form = "";
    if (!pack || !label || !local || !description || !triggerRef || !actionRef) form = "Pack, label, reference, description, trigger and action are required";
    if (conditions.trim()) { try { JSON.parse(conditions); } catch { form = "Match conditions must be valid JSON"; } }
    const t = validateParams(triggerSchema, triggerParams, true);
    const a = validateParams(actionSchema, actionParams, true);
    setErrors({ trigger: t, action: a, form });
    if (!form && !Object.keys(t).length && !Object.keys(a).length) save.mutate();
  };
  if (editRef && existing.isLoading) return <Spinner />;
  const editing = !!editRef;
  return (
    <form onSubmit={submit} className="max-w-3xl space-y-4">
      <PageHeader title={editing ? `Edit rule ${editRef}` : "New Rule"} />
      <ErrorBox error={existing.error || save.error} />
      {errors.form && <ErrorBox error={new Error(errors.form)} />}
      <Card title="Rule">
        <div className="grid grid-cols-2 gap-3">
          <Field label="Pack *">
            <select className="input" name="pack" value={pack} disabled={editing} onChange={(e) => { setPack(e.target.value); setTriggerRef(""); setActionRef(""); setTriggerParams({}); setActionParams({}); }}>
              <option value="">— select a pack —</option>
              {(packs.data ?? []).map((p) => <option key={p.ref} value={p.ref}>{p.ref}</option>)}
            </select>
          </Field>
          <Field label="Label *"><input className="input" name="label" value={label} onChange={(e) => setLabel(e.target.value)} onBlur={() => !local && setLocal(label.toLowerCase().replace(/[^a-z0-9_]+/g, "_").replace(/^_+|_+$/g, ""))} /></Field>
          <Field label="Reference *">
            <div className="flex items-center"><span className="rounded-l border border-r-0 bg-gray-100 px-2 py-1.5 text-sm">{pack || "pack"}.</span>
              <input className="input rounded-l-none font-mono" name="ref" value={local} disabled={editing} onChange={(e) => setLocal(e.target.value)} /></div>
          </Field>
          <Field label="Description *"><input className="input" name="description" value={description} onChange={(e) => setDescription(e.target.value)} /></Field>
          <label className="flex items-center gap-2 text-sm"><input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} />Enable rule immediately</label>
        </div>
      </Card>
      <Card title="Trigger *">
        <select className="input mb-3" name="trigger" value={triggerRef} disabled={editing || !pack} onChange={(e) => { setTriggerRef(e.target.value); setTriggerParams({}); }}>
          <option value="">{pack ? "— select a trigger —" : "Select a pack first"}</option>
          {(triggers.data ?? []).map((t) => <option key={t.ref} value={t.ref}>{t.ref} - {t.label}</option>)}
        </select>
        {triggerRef && <><h3 className="mb-2 text-sm font-semibold">Trigger Parameters</h3><ParamSchemaForm schema={triggerSchema} values={triggerParams} onChange={setTriggerParams} errors={errors.trigger} allowTemplates /></>}
        <h3 className="mb-1 mt-3 text-sm font-semibold">Match Conditions (JSON)</h3>
        <textarea className="input font-mono" name="conditions" rows={4} value={conditions} onChange={(e) => setConditions(e.target.value)} placeholder='{"payload.severity": {"equals": "high"}} (empty = every event)' />
      </Card>
      <Card title="Action *">
        <select className="input mb-3" name="action" value={actionRef} disabled={editing || !pack} onChange={(e) => { setActionRef(e.target.value); setActionParams({}); }}>
          <option value="">{pack ? "— select an action —" : "Select a pack first"}</option>
          {(actions.data ?? []).map((a) => <option key={a.ref} value={a.ref}>{a.ref} - {a.label}</option>)}
        </select>
        {actionRef && <><h3 className="mb-2 text-sm font-semibold">Action Parameters</h3><ParamSchemaForm schema={actionSchema} values={actionParams} onChange={setActionParams} errors={errors.action} allowTemplates /></>}
      </Card>
      <div className="flex gap-2">
        <button type="submit" className="btn btn-primary" disabled={save.isPending}>{save.isPending ? "Saving…" : editing ? "Save" : "Create Rule"}</button>
        <button type="button" className="btn" onClick={() => navigate(-1)}>Cancel</button>
      </div>
    </form>
  );
}
