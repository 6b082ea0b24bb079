import { useEffect, useState } from "react";
import { Link, useParams } from "react-router-dom";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { get, getPage, post, qs } from "@/api/http";
import { TERMINAL, type Action, type Execution, type ExecutionLogs, type ExecutionSummary, type HistoryRecord, type InquirySummary, type Workflow } from "@/api/types";
import { useEntityNotifications } from "@/realtime/hooks";
import { applyExecutionNotification } from "@/realtime/executionCache";
import { usePermissions } from "@/auth/permissions";
import { Card, ConfirmModal, ErrorBox, InfoRow, JsonBlock, LiveBadge, Pill, Spinner, StatusPill } from "@/components/ui";
import { ExecuteModal } from "@/components/ExecuteModal";
import { InquiryForm } from "@/components/InquiryForm";
import { Canvas } from "@/workflow/Canvas";
import { fromDefinition } from "@/workflow/model";
import { between, dateTime, duration, relativeTime } from "@/lib/format";

const DOT: Record<string, string> = { completed: "bg-green-500", failed: "bg-red-500", timeout: "bg-orange-500", running: "bg-blue-500", cancelled: "bg-gray-400", canceling: "bg-gray-400", abandoned: "bg-purple-500" };

function Timeline({ execution, history }: { execution: Execution; history: HistoryRecord[] | undefined }) {
  const entries = (history ?? [])
    .slice().reverse()
    .filter((h) => h.operation === "INSERT" || (h.changed_fields ?? []).includes("status"))
    .map((h) => ({ status: String((h.new_values as Record<string, unknown> | null)?.status ?? execution.status), time: h.time }))
    .filter((entry, i, all) => i === 0 || entry.status !== all[i - 1].status);
  if (!entries.length) entries.push({ status: execution.status, time: execution.created });
  const running = !TERMINAL.has(execution.status);
  return (
    <ol className="space-y-2" data-testid="timeline">
      {entries.map((e, i) => (
        <li key={i} className="flex items-center gap-3 text-sm">
          <span className={`h-3 w-3 rounded-full ${DOT[e.status] ?? "bg-yellow-400"} ${running && i === entries.length - 1 ? "animate-pulse" : ""}`} />
          <span className="w-24 font-medium capitalize">{e.status === "timeout" ? "Timed Out" : e.status}</span>
          <span className="text-gray-500">{dateTime(e.time)}</span>
          {i > 0 && <span className="text-xs text-gray-400">+{duration(between(entries[i - 1].time, e.time))} since previous</span>}
        </li>
      ))}
      {running && <li className="text-sm text-blue-600">In Progress…</li>}
    </ol>
  );
}

function Logs({ id, running, status }: { id: number; running: boolean; status: string }) {
  // Keyed by status: the final read happens once the execution has finished.
  const logs = useQuery({ queryKey: ["executions", id, "logs", status], queryFn: () => get<ExecutionLogs>(`/api/v1/executions/${id}/logs`), refetchInterval: running ? 1000 : false });
  if (logs.isLoading) return <Spinner />;
  if (!logs.data) return <ErrorBox error={logs.error} />;
  return (
    <div className="grid grid-cols-1 gap-2 xl:grid-cols-2">
      {(["stdout", "stderr"] as const).map((stream) => (
        <div key={stream}>
          <div className="mb-1 text-xs font-semibold uppercase text-gray-500">{stream}{logs.data[`${stream}_truncated`] && " (truncated)"}</div>
          <pre className={`max-h-72 overflow-auto whitespace-pre-wrap break-all rounded bg-gray-900 p-2 font-mono text-xs ${stream === "stderr" ? "text-red-300" : "text-gray-100"}`} data-testid={stream}>
            {logs.data[stream] || <span className="text-gray-500">(empty)</span>}
          </pre>
        </div>
      ))}
    </div>
  );
}

