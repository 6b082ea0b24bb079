import { useState } from "react";
import { Link, useParams } from "react-router-dom";
import { useQuery } from "@tanstack/react-query";
import { get, getAll } from "@/api/http";
import type { Action, Rule, RuleSummary, Trigger } from "@/api/types";
import { ListDetail, QuickActions } from "@/components/ListDetail";
import { Card, ConfirmModal, ErrorBox, InfoRow, JsonBlock, PageHeader, Spinner } from "@/components/ui";
import { ParamSchemaDisplay } from "@/components/ParamSchemaForm";
import { EnableSwitch } from "@/components/Toggle";
import { flatten } from "@/components/schema";
import { usePermissions } from "@/auth/permissions";
import { useDelete } from "@/lib/useDelete";
import { dateTime } from "@/lib/format";

function RuleDetail({ ruleRef }: { ruleRef: string }) {
  const { can } = usePermissions();
  const rule = useQuery({ queryKey: ["rules", ruleRef], queryFn: () => get<Rule>(`/api/v1/rules/${ruleRef}`) });
  const r = rule.data;
  const trigger = useQuery({ queryKey: ["triggers", r?.trigger_ref], enabled: !!r, queryFn: () => get<Trigger>(`/api/v1/triggers/${r!.trigger_ref}`) });
  const action = useQuery({ queryKey: ["actions", r?.action_ref], enabled: !!r, queryFn: () => get<Action>(`/api/v1/actions/${r!.action_ref}`) });
  const [confirm, setConfirm] = useState(false);
  const remove = useDelete("rules", "/rules");
  if (rule.isLoading) return <Spinner />;
  if (!r) return <ErrorBox error={rule.error} />;
  const pack = r.pack_ref;
  return (
    <div className="space-y-4">
      <PageHeader title={r.label}>
        <EnableSwitch kind="rules" entityRef={r.ref} enabled={r.enabled} allowed={can("rules", "update", { pack })} />
        {can("rules", "update", { pack }) && <Link className="btn" to={`/rules/${r.ref}/edit`}>Edit</Link>}
        {can("rules", "delete", { pack }) && <button className="btn btn-danger" onClick={() => setConfirm(true)}>Delete</button>}
      </PageHeader>
      <div className="flex flex-col gap-4 2xl:flex-row">
        <div className="min-w-0 flex-1 space-y-4">
          <Card title="Rule">
            <dl>
              <InfoRow label="Ref"><span className="font-mono">{r.ref}</span></InfoRow>
              <InfoRow label="Description">{r.description}</InfoRow>
              <InfoRow label="Flow"><Link className="text-blue-600" to={`/triggers/${r.trigger_ref}`}>{r.trigger_ref}</Link> → <Link className="text-blue-600" to={`/actions/${r.action_ref}`}>{r.action_ref}</Link></InfoRow>
              <InfoRow label="Created">{dateTime(r.created)}</InfoRow>
              <InfoRow label="Updated">{dateTime(r.updated)}</InfoRow>
            </dl>
          </Card>
          <Card title="Conditions"><JsonBlock value={r.conditions} /></Card>
          <Card title="Trigger Parameters"><ParamSchemaDisplay schema={flatten(trigger.data?.param_schema)} values={r.trigger_params as Record<string, unknown>} /></Card>
          <Card title="Action Parameters"><ParamSchemaDisplay schema={flatten(action.data?.param_schema)} values={r.action_params as Record<string, unknown>} /></Card>
        </div>
        <QuickActions>
          <Link className="text-blue-600" to={`/packs/${r.pack_ref}`}>View Pack</Link>
          <Link className="text-blue-600" to={`/triggers/${r.trigger_ref}`}>View Trigger</Link>
          <Link className="text-blue-600" to={`/actions/${r.action_ref}`}>View Action</Link>
          <Link className="text-blue-600" to={`/executions?rule_ref=${r.ref}`}>View Executions</Link>
        </QuickActions>
      </div>
      {confirm && <ConfirmModal title={`Delete rule ${r.ref}?`} message={<>Delete rule <strong>{r.ref}</strong>?</>} busy={remove.isPending} error={remove.error}
        onClose={() => setConfirm(false)} onConfirm={() => remove.mutate(`/api/v1/rules/${r.ref}`)} />}
    </div>
  );
}

export default function Rules() {
  const { ref } = useParams();
  const { can } = usePermissions();
  const list = useQuery({ queryKey: ["rules", "all"], queryFn: () => getAll<RuleSummary>("/api/v1/rules") });
  const items = list.data?.map((r) => ({ ...r, extra: [r.trigger_ref, r.action_ref] }));
  return (
    <ListDetail noun="rules" basePath="/rules" items={items} loading={list.isLoading} error={list.error} selected={ref}
      header={<div className="flex items-center justify-between"><h1 className="text-lg font-semibold">Rules</h1>{can("rules", "create") && <Link className="btn btn-primary" to="/rules/new">+ New</Link>}</div>}
      subtitle={(r) => `${(r as RuleSummary).trigger_ref} → ${(r as RuleSummary).action_ref}`}
      detail={ref && <RuleDetail key={ref} ruleRef={ref} />} />
  );
}
