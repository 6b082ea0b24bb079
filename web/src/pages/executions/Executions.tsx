import { useEffect, useMemo, useState } from "react";
import { Link, useSearchParams } from "react-router-dom";
import { keepPreviousData, useQuery, useQueryClient } from "@tanstack/react-query";
import { get, getPage, qs } from "@/api/http";
import { EXECUTION_STATUSES, TERMINAL, type Execution, type ExecutionSummary } from "@/api/types";
import { useEntityNotifications } from "@/realtime/hooks";
import { applyExecutionNotification, type ExecutionListParams } from "@/realtime/executionCache";
import { ErrorBox, JsonBlock, LiveBadge, PageHeader, Pager, Spinner, StatusPill } from "@/components/ui";
import { between, dateTime, duration, relativeTime } from "@/lib/format";

function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = window.setTimeout(() => setV(value), ms);
    return () => window.clearTimeout(t);
  }, [value, ms]);
  return v;
}

function Preview({ id, onClose }: { id: number; onClose: () => void }) {
  const execution = useQuery({ queryKey: ["executions", id], queryFn: () => get<Execution>(`/api/v1/executions/${id}`) });
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => e.key === "Escape" && onClose();
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [onClose]);
  const e = execution.data;
  return (
    <aside className="fixed bottom-0 right-0 top-0 z-40 w-[400px] overflow-y-auto border-l bg-white p-4 shadow-xl" data-testid="execution-preview">
      <div className="mb-3 flex items-center justify-between"><h2 className="font-semibold">Execution #{id}</h2><button aria-label="Close preview" onClick={onClose}>×</button></div>
      {!e ? <Spinner /> : (
        <div className="space-y-2 text-sm">
          <div className="flex items-center gap-2"><StatusPill status={e.status} />{!TERMINAL.has(e.status) && <span className="h-3 w-3 animate-spin rounded-full border-2 border-blue-300 border-t-blue-600" />}</div>
          <div>Action: <span className="font-mono">{e.action_ref}</span></div>
          <div>Created: {dateTime(e.created)}</div>
          <div>{TERMINAL.has(e.status) ? "Duration" : "Elapsed"}: {duration(TERMINAL.has(e.status) ? between(e.created, e.updated) : Date.now() - new Date(e.created).getTime())}</div>
          {e.parent && <div>Parent: <Link className="text-blue-600" to={`/executions/${e.parent}`}>#{e.parent}</Link></div>}
          {e.enforcement && <div>Enforcement: <Link className="text-blue-600" to={`/enforcements/${e.enforcement}`}>#{e.enforcement}</Link></div>}
          {e.executor && <div>Executor: {e.executor}</div>}
          {e.workflow_task && <div>Workflow task: {e.workflow_task.task_name}</div>}
          <h3 className="font-semibold">Parameters</h3><JsonBlock value={e.config} />
          <h3 className="font-semibold">Result</h3><JsonBlock value={e.result} tone={e.status === "failed" ? "red" : undefined} />
          <Link className="btn btn-primary" to={`/executions/${id}`}>Open Full Details</Link>
        </div>
      )}
    </aside>
  );
}

function Children({ parent, depth }: { parent: number; depth: number }) {
  const children = useQuery({
    queryKey: ["executions", "list", { parent }],
    queryFn: () => getPage<ExecutionSummary>(`/api/v1/executions?parent=${parent}&per_page=100`),
    refetchInterval: (q) => (q.state.data?.data.some((c) => !TERMINAL.has(c.status)) ? 5000 : false),
  });
  if (children.isLoading) return <tr><td colSpan={6}><Spinner /></td></tr>;
  const rows = [...(children.data?.data ?? [])].reverse();
  if (!rows.length) return <tr><td colSpan={6} className="text-gray-400" style={{ paddingLeft: 24 * depth + 12 }}>No child tasks yet.</td></tr>;
  return <>{rows.map((c) => <WorkflowRow key={c.id} row={c} depth={depth} />)}</>;
}

function WorkflowRow({ row, depth }: { row: ExecutionSummary; depth: number }) {
  const [open, setOpen] = useState(false);
  const task = row.workflow_task;
  const ms = task?.duration_ms ?? (TERMINAL.has(row.status) ? between(row.created, row.updated) : null);
  return (
    <>
      <tr className="hover:bg-gray-50">
        <td style={{ paddingLeft: 24 * depth + 12 }}>
          <button className="mr-1 text-gray-500" aria-label={`Expand ${row.id}`} onClick={() => setOpen(!open)}>{open ? "▾" : "▸"}</button>
          {task ? <>{task.task_name}{task.task_index != null && <span className="text-gray-400">[{task.task_index}]</span>}</> : <span className="font-mono">{row.action_ref}</span>}
        </td>
        <td><Link className="text-blue-600" to={`/executions/${row.id}`}>#{row.id}</Link></td>
        <td className="font-mono">{row.action_ref}</td>
        <td><StatusPill status={row.status} /></td>
        <td>{ms != null ? duration(ms) : "—"}</td>
        <td>{task ? `${task.retry_count ?? 0}/${task.max_retries ?? 0}` : ""}</td>
      </tr>
      {open && <Children parent={row.id} depth={depth + 1} />}
    </>
  );
}

export default function Executions() {
  const [params, setParams] = useSearchParams();
  const client = useQueryClient();
  const [view, setView] = useState(() => localStorage.getItem("attune:executions:viewMode") ?? params.get("view") ?? "all");
  const [pack, setPack] = useState(params.get("pack_name") ?? "");
  const [rule, setRule] = useState(params.get("rule_ref") ?? "");
  const [action, setAction] = useState(params.get("action_ref") ?? "");
  const [trigger, setTrigger] = useState(params.get("trigger_ref") ?? "");
  const [executor, setExecutor] = useState(params.get("executor") ?? "");
  const [statuses, setStatuses] = useState<string[]>(params.getAll("status").flatMap((s) => s.split(",")).filter(Boolean));
  const enforcement = params.get("enforcement") ?? "";
  const [page, setPage] = useState(1);
  const [preview, setPreview] = useState<number | null>(null);
  const text = useDebounced({ pack, rule, action, trigger, executor }, 500);
  const chosen = useDebounced(statuses, 300);
  useEffect(() => localStorage.setItem("attune:executions:viewMode", view), [view]);
  useEffect(() => setPage(1), [text, chosen, view]);
  useEffect(() => {
    const next = new URLSearchParams();
    if (text.pack) next.set("pack_name", text.pack);
    if (text.rule) next.set("rule_ref", text.rule);
    if (text.action) next.set("action_ref", text.action);
    if (text.trigger) next.set("trigger_ref", text.trigger);
    if (text.executor) next.set("executor", text.executor);
    if (enforcement) next.set("enforcement", enforcement);
    if (chosen.length) next.set("status", chosen.join(","));
    setParams(next, { replace: true });
  }, [text, chosen, enforcement, setParams]);
  const listParams: ExecutionListParams = useMemo(() => ({
    page, packName: text.pack || undefined, ruleRef: text.rule || undefined, actionRef: text.action || undefined, triggerRef: text.trigger || undefined,
    executor: text.executor ? Number(text.executor) : undefined, status: chosen.length === 1 ? chosen[0] : undefined,
    topLevelOnly: view === "workflow" || undefined, enforcement: enforcement ? Number(enforcement) : undefined,
  }), [page, text, chosen, view, enforcement]);
  const list = useQuery({
    queryKey: ["executions", "list", listParams], placeholderData: keepPreviousData,
    queryFn: () => getPage<ExecutionSummary>(`/api/v1/executions${qs({
      page, per_page: 50, pack_name: listParams.packName, rule_ref: listParams.ruleRef, action_ref: listParams.actionRef,
      trigger_ref: listParams.triggerRef, executor: listParams.executor, status: listParams.status, top_level_only: listParams.topLevelOnly,
      enforcement: listParams.enforcement,
    })}`),
  });
  const { connected } = useEntityNotifications("execution", (n) => applyExecutionNotification(client, n));
  const rows = (list.data?.data ?? []).filter((r) => chosen.length < 2 || chosen.includes(r.status));
  const clear = () => { setPack(""); setRule(""); setAction(""); setTrigger(""); setExecutor(""); setStatuses([]); };
  return (
    <div className="space-y-4">
      <PageHeader title="Executions">
        <LiveBadge connected={connected} />
        <div className="flex rounded border" role="group">
          {[["all", "All"], ["workflow", "By Workflow"]].map(([v, l]) => (
            <button key={v} className={`px-3 py-1 text-sm ${view === v ? "bg-blue-600 text-white" : ""}`} onClick={() => setView(v)} aria-pressed={view === v}>{l}</button>
          ))}
        </div>
      </PageHeader>
      <div className="grid grid-cols-3 gap-2 rounded-lg border bg-white p-3 lg:grid-cols-6">
        <input className="input" aria-label="Pack filter" placeholder="Pack" value={pack} onChange={(e) => setPack(e.target.value)} />
        <input className="input" aria-label="Rule filter" placeholder="Rule" value={rule} onChange={(e) => setRule(e.target.value)} />
        <input className="input" aria-label="Action filter" placeholder="Action" value={action} onChange={(e) => setAction(e.target.value)} />
        <input className="input" aria-label="Trigger filter" placeholder="Trigger" value={trigger} onChange={(e) => setTrigger(e.target.value)} />
        <input className="input" aria-label="Executor filter" placeholder="Executor ID" value={executor} onChange={(e) => setExecutor(e.target.value.replace(/\D/g, ""))} />
        <button className="btn" onClick={clear}>Clear Filters</button>
        <div className="col-span-full flex flex-wrap gap-1" aria-label="Status filter">
          {EXECUTION_STATUSES.map((s) => (
            <label key={s} className={`cursor-pointer rounded-full border px-2 py-0.5 text-xs ${statuses.includes(s) ? "border-blue-500 bg-blue-50" : ""}`}>
              <input type="checkbox" className="mr-1" checked={statuses.includes(s)} onChange={(e) => setStatuses(e.target.checked ? [...statuses, s] : statuses.filter((x) => x !== s))} />{s}
            </label>
          ))}
        </div>
      </div>
      {list.isError && list.data && <ErrorBox error={list.error} prefix="Error refreshing: " />}
      {list.isError && !list.data && <ErrorBox error={list.error} />}
      <div className="relative overflow-x-auto rounded-lg border bg-white">
        {list.isFetching && list.data && <div className="absolute right-2 top-2"><span className="block h-4 w-4 animate-spin rounded-full border-2 border-gray-300 border-t-blue-600" /></div>}
        {list.isLoading ? <Spinner /> : view === "all" ? (
          <table className="table" data-testid="executions-table">
            <thead><tr><th>ID</th><th>Action</th><th>Rule</th><th>Trigger</th><th>Status</th><th>Created</th></tr></thead>
            <tbody>
              {rows.map((r) => (
                <tr key={r.id} className={`cursor-pointer hover:bg-gray-50 ${preview === r.id ? "bg-blue-50" : ""}`} onClick={() => setPreview(preview === r.id ? null : r.id)} data-execution={r.id}>
                  <td><Link className="text-blue-600" to={`/executions/${r.id}`} onClick={(e) => e.stopPropagation()}>#{r.id}</Link></td>
                  <td className="font-mono">{r.action_ref}</td><td>{r.rule_ref ?? "—"}</td><td>{r.trigger_ref ?? "—"}</td>
                  <td><StatusPill status={r.status} /></td><td title={dateTime(r.created)}>{relativeTime(r.created)}</td>
                </tr>
              ))}
              {rows.length === 0 && <tr><td colSpan={6} className="py-6 text-center text-gray-400">No executions found</td></tr>}
            </tbody>
          </table>
        ) : (
          <table className="table" data-testid="workflow-table">
            <thead><tr><th>Task</th><th>ID</th><th>Action</th><th>Status</th><th>Duration</th><th>Retry</th></tr></thead>
            <tbody>{rows.map((r) => <WorkflowRow key={r.id} row={r} depth={0} />)}</tbody>
          </table>
        )}
        {list.data && <Pager page={page} totalPages={list.data.pagination.total_pages} total={list.data.pagination.total_items} pageSize={50} onPage={setPage} />}
      </div>
      {preview !== null && <Preview id={preview} onClose={() => setPreview(null)} />}
    </div>
  );
}
