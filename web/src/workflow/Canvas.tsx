// The workflow canvas (@xyflow/react): task nodes with succeeded/failed/always handles, transition
// edges with labels, colours, dash styles, waypoints and draggable labels (web-ui.md §6.3).
import { createContext, memo, useContext, useMemo, useRef, useState, type PointerEvent as RPointerEvent } from "react";
import {
  Background, BackgroundVariant, BaseEdge, Controls, EdgeLabelRenderer, Handle, Position, ReactFlow, ReactFlowProvider,
  useReactFlow, type Connection, type Edge, type EdgeProps, type Node, type NodeChange, type NodeProps,
} from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import { Trash2 } from "lucide-react";
import { DASH, edgeColour, edgeLabel, isStop, startTasks, type Preset, type Task, type Transition, type XY } from "./model";
import { nearestT, pathOf, pointAt, sample, segments } from "./geometry";

export const NODE_W = 240;
export const NODE_H = 96;

type CanvasApi = {
  readOnly: boolean;
  statuses?: Record<string, string>;
  onDeleteTask: (id: string) => void;
  onUpdateTransition: (taskId: string, index: number, change: Partial<Transition>) => void;
  selectedEdge: string | null;
  selectEdge: (edgeId: string | null, taskId?: string, index?: number) => void;
  /** The connection in progress (a pressed or clicked handle), which every node offers to end. */
  connectFrom: { source: string; preset: Preset } | null;
  startConnect: (source: string, preset: Preset) => void;
};
const Api = createContext<CanvasApi | null>(null);

const STATUS_HEADER: Record<string, string> = {
  succeeded: "bg-green-500", completed: "bg-green-500", failed: "bg-red-500", timeout: "bg-orange-500", running: "bg-blue-500 animate-pulse",
  scheduled: "bg-yellow-400", requested: "bg-yellow-400", scheduling: "bg-yellow-400", cancelled: "bg-gray-400", canceling: "bg-gray-400", skipped: "bg-gray-300", abandoned: "bg-purple-500",
};

function short(value: unknown): string {
  if (typeof value === "string") return value.length > 25 ? `${value.slice(0, 25)}…` : value;
  if (Array.isArray(value)) return `[${value.length} items]`;
  if (value && typeof value === "object") return `{${Object.keys(value).length} keys}`;
  return String(value);
}

type TaskData = { task: Task; start: boolean };

const HANDLES: [Preset, string, string][] = [["succeeded", "#22c55e", "30%"], ["failed", "#ef4444", "50%"], ["always", "#6b7280", "70%"]];

