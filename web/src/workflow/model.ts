// Workflow builder model, (de)serialisation and client-side checks (docs/workflows.md; web-ui.md §6).
import type { FlatSchema } from "@/components/schema";

export type XY = { x: number; y: number };
export type LineStyle = "solid" | "dashed" | "dotted" | "dash-dot";
export type Transition = {
  when?: string;
  publish?: Record<string, string>[];
  do?: string[];
  label?: string;
  color?: string;
  line_style?: LineStyle;
  edge_waypoints?: Record<string, XY[]>;
  label_positions?: Record<string, number>;
};
export type Retry = { count: number; delay: number; backoff: "constant" | "linear" | "exponential"; max_delay?: number; on_error?: string };
export type Task = {
  id: string;
  name: string;
  action: string;
  input: Record<string, unknown>;
  next: Transition[];
  delay?: number;
  retry?: Retry;
  timeout?: number;
  with_items?: string;
  batch_size?: number;
  concurrency?: number;
  join?: number;
  position: XY;
};
export type WorkflowState = {
  name: string;
  label: string;
  description: string;
  version: string;
  packRef: string;
  parameters: FlatSchema;
  output: FlatSchema;
  vars: Record<string, unknown>;
  tasks: Task[];
  tags: string[];
  enabled: boolean;
  extra: Record<string, unknown>; // keys the builder does not edit (output_map, ...) survive a save
};

export type Preset = "succeeded" | "failed" | "always";
export const PRESETS: Record<Preset, { when?: string; label: string; color: string; line_style: LineStyle }> = {
  succeeded: { when: "{{ succeeded() }}", label: "On Success", color: "#22c55e", line_style: "solid" },
  failed: { when: "{{ failed() }}", label: "On Failure", color: "#ef4444", line_style: "dashed" },
  always: { label: "Always", color: "#6b7280", line_style: "solid" },
};
export const CUSTOM_COLOUR = "#8b5cf6";
export const DASH: Record<LineStyle, string | undefined> = { solid: undefined, dashed: "6,4", dotted: "2,3", "dash-dot": "8,4,2,4" };

let counter = 0;
export const newId = () => `t${Date.now().toString(36)}${(counter++).toString(36)}`;

export const normalise = (when?: string) => (when ?? "").toLowerCase().replace(/\s+/g, "");

export function edgeType(t: Transition): "success" | "failure" | "always" | "custom" {
  const w = normalise(t.when);
  if (!w) return "always";
  if (w.includes("succeeded()")) return "success";
  if (w.includes("failed()")) return "failure";
  return "custom";
}

export function edgeColour(t: Transition): string {
  if (t.color) return t.color;
  return { success: "#22c55e", failure: "#ef4444", always: "#6b7280", custom: CUSTOM_COLOUR }[edgeType(t)];
}

export function edgeLabel(t: Transition): string {
  if (t.label) return t.label;
  const type = edgeType(t);
  if (type === "success") return "succeeded";
  if (type === "failure") return "failed";
  if (type === "always") return "always";
  return (t.when ?? "").slice(0, 30);
}

export function presetOf(t: Transition): Preset | null {
  const w = normalise(t.when);
  if (!w) return "always";
  if (w === normalise(PRESETS.succeeded.when)) return "succeeded";
  if (w === normalise(PRESETS.failed.when)) return "failed";
  return null;
}

export function startTasks(tasks: Task[]): Task[] {
  const targeted = new Set(tasks.flatMap((t) => t.next.flatMap((n) => n.do ?? [])));
  return tasks.filter((t) => !targeted.has(t.name));
}
export const isStop = (t: Task) => !t.next.some((n) => (n.do ?? []).length > 0);

export function emptyWorkflow(packRef = ""): WorkflowState {
  return { name: "", label: "", description: "", version: "1.0.0", packRef, parameters: {}, output: {}, vars: {}, tasks: [], tags: [], enabled: true, extra: {} };
}

export function addTransitionTarget(task: Task, preset: Preset, target: string): Task {
  const spec = PRESETS[preset];
  const index = task.next.findIndex((n) => normalise(n.when) === normalise(spec.when));
  const next = [...task.next];
  if (index >= 0) {
    const t = next[index];
    next[index] = { ...t, do: (t.do ?? []).includes(target) ? t.do : [...(t.do ?? []), target] };
  } else {
    next.push({ ...(spec.when ? { when: spec.when } : {}), do: [target], label: spec.label, color: spec.color, ...(spec.line_style !== "solid" ? { line_style: spec.line_style } : {}) });
  }
  return { ...task, next };
}

