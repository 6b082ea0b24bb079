import { useState } from "react";
import { Link, useParams } from "react-router-dom";
import { useQuery } from "@tanstack/react-query";
import { GitBranch } from "lucide-react";
import { get, getAll, getPage } from "@/api/http";
import type { Action, ActionSummary, ExecutionSummary } from "@/api/types";
import { ListDetail, QuickActions } from "@/components/ListDetail";
import { Card, ConfirmModal, ErrorBox, InfoRow, JsonBlock, PageHeader, Pill, Spinner, StatusPill } from "@/components/ui";
import { ExecuteModal } from "@/components/ExecuteModal";
import { flatten } from "@/components/schema";
import { usePermissions } from "@/auth/permissions";
import { useDelete } from "@/lib/useDelete";
import { dateTime, relativeTime } from "@/lib/format";

function ActionDetail({ actionRef }: { actionRef: string }) {
  const { can } = usePermissions();
  const action = useQuery({ queryKey: ["actions", actionRef], queryFn: () => get<Action>(`/api/v1/actions/${actionRef}`) });
  const executions = useQuery({ queryKey: ["executions", "list", { actionRef, perPage: 10 }], queryFn: () => getPage<ExecutionSummary>(`/api/v1/executions?action_ref=${encodeURIComponent(actionRef)}&per_page=10`) });
  const [execute, setExecute] = useState(false);
  const [confirm, setConfirm] = useState(false);
  const remove = useDelete("actions", "/actions");
  if (action.isLoading) return <Spinner />;
  if (!action.data) return <ErrorBox error={action.error} />;
  const a = action.data;
  const schema = flatten(a.param_schema);
  const pack = a.pack_ref;
  return (
    <div className="space-y-4">
      <PageHeader title={<span className="flex items-center gap-2">{a.pack_ref}.{a.label}{a.workflow_def && <Pill tone="purple">Workflow</Pill>}</span>}>
        {a.workflow_def && can("workflows", "update", { pack }) && <Link className="btn" to={`/actions/workflows/${a.ref}/edit`}>Edit Workflow</Link>}
        {can("actions", "execute", { pack }) && <button className="btn btn-primary" onClick={() => setExecute(true)}>Execute</button>}
        {a.is_adhoc && can("actions", "delete", { pack }) && <button className="btn btn-danger" onClick={() => setConfirm(true)}>Delete</button>}
      </PageHeader>
      <div className="flex flex-col gap-4 2xl:flex-row">
        <div className="min-w-0 flex-1 space-y-4">
          <Card title="Action">
            <dl>
              <InfoRow label="Ref"><span className="font-mono">{a.ref}</span></InfoRow>
              <InfoRow label="Label">{a.label}</InfoRow>
              <InfoRow label="Pack"><Link className="text-blue-600" to={`/packs/${a.pack_ref}`}>{a.pack_ref}</Link></InfoRow>
              <InfoRow label="Entry point"><span className="font-mono">{a.entrypoint}</span></InfoRow>
              <InfoRow label="Description">{a.description}</InfoRow>
              <InfoRow label="Runtime">{a.runtime ? `Runtime #${a.runtime}` : "—"}</InfoRow>
              <InfoRow label="Created">{dateTime(a.created)}</InfoRow>
              <InfoRow label="Updated">{dateTime(a.updated)}</InfoRow>
            </dl>
          </Card>
          <Card title="Parameters">
            {Object.keys(schema).length === 0 ? <p className="text-sm text-gray-500">No parameters</p> : (
              <div className="grid grid-cols-1 gap-2 lg:grid-cols-2">
                {Object.entries(schema).map(([name, def]) => (
                  <div key={name} className="rounded border p-2 text-sm">
                    <div className="flex gap-1"><span className="font-mono font-medium">{name}</span><Pill>{def.type ?? "string"}</Pill>{def.required && <Pill tone="purple">required</Pill>}{def.secret && <Pill>secret</Pill>}</div>
                    {def.description && <p className="text-xs text-gray-500">{def.description}</p>}
                    {def.default !== undefined && <p className="text-xs text-gray-400">Default: {JSON.stringify(def.default)}</p>}
                  </div>
                ))}
              </div>
            )}
          </Card>
          {!!a.out_schema && Object.keys(a.out_schema as object).length > 0 && <Card title="Output Schema"><JsonBlock value={a.out_schema} /></Card>}
          <Card title="Recent Executions" actions={<Link className="text-sm text-blue-600" to={`/executions?action_ref=${a.ref}`}>View All →</Link>}>
            <ul className="divide-y text-sm">
              {(executions.data?.data ?? []).map((e) => (
                <li key={e.id}><Link to={`/executions/${e.id}`} className="flex justify-between py-1 hover:bg-gray-50"><span>#{e.id}</span><StatusPill status={e.status} /><span className="text-gray-400">{relativeTime(e.created)}</span></Link></li>
              ))}
              {executions.data?.data.length === 0 && <li className="text-gray-400">No executions yet</li>}
            </ul>
            <p className="mt-2 text-xs text-gray-500">Total executions: {executions.data?.pagination.total_items ?? "…"}</p>
          </Card>
        </div>
        <QuickActions>
          <Link className="text-blue-600" to={`/packs/${a.pack_ref}`}>View Pack</Link>
          <Link className="text-blue-600" to={`/rules?pack=${a.pack_ref}`}>View Rules</Link>
        </QuickActions>
      </div>
      {execute && <ExecuteModal action={a} onClose={() => setExecute(false)} />}
      {confirm && <ConfirmModal title={`Delete action ${a.ref}?`} message={<>Deleting <strong>{a.ref}</strong> also deletes its executions.</>} busy={remove.isPending} error={remove.error}
        onClose={() => setConfirm(false)} onConfirm={() => remove.mutate(`/api/v1/actions/${a.ref}`)} />}
    </div>
  );
}

export default function Actions() {
  const { ref } = useParams();
  const { can } = usePermissions();
  const list = useQuery({ queryKey: ["actions", "all"], queryFn: () => getAll<ActionSummary>("/api/v1/actions") });
  const workflows = useQuery({ queryKey: ["workflows", "all"], queryFn: () => getAll<{ ref: string }>("/api/v1/workflows") });
  const workflowRefs = new Set((workflows.data ?? []).map((w) => w.ref));
  return (
    <ListDetail noun="actions" basePath="/actions" items={list.data} loading={list.isLoading} error={list.error} selected={ref}
      header={<div className="flex items-center justify-between"><h1 className="text-lg font-semibold">Actions</h1>{can("workflows", "create") && <Link className="btn btn-primary" to="/actions/workflows/new">+ Workflow</Link>}</div>}
      badges={(item) => (workflowRefs.has(item.ref) ? <GitBranch size={14} className="text-purple-600" aria-label="workflow" /> : null)}
      detail={ref && <ActionDetail key={ref} actionRef={ref} />} />
  );
}
