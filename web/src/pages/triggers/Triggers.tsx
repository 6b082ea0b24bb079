import { useState } from "react";
import { Link, useParams } from "react-router-dom";
import { useQuery } from "@tanstack/react-query";
import { get, getAll } from "@/api/http";
import type { Trigger, TriggerSummary } from "@/api/types";
import { apiBase } from "@/api/tokens";
import { ListDetail, QuickActions } from "@/components/ListDetail";
import { Card, ConfirmModal, ErrorBox, InfoRow, JsonBlock, PageHeader, Spinner } from "@/components/ui";
import { EnableSwitch } from "@/components/Toggle";
import { usePermissions } from "@/auth/permissions";
import { useDelete } from "@/lib/useDelete";
import { dateTime } from "@/lib/format";

export function webhookUrl(key: string): string {
  return `${apiBase || window.location.origin}/api/v1/webhooks/${key}`;
}

function TriggerDetail({ triggerRef }: { triggerRef: string }) {
  const { can } = usePermissions();
  const trigger = useQuery({ queryKey: ["triggers", triggerRef], queryFn: () => get<Trigger>(`/api/v1/triggers/${triggerRef}`) });
  const [confirm, setConfirm] = useState(false);
  const [copied, setCopied] = useState(false);
  const remove = useDelete("triggers", "/triggers");
  if (trigger.isLoading) return <Spinner />;
  const t = trigger.data;
  if (!t) return <ErrorBox error={trigger.error} />;
  const pack = t.pack_ref;
  return (
    <div className="space-y-4">
      <PageHeader title={t.label}>
        <EnableSwitch kind="triggers" entityRef={t.ref} enabled={t.enabled} allowed={can("triggers", "update", { pack })} />
        {t.is_adhoc && can("triggers", "update", { pack }) && <Link className="btn" to={`/triggers/${t.ref}/edit`}>Edit</Link>}
        {t.is_adhoc && can("triggers", "delete", { pack }) && <button className="btn btn-danger" onClick={() => setConfirm(true)}>Delete</button>}
      </PageHeader>
      <div className="flex flex-col gap-4 2xl:flex-row">
        <div className="min-w-0 flex-1 space-y-4">
          <Card title="Trigger">
            <dl>
              <InfoRow label="Ref"><span className="font-mono">{t.ref}</span></InfoRow>
              <InfoRow label="Pack">{t.pack_ref}</InfoRow>
              <InfoRow label="Description">{t.description}</InfoRow>
              <InfoRow label="Created">{dateTime(t.created)}</InfoRow>
            </dl>
          </Card>
          {t.webhook_enabled && t.webhook_key && (
            <Card title="Webhook URL">
              <div className="flex items-center gap-2">
                <code className="flex-1 break-all rounded bg-gray-100 p-2 text-xs" data-testid="webhook-url">{webhookUrl(t.webhook_key)}</code>
                <button className="btn" onClick={() => { navigator.clipboard?.writeText(webhookUrl(t.webhook_key!)).catch(() => undefined); setCopied(true); window.setTimeout(() => setCopied(false), 2000); }}>{copied ? "Copied!" : "Copy"}</button>
              </div>
            </Card>
          )}
          <Card title="Parameters"><JsonBlock value={t.param_schema} /></Card>
          <Card title="Payload Schema"><JsonBlock value={t.out_schema} /></Card>
        </div>
        <QuickActions>
          <Link className="text-blue-600" to={`/packs/${t.pack_ref}`}>View Pack</Link>
          <Link className="text-blue-600" to={`/events?trigger_ref=${t.ref}`}>View Events</Link>
          <Link className="text-blue-600" to={`/rules?pack=${t.pack_ref}`}>View Rules</Link>
        </QuickActions>
      </div>
      {confirm && <ConfirmModal title={`Delete trigger ${t.ref}?`} message={<>Delete trigger <strong>{t.ref}</strong>?</>} busy={remove.isPending} error={remove.error}
        onClose={() => setConfirm(false)} onConfirm={() => remove.mutate(`/api/v1/triggers/${t.ref}`)} />}
    </div>
  );
}

export default function Triggers() {
  const { ref } = useParams();
  const { can } = usePermissions();
  const list = useQuery({ queryKey: ["triggers", "all"], queryFn: () => getAll<TriggerSummary>("/api/v1/triggers") });
  return (
    <ListDetail noun="triggers" basePath="/triggers" items={list.data} loading={list.isLoading} error={list.error} selected={ref}
      header={<div className="flex items-center justify-between"><h1 className="text-lg font-semibold">Triggers</h1>{can("triggers", "create") && <Link className="btn btn-primary" to="/triggers/create">+ Create Trigger</Link>}</div>}
      detail={ref && <TriggerDetail key={ref} triggerRef={ref} />} />
  );
}
