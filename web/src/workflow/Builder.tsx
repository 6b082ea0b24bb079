// The visual workflow builder (web-ui.md §6): toolbar, palette, canvas, inspector, YAML view, save.
import { useEffect, useMemo, useState } from "react";
import { Link, useNavigate, useParams } from "react-router-dom";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import yaml from "js-yaml";
import { get, getAll, post, put } from "@/api/http";
import { ApiError } from "@/api/errors";
import type { ActionSummary, PackSummary, Workflow } from "@/api/types";
import { ConfirmModal, ErrorBox, Modal, Spinner } from "@/components/ui";
import { SchemaBuilder } from "@/components/SchemaBuilder";
import type { FlatSchema } from "@/components/schema";
import { Canvas } from "./Canvas";
import { Inspector } from "./Inspector";
import { addTask, addTransitionTarget, deleteTask, emptyWorkflow, fromDefinition, renameTask, startTasks, toDefinition, validate, type WorkflowState } from "./model";

export function definitionYaml(state: WorkflowState): string {
  return yaml.dump(toDefinition(state), { indent: 2, lineWidth: 120, noRefs: true, sortKeys: false });
}

function useServerValidation(definition: Record<string, unknown>, enabled: boolean) {
  const [problems, setProblems] = useState<string[]>([]);
  const text = JSON.stringify(definition);
  useEffect(() => {
    if (!enabled) return;
    const timer = window.setTimeout(() => {
      post<{ valid: boolean; errors: string[] }>("/api/v1/workflows/validate", { definition: JSON.parse(text) })
        .then((r) => setProblems(r.errors))
        .catch(() => setProblems([]));
    }, 600);
    return () => window.clearTimeout(timer);
  }, [text, enabled]);
  return problems;
}