const renameKeys = <T,>(record: Record<string, T> | undefined, from: string, to: string) =>
  record ? Object.fromEntries(Object.entries(record).map(([k, v]) => [k === from ? to : k, v])) : record;

export function renameTask(tasks: Task[], id: string, name: string): Task[] {
  const old = tasks.find((t) => t.id === id)?.name;
  if (!old || old === name) return tasks;
  return tasks.map((t) => ({
    ...(t.id === id ? { ...t, name } : t),
    next: t.next.map((n) => ({
      ...n,
      do: n.do?.map((d) => (d === old ? name : d)),
      edge_waypoints: renameKeys(n.edge_waypoints, old, name),
      label_positions: renameKeys(n.label_positions, old, name),
    })),
  }));
}

const dropKey = <T,>(record: Record<string, T> | undefined, key: string) => {
  if (!record) return record;
  const rest = { ...record };
  delete rest[key];
  return Object.keys(rest).length ? rest : undefined;
};

export function deleteTask(tasks: Task[], id: string): Task[] {
  const name = tasks.find((t) => t.id === id)?.name;
  return tasks.filter((t) => t.id !== id).map((t) => ({
    ...t,
    next: t.next
      .map((n) => ({ ...n, do: n.do?.filter((d) => d !== name), edge_waypoints: dropKey(n.edge_waypoints, name ?? ""), label_positions: dropKey(n.label_positions, name ?? "") }))
      .filter((n) => (n.do ?? []).length > 0 || (n.publish ?? []).length > 0),
  }));
}

export function addTask(tasks: Task[], action: string): Task {
  const base = action ? action.split(".").pop()! : "task";
  let n = tasks.length + 1;
  while (tasks.some((t) => t.name === `${base}_${n}`)) n++;
  const y = tasks.length ? Math.max(...tasks.map((t) => t.position.y)) + 160 : 60;
  return { id: newId(), name: `${base}_${n}`, action, input: {}, next: [], position: { x: 300, y } };
}

// -- serialisation ---------------------------------------------------------------------------------

const compact = <T extends object>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== null && v !== "")) as T;

export function toDefinition(state: WorkflowState, schemas: Record<string, FlatSchema> = {}): Record<string, unknown> {
  const tasks = state.tasks.map((task) => {
    const schema = schemas[task.action] ?? {};
    const input = Object.fromEntries(Object.entries(task.input).filter(([k, v]) => {
      const def = schema[k];
      if (def && def.default !== undefined && JSON.stringify(def.default) === JSON.stringify(v)) return false;
      if (v === "" && (!def || def.default === undefined)) return false;
      return v !== undefined;
    }));
    const next = task.next.map((n) => {
      const meta = compact({ label: n.label, color: n.color, line_style: n.line_style, edge_waypoints: n.edge_waypoints && Object.keys(n.edge_waypoints).length ? n.edge_waypoints : undefined, label_positions: n.label_positions && Object.keys(n.label_positions).length ? n.label_positions : undefined });
      return compact({ when: n.when, publish: n.publish?.length ? n.publish : undefined, do: n.do?.length ? n.do : undefined, __chart_meta__: Object.keys(meta).length ? meta : undefined });
    });
    return compact({
      name: task.name, action: task.action, input: Object.keys(input).length ? input : undefined,
      next: next.length ? next : undefined, delay: task.delay, with_items: task.with_items, batch_size: task.batch_size,
      concurrency: task.concurrency, retry: task.retry, timeout: task.timeout, join: task.join,
      __chart_meta__: { position: { x: Math.round(task.position.x), y: Math.round(task.position.y) } },
    });
  });
  return compact({
    ...state.extra,
    ref: `${state.packRef}.${state.name}`, label: state.label, version: state.version, description: state.description || undefined,
    parameters: Object.keys(state.parameters).length ? state.parameters : undefined,
    output: Object.keys(state.output).length ? state.output : undefined,
    vars: Object.keys(state.vars).length ? state.vars : undefined,
    tags: state.tags.length ? state.tags : undefined,
    tasks,
  });
}

type RawTask = Record<string, unknown> & { name: string; action?: string; input?: Record<string, unknown>; next?: Record<string, unknown>[] };
const LEGACY: [string, string | undefined][] = [["on_success", "{{ succeeded() }}"], ["on_failure", "{{ failed() }}"], ["on_complete", undefined], ["on_timeout", "{{ timed_out() }}"]];
const asList = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : typeof v === "string" ? [v] : []);