const TaskNode = memo(function TaskNode({ data, selected }: NodeProps<Node<TaskData>>) {
  const api = useContext(Api)!;
  const { task, start } = data;
  const [hover, setHover] = useState(false);
  const hoverTimer = useRef<number | undefined>(undefined);
  const status = api.statuses?.[task.name];
  const inputs = Object.entries(task.input).filter(([, v]) => v !== undefined && v !== "");
  const targets = new Set(task.next.flatMap((n) => n.do ?? []));
  const from = api.connectFrom;
  const header = status ? STATUS_HEADER[status] ?? "bg-gray-500" : start ? "bg-green-600" : "bg-slate-600";
  return (
    <div className={`relative rounded-lg border bg-white shadow ${from ? "ring-2 ring-purple-500" : selected ? "ring-2 ring-blue-500" : ""}`} style={{ width: NODE_W }}
      data-task={task.name} data-status={status} onMouseEnter={() => { hoverTimer.current = window.setTimeout(() => setHover(true), 400); }}
      onMouseLeave={() => { window.clearTimeout(hoverTimer.current); setHover(false); }}>
      {/* The whole node is a drop target for connections. */}
      <Handle type="target" position={Position.Top} id="in" isConnectableStart={false} className="!absolute !inset-0 !h-full !w-full !translate-x-0 !translate-y-0 !transform-none !rounded-lg !border-0 !bg-transparent !opacity-0" />
      <div className={`flex items-center justify-between rounded-t-lg px-2 py-1 text-sm font-semibold text-white ${header}`}>
        <span className="truncate">{start && "▶ "}{task.name}</span>
        {status && <span className="text-xs font-normal" data-testid={`task-status-${task.name}`}>{status}</span>}
      </div>
      <div className="space-y-0.5 px-2 py-1 text-xs">
        {task.action ? <div className="truncate font-mono text-gray-700">{task.action}</div> : <div className="text-orange-600">No action assigned</div>}
        {inputs.length > 0 && inputs.length <= 2 && inputs.map(([k, v]) => <div key={k} className="truncate text-gray-500">{k}: {short(v)}</div>)}
        <div className="flex flex-wrap gap-1">
          {task.delay ? <span className="rounded bg-gray-100 px-1">delay: {task.delay}s</span> : null}
          {task.with_items && <span className="rounded bg-gray-100 px-1">with_items</span>}
          {task.retry && <span className="rounded bg-gray-100 px-1">retry: {task.retry.count}×</span>}
        </div>
      </div>
      {from && <div className="px-2 text-xs text-purple-700">{from.source === task.id ? "Drop to self-loop" : "Drop to connect"}</div>}
      <div className="flex items-center justify-between px-2 pb-3 text-xs">
        {isStop(task) ? <span className="text-red-600">■ Stop</span> : <span />}
        {!api.readOnly && <button className="nodrag text-gray-400 hover:text-red-600" aria-label={`Delete task ${task.name}`} onClick={(e) => { e.stopPropagation(); api.onDeleteTask(task.id); }}><Trash2 size={14} /></button>}
      </div>
      {HANDLES.map(([preset, colour, left]) => {
        const present = task.next.some((n) => (preset === "always" ? !n.when : (n.when ?? "").replace(/\s/g, "").toLowerCase().includes(`${preset}()`)));
        return (
          <Handle key={preset} type="source" id={preset} position={Position.Bottom} isConnectable={!api.readOnly} title={`On ${preset}`}
            // A click (no drag) starts a connection that a click on any node ends (docs/web-ui.md "Workflow builder").
            onClick={api.readOnly ? undefined : (e) => { e.stopPropagation(); api.startConnect(task.id, preset); }}
            data-handle={preset} style={{ left, background: colour, opacity: present ? 1 : 0.4, width: 12, height: 12, border: "2px solid white", zIndex: 10 }} />
        );
      })}
      {hover && (
        <div className="pointer-events-none absolute left-full top-0 z-50 ml-2 w-56 rounded bg-gray-900 p-2 text-xs text-white shadow-lg">
          {inputs.length > 2 && inputs.map(([k, v]) => <div key={k}>{k}: {short(v)}</div>)}
          <div>{targets.size ? `${targets.size} targets via ${task.next.length} transitions` : task.next.length ? "(publish only)" : "no transitions"}</div>
          {task.timeout && <div>timeout: {task.timeout}s</div>}
          {task.with_items && <div>items: {task.with_items}</div>}
        </div>
      )}
    </div>
  );
});

type EdgeData = { taskId: string; index: number; transition: Transition; target: string; from: XY; to: XY; selfLoop: boolean };

function entryPoint(target: XY, towards: XY): XY {
  const candidates = [{ x: target.x + NODE_W / 2, y: target.y }, { x: target.x, y: target.y + NODE_H / 2 }, { x: target.x + NODE_W, y: target.y + NODE_H / 2 }];
  return candidates.reduce((best, c) => (Math.hypot(c.x - towards.x, c.y - towards.y) < Math.hypot(best.x - towards.x, best.y - towards.y) ? c : best));
}

