// "Configure Task": the selected task's name, action and input, transitions, iteration, retry, join.
import { useEffect, useRef, useState, type ReactNode } from "react";
import { useQuery } from "@tanstack/react-query";
import { get } from "@/api/http";
import type { Action, ActionSummary } from "@/api/types";
import { ParamSchemaForm } from "@/components/ParamSchemaForm";
import { flatten } from "@/components/schema";
import { DASH, edgeColour, edgeLabel, PRESETS, type LineStyle, type Task, type Transition } from "./model";

const SWATCHES = ["#22c55e", "#ef4444", "#6b7280", "#8b5cf6", "#3b82f6", "#f59e0b", "#ec4899", "#14b8a6", "#f97316"];

function Section({ title, open: initial = false, children }: { title: string; open?: boolean; children: ReactNode }) {
  const [open, setOpen] = useState(initial);
  return (
    <div className="border-b">
      <button className="flex w-full justify-between px-3 py-2 text-left text-sm font-semibold" onClick={() => setOpen(!open)}>{title}<span>{open ? "▾" : "▸"}</span></button>
      {open && <div className="space-y-2 px-3 pb-3">{children}</div>}
    </div>
  );
}

function BlurInput({ value, onCommit, ...rest }: { value: string; onCommit: (v: string) => void } & Omit<React.InputHTMLAttributes<HTMLInputElement>, "value" | "onChange">) {
  const [text, setText] = useState(value);
  useEffect(() => setText(value), [value]);
  return <input {...rest} className="input" value={text} onChange={(e) => setText(e.target.value)} onBlur={() => text !== value && onCommit(text)} />;
}

const num = (v: string) => (v.trim() === "" ? undefined : Number(v));

function TransitionCard({ t, index, task, tasks, flash, update, remove }: { t: Transition; index: number; task: Task; tasks: Task[]; flash: boolean; update: (c: Partial<Transition>) => void; remove: () => void }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => { if (flash) ref.current?.scrollIntoView({ block: "nearest" }); }, [flash]);
  const free = tasks.filter((x) => !(t.do ?? []).includes(x.name));
  return (
    <div ref={ref} className={`space-y-2 rounded border p-2 transition ${flash ? "bg-yellow-100" : ""}`} data-transition={index}>
      <div className="flex items-center gap-2 text-sm">
        <span className="h-3 w-3 rounded-full" style={{ background: edgeColour(t) }} />
        <span className="flex-1 font-medium">{edgeLabel(t)}</span>
        <button className="text-xs text-red-600" onClick={remove} aria-label="Delete transition">Delete</button>
      </div>
      <input className="input" aria-label="Transition label" placeholder={edgeLabel({ ...t, label: undefined })} value={t.label ?? ""} onChange={(e) => update({ label: e.target.value || undefined })} />
      <div className="flex flex-wrap items-center gap-1">
        {SWATCHES.map((c) => <button key={c} aria-label={`Colour ${c}`} className={`h-5 w-5 rounded-full ${t.color === c ? "ring-2 ring-offset-1" : ""}`} style={{ background: c }} onClick={() => update({ color: t.color === c ? undefined : c })} />)}
        <input type="color" aria-label="Custom colour" value={t.color ?? edgeColour(t)} onChange={(e) => update({ color: e.target.value })} className="h-5 w-6" />
      </div>
      <div className="flex gap-1">
        {(["solid", "dashed", "dotted", "dash-dot"] as LineStyle[]).map((s) => (
          <button key={s} aria-label={`Line ${s}`} className={`rounded border p-1 ${(t.line_style ?? "solid") === s ? "border-blue-500" : ""}`} onClick={() => update({ line_style: s === "solid" ? undefined : s })}>
            <svg width="36" height="6"><line x1="0" y1="3" x2="36" y2="3" stroke="#374151" strokeWidth="2" strokeDasharray={DASH[s]} /></svg>
          </button>
        ))}
      </div>
      <input className="input font-mono text-xs" aria-label="When" placeholder="(empty = always)" value={t.when ?? ""} onChange={(e) => update({ when: e.target.value || undefined })} />
      <div className="flex gap-1 text-xs">
        <button className="btn text-xs" onClick={() => update({ when: PRESETS.succeeded.when })}>On Success</button>
        <button className="btn text-xs" onClick={() => update({ when: PRESETS.failed.when })}>On Failure</button>
        <button className="btn text-xs" onClick={() => update({ when: undefined })}>Always</button>
      </div>
      <div className="flex flex-wrap gap-1">
        {(t.do ?? []).map((name) => (
          <span key={name} className="rounded bg-blue-50 px-2 text-xs">{name} <button aria-label={`Remove target ${name}`} onClick={() => update({ do: (t.do ?? []).filter((x) => x !== name) })}>×</button></span>
        ))}
      </div>
      <select className="input text-xs" aria-label="Add target task" value="" onChange={(e) => e.target.value && update({ do: [...(t.do ?? []), e.target.value] })}>
        <option value="">+ Add target task...</option>
        {free.map((x) => <option key={x.id} value={x.name}>{x.name}{x.id === task.id ? " (self)" : ""}</option>)}
      </select>
      <div className="space-y-1">
        {(t.publish ?? []).map((entry, i) => {
          const [k, v] = Object.entries(entry)[0] ?? ["", ""];
          const set = (nk: string, nv: string) => update({ publish: (t.publish ?? []).map((p, j) => (j === i ? { [nk]: nv } : p)) });
          return (
            <div key={i} className="flex items-center gap-1 text-xs">
              <input className="input font-mono" placeholder="var_name" value={k} onChange={(e) => set(e.target.value, String(v))} />=
              <input className="input font-mono" placeholder="{{ result() }}" value={String(v)} onChange={(e) => set(k, e.target.value)} />
              <button aria-label="Remove variable" onClick={() => update({ publish: (t.publish ?? []).filter((_, j) => j !== i) })}>×</button>
            </div>
          );
        })}
        <button className="btn text-xs" onClick={() => update({ publish: [...(t.publish ?? []), { [`var_${(t.publish ?? []).length + 1}`]: "{{ result() }}" }] })}>Add variable</button>
      </div>
    </div>
  );
}