export default function Builder() {
  const { ref: editRef } = useParams();
  const navigate = useNavigate();
  const client = useQueryClient();
  const existing = useQuery({ queryKey: ["workflows", editRef], enabled: !!editRef, queryFn: () => get<Workflow>(`/api/v1/workflows/${editRef}`) });
  const packs = useQuery({ queryKey: ["packs", "all"], queryFn: () => getAll<PackSummary>("/api/v1/packs") });
  const actions = useQuery({ queryKey: ["actions", "all"], queryFn: () => getAll<ActionSummary>("/api/v1/actions") });
  const [state, setState] = useState<WorkflowState>(emptyWorkflow());
  const [loaded, setLoaded] = useState(!editRef);
  const [mode, setMode] = useState<"visual" | "yaml">("visual");
  const [tab, setTab] = useState<"actions" | "inputs">("actions");
  const [selected, setSelected] = useState<string | null>(null);
  const [flash, setFlash] = useState<number | null>(null);
  const [search, setSearch] = useState("");
  const [status, setStatus] = useState<{ ok: boolean; text: string } | null>(null);
  const [showIssues, setShowIssues] = useState(false);
  const [confirmSave, setConfirmSave] = useState(false);
  const [schemaEdit, setSchemaEdit] = useState<{ kind: "parameters" | "output"; draft: FlatSchema } | null>(null);
  const [toast, setToast] = useState(false);

  useEffect(() => {
    const w = existing.data;
    if (!w) return;
    setState(fromDefinition(w.definition as Record<string, unknown>, w));
    setLoaded(true);
  }, [existing.data]);

  const { errors, warnings } = useMemo(() => validate(state), [state]);
  const definition = useMemo(() => toDefinition(state), [state]);
  const serverProblems = useServerValidation(definition, loaded && state.tasks.length > 0 && !!state.packRef && !!state.name);
  const issues = [...errors, ...serverProblems.filter((p) => !errors.includes(p)), ...warnings];
  const startWarning = warnings.find((w) => w.startsWith("Several start")) ?? errors.find((e) => e.startsWith("No start"));
  // Start-task toast: at once on load, else 15 s after the problem appears while editing.
  useEffect(() => {
    if (!startWarning) { setToast(false); return; }
    const timer = window.setTimeout(() => setToast(true), editRef && !toast ? 0 : 15000);
    return () => window.clearTimeout(timer);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [startWarning]);

  const save = useMutation({
    mutationFn: async () => {
      const body = {
        name: state.name, label: state.label, description: state.description || undefined, version: state.version, pack_ref: state.packRef,
        definition, param_schema: Object.keys(state.parameters).length ? state.parameters : undefined,
        out_schema: Object.keys(state.output).length ? state.output : undefined, tags: state.tags.length ? state.tags : undefined, enabled: state.enabled,
      };
      const ref = `${state.packRef}.${state.name}`;
      if (editRef) return put<Workflow>(`/api/v1/workflows/${editRef}/file`, body);
      try {
        return await post<Workflow>(`/api/v1/packs/${state.packRef}/workflow-files`, body);
      } catch (error) {
        if (error instanceof ApiError && error.status === 409) return put<Workflow>(`/api/v1/workflows/${ref}/file`, body);
        throw error;
      }
    },
    onSuccess: (w) => {
      setStatus({ ok: true, text: "✓ Saved" });
      window.setTimeout(() => setStatus(null), 3000);
      void client.invalidateQueries({ queryKey: ["workflows"] });
      void client.invalidateQueries({ queryKey: ["actions"] });
      if (!editRef) navigate(`/actions/workflows/${w.ref}/edit`, { replace: true });
    },
    onError: (error) => setStatus({ ok: false, text: `✗ ${error.message}` }),
  });
  const trySave = () => {
    if (errors.length) { setShowIssues(true); setStatus({ ok: false, text: `✗ ${errors[0]}` }); return; }
    if (warnings.length) { setConfirmSave(true); return; }
    save.mutate();
  };

  if (editRef && existing.isLoading) return <Spinner />;
  if (editRef && existing.error) return <ErrorBox error={existing.error} />;
  const set = (change: Partial<WorkflowState>) => setState((s) => ({ ...s, ...change }));
  const setTasks = (tasks: WorkflowState["tasks"]) => setState((s) => ({ ...s, tasks }));
  const selectedTask = state.tasks.find((t) => t.id === selected) ?? null;
  const grouped = new Map<string, ActionSummary[]>();
  for (const a of actions.data ?? []) {
    if (search && !`${a.ref} ${a.label}`.toLowerCase().includes(search.toLowerCase())) continue;
    grouped.set(a.pack_ref, [...(grouped.get(a.pack_ref) ?? []), a]);
  }
  const add = (action: string) => {
    const task = addTask(state.tasks, action);
    setTasks([...state.tasks, task]);
    setSelected(task.id);
  };
  return (
    <div className="-m-6 flex h-[calc(100%+3rem)] flex-col">
      <div className="space-y-2 border-b bg-white px-4 py-2">
        <div className="flex flex-wrap items-center gap-2">
          <Link className="btn" to={editRef ? `/actions/${editRef}` : "/actions"}>←</Link>
          <select className="input w-28" aria-label="Pack" value={state.packRef} disabled={!!editRef} onChange={(e) => set({ packRef: e.target.value })}>
            <option value="">pack…</option>
            {(packs.data ?? []).map((p) => <option key={p.ref} value={p.ref}>{p.ref}</option>)}
          </select>
          <span>/</span>
          <input className="input w-36 font-mono" aria-label="Workflow name" placeholder="name" value={state.name} disabled={!!editRef}
            onChange={(e) => set({ name: e.target.value.toLowerCase().replace(/[^a-z0-9_-]/g, "_") })} />
          <span>—</span>
          <input className="input w-40" aria-label="Workflow label" placeholder="Label" value={state.label} onChange={(e) => set({ label: e.target.value })} />
          <input className="input w-16" aria-label="Version" value={state.version} onChange={(e) => set({ version: e.target.value })} />
          <button className={`btn ${issues.length ? "text-amber-700" : ""}`} onClick={() => setShowIssues(!showIssues)} data-testid="issues-button">{issues.length} issues</button>
          <div className="flex rounded border" role="group">
            <button className={`px-3 py-1 text-sm ${mode === "visual" ? "bg-blue-600 text-white" : ""}`} onClick={() => setMode("visual")}>Visual</button>
            <button className={`px-3 py-1 text-sm ${mode === "yaml" ? "bg-blue-600 text-white" : ""}`} onClick={() => setMode("yaml")}>Raw YAML</button>
          </div>
          {status && <span className={`text-sm ${status.ok ? "text-green-700" : "text-red-700"}`} data-testid="save-status">{status.text}</span>}
          <button className="btn btn-primary ml-auto" onClick={trySave} disabled={save.isPending}>{save.isPending ? "Saving…" : editRef ? "Update" : "Save"}</button>
        </div>
        <div className="flex flex-wrap items-center gap-2">
          <input className="input flex-1" aria-label="Description" placeholder="Description" value={state.description} onChange={(e) => set({ description: e.target.value })} />
          <input className="input w-56" aria-label="Tags" placeholder="tags, comma-separated" value={state.tags.join(", ")} onChange={(e) => set({ tags: e.target.value.split(",").map((s) => s.trim()).filter(Boolean) })} />
          <label className="flex items-center gap-1 text-sm"><input type="checkbox" checked={state.enabled} onChange={(e) => set({ enabled: e.target.checked })} />Enabled</label>
        </div>
        {showIssues && issues.length > 0 && (
          <ul className="max-h-32 overflow-y-auto rounded border border-amber-200 bg-amber-50 p-2 text-xs text-amber-900" data-testid="issues-list">
            {issues.map((i) => <li key={i}>• {i}</li>)}
          </ul>
        )}
      </div>
      {toast && startWarning && (
        <div className="absolute right-6 top-24 z-20 max-w-sm rounded border border-amber-300 bg-amber-50 p-3 text-sm text-amber-900 shadow" role="status">
          {startWarning} <button className="ml-2 text-xs underline" onClick={() => setToast(false)}>Dismiss</button>
        </div>
      )}
      {mode === "yaml" ? (
        <pre className="flex-1 overflow-auto bg-gray-900 p-4 font-mono text-xs text-gray-100" data-testid="workflow-yaml">{definitionYaml(state)}</pre>
      ) : (
        <div className="flex min-h-0 flex-1">
          <aside className="flex w-56 shrink-0 flex-col border-r bg-white">
            <div className="flex border-b text-sm">
              {(["actions", "inputs"] as const).map((t) => <button key={t} className={`flex-1 py-2 capitalize ${tab === t ? "border-b-2 border-blue-600 font-semibold" : ""}`} onClick={() => setTab(t)}>{t}</button>)}
            </div>
            {tab === "actions" ? (
              <div className="flex-1 overflow-y-auto p-2">
                <input className="input mb-2" placeholder="Search actions" aria-label="Search palette" value={search} onChange={(e) => setSearch(e.target.value)} />
                {[...grouped.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([pack, list]) => (
                  <div key={pack} className="mb-2">
                    <div className="text-xs font-semibold uppercase text-gray-500">{pack}</div>
                    {list.map((a) => <button key={a.ref} className="block w-full truncate rounded px-2 py-1 text-left font-mono text-xs hover:bg-blue-50" data-palette={a.ref} onClick={() => add(a.ref)}>{a.ref}</button>)}
                  </div>
                ))}
              </div>
            ) : (
              <div className="flex-1 space-y-3 overflow-y-auto p-2 text-xs">
                {(["parameters", "output"] as const).map((kind) => (
                  <div key={kind}>
                    <div className="flex items-center justify-between"><span className="font-semibold uppercase text-gray-500">{kind === "parameters" ? "Inputs" : "Output"}</span>
                      <button className="text-blue-600" onClick={() => setSchemaEdit({ kind, draft: state[kind] })}>Edit</button></div>
                    {Object.entries(state[kind]).map(([name, def]) => (
                      <div key={name} className="font-mono">{name}{def.required && "*"} <span className="text-gray-400">{def.type ?? "string"}{def.secret && " secret"}{def.default !== undefined && ` = ${JSON.stringify(def.default)}`}</span></div>
                    ))}
                    {kind === "parameters" && <p className="mt-1 text-gray-400">Use as {"{{ parameters.<name> }}"}</p>}
                  </div>
                ))}
              </div>
            )}
          </aside>
          <div className="min-w-0 flex-1">
            <Canvas tasks={state.tasks} selectedTask={selected} onSelectTask={(id) => { setSelected(id); setFlash(null); }}
              onTasksChange={setTasks}
              onConnect={(source, preset, target) => {
                const targetName = state.tasks.find((t) => t.id === target)?.name;
                if (targetName) setTasks(state.tasks.map((t) => (t.id === source ? addTransitionTarget(t, preset, targetName) : t)));
              }}
              onDeleteTask={(id) => { setTasks(deleteTask(state.tasks, id)); if (selected === id) setSelected(null); }}
              onSelectTransition={(_, index) => { setFlash(index); window.setTimeout(() => setFlash(null), 1500); }}
              onAddTask={() => add("")} />
          </div>
          {selectedTask && (
            <Inspector key={selectedTask.id} task={selectedTask} tasks={state.tasks} actions={actions.data ?? []} flash={flash}
              onChange={(task) => setTasks(state.tasks.map((t) => (t.id === task.id ? task : t)))}
              onRename={(name) => setTasks(renameTask(state.tasks, selectedTask.id, name))}
              onClose={() => setSelected(null)} />
          )}
        </div>
      )}
      {schemaEdit && (
        <Modal title={schemaEdit.kind === "parameters" ? "Workflow Inputs" : "Workflow Output"} onClose={() => setSchemaEdit(null)} wide>
          <SchemaBuilder value={schemaEdit.draft} onChange={(draft) => setSchemaEdit({ ...schemaEdit, draft })} />
          <div className="mt-4 flex justify-end gap-2">
            <button className="btn" onClick={() => setSchemaEdit(null)}>Cancel</button>
            <button className="btn btn-primary" onClick={() => { set({ [schemaEdit.kind]: schemaEdit.draft }); setSchemaEdit(null); }}>Apply</button>
          </div>
        </Modal>
      )}
      {confirmSave && (
        <ConfirmModal title="Save with warnings?" confirmLabel="Save Anyway" onClose={() => setConfirmSave(false)}
          message={<ul>{warnings.map((w) => <li key={w}>{w}</li>)}</ul>}
          onConfirm={() => { setConfirmSave(false); save.mutate(); }} />
      )}
      {save.error && !(save.error instanceof ApiError && save.error.status === 409) && <div className="hidden"><ErrorBox error={save.error} /></div>}
      <span className="hidden" data-testid="start-tasks">{startTasks(state.tasks).map((t) => t.name).join(",")}</span>
    </div>
  );
}