function WorkflowTasks({ id, running, status }: { id: number; running: boolean; status: string }) {
  const children = useQuery({
    queryKey: ["executions", "list", { parent: id }, status],
    queryFn: () => getPage<ExecutionSummary>(`/api/v1/executions?parent=${id}&per_page=100`),
    refetchInterval: (q) => (running || q.state.data?.data.some((c) => !TERMINAL.has(c.status)) ? 2000 : false),
  });
  const rows = [...(children.data?.data ?? [])].sort((a, b) => a.id - b.id);
  if (!rows.length) return null;
  const counts = rows.reduce<Record<string, number>>((acc, r) => ({ ...acc, [r.status]: (acc[r.status] ?? 0) + 1 }), {});
  return (
    <Card title="Workflow Tasks">
      <div className="mb-2 flex gap-2">{Object.entries(counts).map(([s, n]) => <span key={s} className="text-xs"><StatusPill status={s} /> {n}</span>)}</div>
      <table className="table" data-testid="workflow-tasks">
        <thead><tr><th>#</th><th>Task</th><th>Action</th><th>Status</th><th>Duration</th><th>Retry</th></tr></thead>
        <tbody>
          {rows.map((c, i) => {
            const t = c.workflow_task;
            const ms = t?.duration_ms ?? (TERMINAL.has(c.status) ? between(c.created, c.updated) : Date.now() - new Date(c.created).getTime());
            return (
              <tr key={c.id}>
                <td><Link className="text-blue-600" to={`/executions/${c.id}`}>{i + 1}</Link></td>
                <td><Link className="text-blue-600" to={`/executions/${c.id}`}>{t?.task_name ?? "—"}{t?.task_index != null && `[${t.task_index}]`}</Link>{t?.timed_out && <span className="ml-1 text-orange-500">⏱</span>}</td>
                <td className="font-mono">{c.action_ref}</td><td><StatusPill status={c.status} /></td><td>{duration(ms)}</td><td>{t ? `${t.retry_count ?? 0}/${t.max_retries ?? 0}` : ""}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </Card>
  );
}

type RunState = { paused: boolean; tasks: { name: string; status: string }[] };

function LiveWorkflow({ execution, running }: { execution: Execution; running: boolean }) {
  const workflow = useQuery({ queryKey: ["workflows", execution.action_ref], queryFn: () => get<Workflow>(`/api/v1/workflows/${execution.action_ref}`) });
  const run = useQuery({ queryKey: ["executions", execution.id, "workflow", execution.status], queryFn: () => get<RunState>(`/api/v1/executions/${execution.id}/workflow`), refetchInterval: running ? 1000 : false, retry: false });
  if (!workflow.data) return null;
  const state = fromDefinition(workflow.data.definition as Record<string, unknown>, workflow.data);
  const statuses = Object.fromEntries((run.data?.tasks ?? []).map((t) => [t.name, t.status]));
  return (
    <Card title="Workflow">
      <div className="h-80 rounded border" data-testid="live-workflow"><Canvas tasks={state.tasks} readOnly statuses={statuses} /></div>
    </Card>
  );
}

function History({ id }: { id: number }) {
  const [open, setOpen] = useState(false);
  const [operation, setOperation] = useState("");
  const [field, setField] = useState("");
  const [page, setPage] = useState(1);
  const [expanded, setExpanded] = useState<number | null>(null);
  const history = useQuery({ queryKey: ["executions", id, "history", operation, field, page], enabled: open, queryFn: () => getPage<HistoryRecord>(`/api/v1/executions/${id}/history${qs({ operation, changed_field: field, page, page_size: 10 })}`) });
  const total = history.data?.pagination.total_pages ?? 1;
  return (
    <Card title={<button onClick={() => setOpen(!open)}>{open ? "▾" : "▸"} Execution History</button>}>
      {open && (
        <div className="space-y-2">
          <div className="flex gap-2">
            <select className="input w-40" aria-label="Operation" value={operation} onChange={(e) => { setOperation(e.target.value); setPage(1); }}><option value="">All operations</option><option>INSERT</option><option>UPDATE</option><option>DELETE</option></select>
            <input className="input w-48" placeholder="Changed field" value={field} onChange={(e) => { setField(e.target.value); setPage(1); }} />
          </div>
          {history.isLoading ? <Spinner /> : (
            <ul className="divide-y text-sm">
              {(history.data?.data ?? []).map((h, i) => (
                <li key={i} className="py-1">
                  <button className="w-full text-left" onClick={() => setExpanded(expanded === i ? null : i)}>
                    <span className="text-gray-500">{dateTime(h.time)}</span> — {h.operation === "INSERT" ? "Entity created" : h.operation === "DELETE" ? "Entity deleted" : `Changed ${(h.changed_fields ?? []).join(", ")}`}
                  </button>
                  {expanded === i && (
                    <div className="mt-1 space-y-1 text-xs">
                      <div>{new Date(h.time).toLocaleString()} · {new Date(h.time).toUTCString()}</div>
                      {(h.changed_fields ?? []).map((f) => {
                        const before = (h.old_values as Record<string, unknown> | null)?.[f];
                        const after = (h.new_values as Record<string, unknown> | null)?.[f];
                        return typeof before === "object" || typeof after === "object" ? (
                          <div key={f} className="grid grid-cols-2 gap-2"><div>{f} before<JsonBlock value={before} /></div><div>after<JsonBlock value={after} /></div></div>
                        ) : <div key={f}><span className="font-mono">{f}</span>: <s className="text-red-600">{String(before)}</s> → <span className="text-green-700">{String(after)}</span></div>;
                      })}
                    </div>
                  )}
                </li>
              ))}
            </ul>
          )}
          <div className="flex gap-1">
            <button className="btn" disabled={page <= 1} onClick={() => setPage(1)}>First</button>
            <button className="btn" disabled={page <= 1} onClick={() => setPage(page - 1)}>Prev</button>
            <button className="btn" disabled={page >= total} onClick={() => setPage(page + 1)}>Next</button>
            <button className="btn" disabled={page >= total} onClick={() => setPage(total)}>Last</button>
          </div>
        </div>
      )}
    </Card>
  );
}

export default function ExecutionDetail() {
  const id = Number(useParams().id);
  const client = useQueryClient();
  const { can } = usePermissions();
  const execution = useQuery({ queryKey: ["executions", id], queryFn: () => get<Execution>(`/api/v1/executions/${id}`) });
  const e = execution.data;
  const running = !!e && !TERMINAL.has(e.status);
  const action = useQuery({ queryKey: ["actions", e?.action_ref], enabled: !!e, queryFn: () => get<Action>(`/api/v1/actions/${e!.action_ref}`) });
  const history = useQuery({ queryKey: ["executions", id, "timeline", e?.status], enabled: !!e, queryFn: () => getPage<HistoryRecord>(`/api/v1/executions/${id}/history?page_size=100`) });
  const inquiries = useQuery({ queryKey: ["inquiries", "execution", id, e?.status], enabled: !!e, queryFn: () => getPage<InquirySummary>(`/api/v1/executions/${id}/inquiries?page_size=100`) });
  const runState = useQuery({
    queryKey: ["executions", id, "workflow", e?.status], enabled: !!action.data?.workflow_def, retry: false,
    queryFn: () => get<RunState>(`/api/v1/executions/${id}/workflow`), refetchInterval: running ? 1000 : false,
  });
  const [rerun, setRerun] = useState(false);
  const [confirmCancel, setConfirmCancel] = useState(false);
  const control = useMutation({
    mutationFn: (what: "cancel" | "pause" | "resume") => post<unknown>(`/api/v1/executions/${id}/${what}`),
    onSuccess: () => {
      // cancel answers with the execution, pause/resume with the workflow's run state: refetch both.
      void client.invalidateQueries({ queryKey: ["executions", id] });
      setConfirmCancel(false);
    },
  });
  const { connected } = useEntityNotifications("execution", (n) => { if (n.entity_id === id) applyExecutionNotification(client, n); });
  useEntityNotifications("inquiry", () => void client.invalidateQueries({ queryKey: ["inquiries", "execution", id] }));
  // A missed notification must not leave the page stale: poll while the execution runs.
  useEffect(() => {
    if (!running) return;
    const timer = window.setInterval(() => void execution.refetch(), 2000);
    return () => window.clearInterval(timer);
  }, [running, execution]);
  if (execution.isLoading) return <Spinner />;
  if (!e) return <ErrorBox error={execution.error} />;
  const isWorkflow = !!action.data?.workflow_def;
  const pack = e.action_ref.split(".")[0];
  return (
    <div className="space-y-4">
      <div className="flex flex-wrap items-center justify-between gap-2">
        <div className="space-y-1">
          <h1 className="flex flex-wrap items-center gap-2 text-2xl font-semibold">Execution #{e.id} {isWorkflow && <Pill tone="purple">Workflow</Pill>}<StatusPill status={e.status} />{running && <span className="text-sm text-blue-600">In Progress</span>}<LiveBadge connected={connected} /></h1>
          <div className="text-sm">Action: <Link className="font-mono text-blue-600" to={`/actions/${e.action_ref}`}>{e.action_ref}</Link></div>
          {e.workflow_task && e.parent && <div className="text-sm">Task <strong>{e.workflow_task.task_name}</strong> in workflow <Link className="text-blue-600" to={`/executions/${e.parent}`}>Execution #{e.parent}</Link></div>}
        </div>
        <div className="flex gap-2">
          {can("executions", "execute", { pack }) && <button className="btn" disabled={!action.data} onClick={() => setRerun(true)}>Re-Run</button>}
          {running && isWorkflow && can("executions", "execute", { pack }) && (
            runState.data?.paused
              ? <button className="btn" onClick={() => control.mutate("resume")}>Resume</button>
              : <button className="btn" onClick={() => control.mutate("pause")}>Pause</button>
          )}
          {running && can("executions", "execute", { pack }) && <button className="btn btn-danger" onClick={() => setConfirmCancel(true)}>Cancel</button>}
        </div>
      </div>
      <ErrorBox error={control.error} />
      {(inquiries.data?.data ?? []).filter((i) => i.status === "pending").map((i) => (
        <Card key={i.id} title={`Waiting for an answer (inquiry #${i.id})`}><InquiryForm id={i.id} onDone={() => void execution.refetch()} /></Card>
      ))}
      <div className="grid grid-cols-1 gap-4 xl:grid-cols-2">
        <Card title="Details">
          <dl>
            <InfoRow label="Status"><StatusPill status={e.status} /></InfoRow>
            <InfoRow label="Created">{dateTime(e.created)} ({relativeTime(e.created)})</InfoRow>
            <InfoRow label="Updated">{dateTime(e.updated)}</InfoRow>
            <InfoRow label="Enforcement">{e.enforcement ? <Link className="text-blue-600" to={`/enforcements/${e.enforcement}`}>#{e.enforcement}</Link> : "—"}</InfoRow>
            <InfoRow label="Parent">{e.parent ? <Link className="text-blue-600" to={`/executions/${e.parent}`}>#{e.parent}</Link> : "—"}</InfoRow>
            <InfoRow label="Executor">{e.executor ?? "—"}</InfoRow>
          </dl>
        </Card>
        <Card title="Timeline"><Timeline execution={e} history={history.data?.data} /></Card>
      </div>
      {isWorkflow && <LiveWorkflow execution={e} running={running} />}
      {isWorkflow && <WorkflowTasks id={id} running={running} status={e.status} />}
      {!isWorkflow && <Card title="Output"><Logs id={id} running={running} status={e.status} /></Card>}
      <div className="grid grid-cols-1 gap-4 xl:grid-cols-2">
        <Card title="Parameters"><JsonBlock value={e.config} /></Card>
        <Card title="Result"><div data-testid="result"><JsonBlock value={e.result} tone={e.status === "failed" ? "red" : undefined} /></div></Card>
      </div>
      {(inquiries.data?.data.length ?? 0) > 0 && (
        <Card title="Inquiries">
          <ul className="text-sm">{inquiries.data!.data.map((i) => <li key={i.id}>#{i.id} {i.prompt} <StatusPill status={i.status} /></li>)}</ul>
        </Card>
      )}
      <History id={id} />
      {rerun && action.data && <ExecuteModal action={action.data} initial={(e.config ?? {}) as Record<string, unknown>} rerunOf={e.id} onClose={() => setRerun(false)} />}
      {confirmCancel && <ConfirmModal title={`Cancel execution #${e.id}?`} message="The execution and its running children are cancelled." confirmLabel="Cancel execution"
        busy={control.isPending} error={control.error} onClose={() => setConfirmCancel(false)} onConfirm={() => control.mutate("cancel")} />}
    </div>
  );
}