function TransitionEdge({ id, data }: EdgeProps<Edge<EdgeData>>) {
  const api = useContext(Api)!;
  const flow = useReactFlow();
  const d = data!;
  const t = d.transition;
  const waypoints = t.edge_waypoints?.[d.target] ?? [];
  const start = { x: d.from.x + NODE_W / 2, y: d.from.y + NODE_H };
  const end = d.selfLoop && !waypoints.length ? { x: d.from.x + NODE_W * 0.75, y: d.from.y } : entryPoint(d.to, waypoints[waypoints.length - 1] ?? start);
  const cubics = segments(start, end, waypoints, d.selfLoop);
  const path = pathOf(cubics);
  const samples = useMemo(() => sample(cubics), [path]); // eslint-disable-line react-hooks/exhaustive-deps
  const labelT = t.label_positions?.[d.target] ?? 0.5;
  const labelAt = pointAt(samples, labelT);
  const colour = edgeColour(t);
  const selected = api.selectedEdge === id;
  const label = edgeLabel(t);
  const setWaypoints = (wps: XY[]) => api.onUpdateTransition(d.taskId, d.index, { edge_waypoints: { ...(t.edge_waypoints ?? {}), [d.target]: wps } });
  const drag = (onMove: (p: XY) => void) => (e: RPointerEvent) => {
    if (api.readOnly) return;
    e.stopPropagation();
    e.preventDefault();
    const move = (ev: PointerEvent) => onMove(flow.screenToFlowPosition({ x: ev.clientX, y: ev.clientY }));
    const up = () => { window.removeEventListener("pointermove", move); window.removeEventListener("pointerup", up); };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
  };
  const points = [start, ...waypoints, end];
  const select = () => api.selectEdge(id, d.taskId, d.index);
  return (
    <>
      <BaseEdge id={id} path={path} interactionWidth={16} markerEnd={`url(#arrow-${colour.replace("#", "")})`}
        style={{ stroke: colour, strokeWidth: selected ? 3 : 2, strokeDasharray: DASH[t.line_style ?? "solid"], opacity: selected ? 1 : 0.75, filter: selected ? `drop-shadow(0 0 4px ${colour})` : undefined }} />
      <EdgeLabelRenderer>
        <div className="nodrag nopan absolute cursor-pointer select-none rounded-full border bg-white px-2 py-0.5 text-xs shadow-sm"
          style={{ transform: `translate(-50%, -50%) translate(${labelAt.x}px, ${labelAt.y}px)`, borderColor: colour, color: colour, pointerEvents: "all" }}
          data-edge-label={`${d.taskId}:${d.index}:${d.target}`} data-testid={`edge-label-${label}`}
          onClick={(e) => { e.stopPropagation(); select(); }}
          onDoubleClick={() => !api.readOnly && api.onUpdateTransition(d.taskId, d.index, { label_positions: { ...(t.label_positions ?? {}), [d.target]: 0.5 } })}
          onPointerDown={(e) => { select(); drag((p) => api.onUpdateTransition(d.taskId, d.index, { label_positions: { ...(t.label_positions ?? {}), [d.target]: Math.round(nearestT(samples, p) * 1000) / 1000 } }))(e); }}>
          {label.length > 24 ? `${label.slice(0, 24)}…` : label}
        </div>
        {selected && !api.readOnly && waypoints.map((wp, i) => (
          <div key={`wp${i}`} className="nodrag nopan absolute h-3 w-3 cursor-move rounded-full border-2 bg-white" data-waypoint={i}
            style={{ transform: `translate(-50%, -50%) translate(${wp.x}px, ${wp.y}px)`, borderColor: colour, pointerEvents: "all" }}
            onPointerDown={drag((p) => setWaypoints(waypoints.map((w, j) => (j === i ? p : w))))}
            onDoubleClick={() => setWaypoints(waypoints.filter((_, j) => j !== i))} />
        ))}
        {selected && !api.readOnly && points.slice(0, -1).map((p, i) => {
          const q = points[i + 1];
          if (Math.hypot(q.x - p.x, q.y - p.y) <= 40) return null;
          const mid = { x: (p.x + q.x) / 2, y: (p.y + q.y) / 2 };
          return (
            <button key={`add${i}`} className="nodrag nopan absolute flex h-4 w-4 items-center justify-center rounded-full bg-white text-xs shadow" aria-label="Add waypoint" data-add-waypoint={i}
              style={{ transform: `translate(-50%, -50%) translate(${mid.x}px, ${mid.y}px)`, color: colour, pointerEvents: "all" }}
              onPointerDown={(e) => {
                const inserted = [...waypoints.slice(0, i), mid, ...waypoints.slice(i)];
                setWaypoints(inserted);
                drag((pt) => setWaypoints(inserted.map((w, j) => (j === i ? pt : w))))(e);
              }}>+</button>
          );
        })}
      </EdgeLabelRenderer>
    </>
  );
}