export function fromDefinition(doc: Record<string, unknown>, meta: { ref: string; pack_ref: string; label: string; description?: string | null; version: string; tags?: string[]; enabled?: boolean; param_schema?: unknown; out_schema?: unknown }): WorkflowState {
  const rawTasks = (Array.isArray(doc.tasks) ? doc.tasks : []) as RawTask[];
  const tasks: Task[] = rawTasks.map((raw, i) => {
    const next: Transition[] = (raw.next ?? []).map((n) => {
      const chart = (n.__chart_meta__ ?? {}) as Partial<Transition>;
      return compact({ when: n.when as string | undefined, publish: n.publish as Record<string, string>[] | undefined, do: asList(n.do), label: chart.label, color: chart.color, line_style: chart.line_style, edge_waypoints: chart.edge_waypoints, label_positions: chart.label_positions });
    });
    for (const [key, when] of LEGACY) {
      if (raw[key] !== undefined) next.push(compact({ when, do: asList(raw[key]) }));
    }
    if (Array.isArray(raw.decision)) {
      for (const branch of raw.decision as Record<string, unknown>[]) next.push(compact({ when: (branch.when ?? branch.if) as string | undefined, do: asList(branch.do ?? branch.then) }));
    }
    if (raw.publish) {
      const entries = Array.isArray(raw.publish) ? raw.publish : Object.entries(raw.publish as Record<string, string>).map(([k, v]) => ({ [k]: v }));
      let index = next.findIndex((n) => edgeType(n) === "success");
      if (index < 0) { next.push({ when: PRESETS.succeeded.when, do: [] }); index = next.length - 1; }
      next[index] = { ...next[index], publish: [...(next[index].publish ?? []), ...(entries as Record<string, string>[])] };
    }
    const chart = (raw.__chart_meta__ ?? {}) as { position?: XY };
    return compact({
      id: newId(), name: raw.name, action: raw.action ?? "", input: raw.input ?? {}, next,
      delay: raw.delay as number | undefined, retry: raw.retry as Retry | undefined, timeout: raw.timeout as number | undefined,
      with_items: raw.with_items as string | undefined, batch_size: raw.batch_size as number | undefined, concurrency: raw.concurrency as number | undefined,
      join: typeof raw.join === "number" ? raw.join : undefined,
      position: chart.position ?? { x: 300, y: 80 + 160 * i },
    }) as Task;
  });
  const known = new Set(["ref", "label", "version", "description", "parameters", "output", "vars", "tags", "tasks"]);
  const extra = Object.fromEntries(Object.entries(doc).filter(([k]) => !known.has(k)));
  return {
    name: meta.ref.slice(meta.pack_ref.length + 1), label: meta.label, description: meta.description ?? "", version: meta.version, packRef: meta.pack_ref,
    parameters: (meta.param_schema ?? doc.parameters ?? {}) as FlatSchema, output: (meta.out_schema ?? doc.output ?? {}) as FlatSchema,
    vars: (doc.vars ?? {}) as Record<string, unknown>, tasks, tags: meta.tags ?? [], enabled: meta.enabled ?? true, extra,
  };
}

export function validate(state: WorkflowState): { errors: string[]; warnings: string[] } {
  const errors: string[] = [];
  const warnings: string[] = [];
  if (!state.name) errors.push("Workflow name is required");
  if (!state.label) errors.push("Label is required");
  if (!state.version) errors.push("Version is required");
  if (!state.packRef) errors.push("Pack is required");
  if (!state.tasks.length) errors.push("At least one task is required");
  const names = new Set<string>();
  for (const t of state.tasks) {
    if (names.has(t.name)) errors.push(`Duplicate task name "${t.name}"`);
    names.add(t.name);
    if (!t.action) errors.push(`Task "${t.name}" has no action`);
  }
  for (const t of state.tasks) for (const n of t.next) for (const target of n.do ?? []) {
    if (!names.has(target)) errors.push(`Task "${t.name}" transition (when: ${n.when ?? "always"}) references non-existent task "${target}"`);
  }
  if (state.tasks.length) {
    const starts = startTasks(state.tasks);
    if (starts.length === 0) errors.push("No start task: every task is the target of a transition");
    else if (starts.length > 1) warnings.push(`Several start tasks run in parallel: ${starts.map((t) => t.name).join(", ")}`);
  }
  return { errors, warnings };
}