export function Inspector({ task, tasks, actions, flash, onChange, onRename, onClose }: {
  task: Task; tasks: Task[]; actions: ActionSummary[]; flash: number | null;
  onChange: (task: Task) => void; onRename: (name: string) => void; onClose: () => void;
}) {
  const action = useQuery({ queryKey: ["actions", task.action], enabled: !!task.action, queryFn: () => get<Action>(`/api/v1/actions/${task.action}`) });
  const schema = flatten(action.data?.param_schema);
  const set = (change: Partial<Task>) => onChange({ ...task, ...change });
  const setT = (i: number, change: Partial<Transition>) => set({ next: task.next.map((n, j) => (j === i ? { ...n, ...change } : n)) });
  const addT = (t: Transition) => set({ next: [...task.next, t] });
  return (
    <aside className="w-80 shrink-0 overflow-y-auto border-l bg-white" data-testid="task-inspector">
      <div className="flex items-center justify-between border-b px-3 py-2"><h2 className="font-semibold">Configure Task</h2><button aria-label="Close inspector" onClick={onClose}>×</button></div>
      <Section title="Basic" open>
        <BlurInput aria-label="Task name" value={task.name} onCommit={(v) => v && onRename(v.replace(/[^a-zA-Z0-9_-]/g, "_"))} />
      </Section>
      <Section title="Action" open>
        <select className="input" aria-label="Task action" value={task.action} onChange={(e) => set({ action: e.target.value, input: {} })}>
          <option value="">— choose an action —</option>
          {actions.map((a) => <option key={a.ref} value={a.ref}>{a.ref} ({a.label})</option>)}
        </select>
        {action.data?.description && <p className="text-xs text-gray-500">{action.data.description}</p>}
        {task.action && (Object.keys(schema).length ? (
          <><h3 className="text-xs font-semibold uppercase text-gray-500">Input Parameters</h3>
            <ParamSchemaForm schema={schema} values={task.input} onChange={(input) => set({ input })} allowTemplates hideTemplateHint /></>
        ) : <p className="text-xs text-gray-500">This action has no declared parameters.</p>)}
      </Section>
      <Section title={`Transitions (${task.next.length})`} open>
        {task.next.map((t, i) => <TransitionCard key={i} t={t} index={i} task={task} tasks={tasks} flash={flash === i} update={(c) => setT(i, c)} remove={() => set({ next: task.next.filter((_, j) => j !== i) })} />)}
        <div className="flex flex-wrap gap-1">
          <button className="btn text-xs" onClick={() => addT({ when: PRESETS.succeeded.when, label: PRESETS.succeeded.label, color: PRESETS.succeeded.color, do: [] })}>+ On Success</button>
          <button className="btn text-xs" onClick={() => addT({ when: PRESETS.failed.when, label: PRESETS.failed.label, color: PRESETS.failed.color, line_style: "dashed", do: [] })}>+ On Failure</button>
          <button className="btn text-xs" onClick={() => addT({ when: "{{ }}", do: [] })}>+ Custom transition</button>
        </div>
      </Section>
      <Section title="Iteration">
        <BlurInput aria-label="With items" placeholder="{{ parameters.items }}" value={task.with_items ?? ""} onCommit={(v) => set({ with_items: v || undefined })} />
        <div className="grid grid-cols-2 gap-2">
          <input className="input" type="number" min={1} placeholder="Batch Size" disabled={!task.with_items} value={task.batch_size ?? ""} onChange={(e) => set({ batch_size: num(e.target.value) })} />
          <input className="input" type="number" min={1} placeholder="Concurrency" disabled={!task.with_items} value={task.concurrency ?? ""} onChange={(e) => set({ concurrency: num(e.target.value) })} />
        </div>
      </Section>
      <Section title="Delay, Retry & Timeout">
        <div className="grid grid-cols-2 gap-2">
          <BlurInput aria-label="Delay" type="number" placeholder="Delay (s)" value={task.delay?.toString() ?? ""} onCommit={(v) => set({ delay: num(v) })} />
          <BlurInput aria-label="Timeout" type="number" placeholder="Timeout (s)" value={task.timeout?.toString() ?? ""} onCommit={(v) => set({ timeout: num(v) })} />
        </div>
        {task.retry ? (
          <div className="grid grid-cols-2 gap-2 text-xs">
            <label>Count<input className="input" type="number" min={1} max={100} value={task.retry.count} onChange={(e) => set({ retry: { ...task.retry!, count: Number(e.target.value) } })} /></label>
            <label>Delay<input className="input" type="number" min={0} value={task.retry.delay} onChange={(e) => set({ retry: { ...task.retry!, delay: Number(e.target.value) } })} /></label>
            <label>Backoff<select className="input" value={task.retry.backoff} onChange={(e) => set({ retry: { ...task.retry!, backoff: e.target.value as "constant" } })}><option>constant</option><option>linear</option><option>exponential</option></select></label>
            {task.retry.backoff !== "constant" && <label>Max Delay<input className="input" type="number" value={task.retry.max_delay ?? ""} onChange={(e) => set({ retry: { ...task.retry!, max_delay: num(e.target.value) } })} /></label>}
            <button className="btn col-span-2 text-xs" onClick={() => set({ retry: undefined })}>Remove retry</button>
          </div>
        ) : <button className="btn text-xs" onClick={() => set({ retry: { count: 3, delay: 5, backoff: "constant" } })}>Add retry configuration</button>}
      </Section>
      <Section title="Join">
        <input className="input" type="number" min={1} aria-label="Join count" placeholder="Join Count (empty = no barrier)" value={task.join ?? ""} onChange={(e) => set({ join: num(e.target.value) })} />
      </Section>
    </aside>
  );
}