const nodeTypes = { task: TaskNode };
const edgeTypes = { transition: TransitionEdge };

type Props = {
  tasks: Task[];
  readOnly?: boolean;
  statuses?: Record<string, string>;
  selectedTask?: string | null;
  onSelectTask?: (id: string | null) => void;
  onTasksChange?: (tasks: Task[]) => void;
  onConnect?: (sourceId: string, preset: Preset, targetId: string) => void;
  onDeleteTask?: (id: string) => void;
  onSelectTransition?: (taskId: string, index: number) => void;
  onAddTask?: () => void;
};

function CanvasInner({ tasks, readOnly = false, statuses, selectedTask, onSelectTask, onTasksChange, onConnect, onDeleteTask, onSelectTransition, onAddTask }: Props) {
  const [selectedEdge, setSelectedEdge] = useState<string | null>(null);
  const [connecting, setConnecting] = useState<string | null>(null);
  const [clickFrom, setClickFrom] = useState<{ source: string; preset: Preset } | null>(null);
  const dragFrom = useRef<{ source: string; preset: Preset } | null>(null);
  const starts = useMemo(() => new Set(startTasks(tasks).map((t) => t.id)), [tasks]);
  const byName = useMemo(() => new Map(tasks.map((t) => [t.name, t])), [tasks]);
  const nodes: Node<TaskData>[] = tasks.map((task) => ({
    id: task.id, type: "task", position: task.position, data: { task, start: starts.has(task.id) }, selected: selectedTask === task.id, draggable: !readOnly,
  }));
  const edges: Edge<EdgeData>[] = tasks.flatMap((task) => task.next.flatMap((transition, index) => (transition.do ?? []).filter((t) => byName.has(t)).map((target) => {
    const to = byName.get(target)!;
    const colour = edgeColour(transition);
    return { id: `${task.id}:${index}:${target}`, source: task.id, target: to.id, type: "transition", data: { taskId: task.id, index, transition, target, from: task.position, to: to.position, selfLoop: to.id === task.id }, style: { stroke: colour } };
  })));
  const colours = [...new Set(edges.map((e) => edgeColour(e.data!.transition)))];
  const api: CanvasApi = {
    readOnly, statuses, selectedEdge,
    connectFrom: clickFrom ?? dragFrom.current,
    startConnect: (source, preset) => { setSelectedEdge(null); setClickFrom({ source, preset }); },
    onDeleteTask: (id) => onDeleteTask?.(id),
    onUpdateTransition: (taskId, index, change) => onTasksChange?.(tasks.map((t) => (t.id === taskId ? { ...t, next: t.next.map((n, i) => (i === index ? { ...n, ...change } : n)) } : t))),
    selectEdge: (edgeId, taskId, index) => {
      setSelectedEdge(edgeId);
      if (taskId !== undefined && index !== undefined) { onSelectTask?.(taskId); onSelectTransition?.(taskId, index); }
    },
  };
  const onNodesChange = (changes: NodeChange<Node<TaskData>>[]) => {
    const moved = new Map<string, XY>();
    for (const c of changes) if (c.type === "position" && c.position) moved.set(c.id, { x: Math.max(0, c.position.x), y: Math.max(0, c.position.y) });
    if (moved.size) onTasksChange?.(tasks.map((t) => (moved.has(t.id) ? { ...t, position: moved.get(t.id)! } : t)));
  };
  return (
    <Api.Provider value={api}>
      <div className="relative h-full w-full" data-testid="workflow-canvas">
        {(connecting || clickFrom) && (
          <div className="absolute left-1/2 top-2 z-10 -translate-x-1/2 rounded bg-purple-600 px-3 py-1 text-xs text-white shadow" role="status">
            {connecting
              ? <>Drag to a task to connect as {connecting} transition — or release to cancel</>
              : <>Click a task to connect as {clickFrom!.preset} transition — or click the background to cancel</>}
          </div>
        )}
        <svg className="absolute h-0 w-0">
          <defs>
            {colours.map((c) => (
              <marker key={c} id={`arrow-${c.replace("#", "")}`} viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
                <path d="M 0 0 L 10 5 L 0 10 z" fill={c} />
              </marker>
            ))}
          </defs>
        </svg>
        <ReactFlow nodes={nodes} edges={edges} nodeTypes={nodeTypes} edgeTypes={edgeTypes} minZoom={0.15} maxZoom={3}
          onNodesChange={readOnly ? undefined : onNodesChange} nodesConnectable={!readOnly} nodesDraggable={!readOnly}
          onNodeClick={(_, node) => {
            if (clickFrom) { onConnect?.(clickFrom.source, clickFrom.preset, node.id); setClickFrom(null); return; }
            setSelectedEdge(null); onSelectTask?.(node.id);
          }}
          onPaneClick={() => {
            if (clickFrom) { setClickFrom(null); return; } // cancels the connection, keeps the selection
            setSelectedEdge(null); onSelectTask?.(null);
          }}
          connectOnClick={false}
          onConnectStart={(_, p) => {
            setClickFrom(null);
            dragFrom.current = p.nodeId && p.handleId ? { source: p.nodeId, preset: p.handleId as Preset } : null;
            setConnecting(p.handleId ?? null);
          }}
          onConnectEnd={() => { dragFrom.current = null; setConnecting(null); }}
          onConnect={(c: Connection) => c.sourceHandle && onConnect?.(c.source, c.sourceHandle as Preset, c.target)}
          connectionRadius={40} fitView fitViewOptions={{ padding: 0.2, maxZoom: 1 }} panOnDrag={[1, 2]} selectionOnDrag={false}
          onContextMenu={(e) => e.preventDefault()} proOptions={{ hideAttribution: true }} deleteKeyCode={null}>
          <Background variant={BackgroundVariant.Lines} gap={20} color="#f1f5f9" />
          <Background id="major" variant={BackgroundVariant.Lines} gap={100} color="#e2e8f0" />
          <Controls showInteractive={false} position="bottom-left" fitViewOptions={{ padding: 0.2, maxZoom: 1 }} />
        </ReactFlow>
        {tasks.length === 0 && !readOnly && (
          <div className="pointer-events-none absolute inset-0 flex flex-col items-center justify-center gap-2 text-gray-400">
            <div className="text-lg">Empty Workflow</div>
            <button className="btn btn-primary pointer-events-auto" onClick={onAddTask}>Add First Task</button>
          </div>
        )}
        {tasks.length > 0 && !readOnly && (
          <button className="btn btn-primary absolute bottom-4 right-4 z-10 h-10 w-10 justify-center rounded-full text-lg" aria-label="Add task" onClick={onAddTask}>+</button>
        )}
      </div>
    </Api.Provider>
  );
}

export function Canvas(props: Props) {
  return (
    <ReactFlowProvider>
      <CanvasInner {...props} />
    </ReactFlowProvider>
  );
}
