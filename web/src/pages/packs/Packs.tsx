import { useState } from "react";
import { Link, useNavigate, useParams } from "react-router-dom";
import { useQuery } from "@tanstack/react-query";
import { get, getAll } from "@/api/http";
import type { ActionSummary, Pack, PackSummary } from "@/api/types";
import { ListDetail, QuickActions } from "@/components/ListDetail";
import { Card, ConfirmModal, ErrorBox, InfoRow, JsonBlock, PageHeader, Pill, Spinner } from "@/components/ui";
import { flatten } from "@/components/schema";
import { usePermissions } from "@/auth/permissions";
import { useDelete } from "@/lib/useDelete";
import { PackTests } from "./PackTests";
import { UpgradeModal } from "./UpgradeModal";
import { dateTime } from "@/lib/format";

function NewPackMenu() {
  const [open, setOpen] = useState(false);
  const navigate = useNavigate();
  return (
    <div className="relative">
      <button className="btn btn-primary" onClick={() => setOpen(!open)}>New Pack ▾</button>
      {open && (
        <div className="absolute right-0 z-10 mt-1 w-56 rounded border bg-white py-1 shadow">
          {[["Create Empty Pack", "/packs/new"], ["Register from Filesystem", "/packs/register"], ["Install from Remote", "/packs/install"]].map(([label, to]) => (
            <button key={to} className="block w-full px-3 py-2 text-left text-sm hover:bg-gray-50" onClick={() => navigate(to)}>{label}</button>
          ))}
        </div>
      )}
    </div>
  );
}

function configValue(value: unknown): string {
  if (value === undefined || value === null) return "not set";
  if (typeof value === "boolean") return value ? "✓" : "✗";
  if (Array.isArray(value)) return `[${value.length} items]`;
  if (typeof value === "object") return `{${Object.keys(value).length} keys}`;
  return String(value);
}

function PackDetail({ packRef }: { packRef: string }) {
  const { can } = usePermissions();
  const pack = useQuery({ queryKey: ["packs", packRef], queryFn: () => get<Pack>(`/api/v1/packs/${packRef}`) });
  const actions = useQuery({ queryKey: ["actions", "pack", packRef], queryFn: () => getAll<ActionSummary>(`/api/v1/packs/${packRef}/actions`) });
  const [confirm, setConfirm] = useState(false);
  const [upgrading, setUpgrading] = useState(false);
  const remove = useDelete("packs", "/packs");
  if (pack.isLoading) return <Spinner />;
  if (!pack.data) return <ErrorBox error={pack.error} />;
  const p = pack.data;
  const schema = flatten(p.conf_schema);
  const config = (p.config ?? {}) as Record<string, unknown>;
  return (
    <div className="space-y-4">
      <PageHeader title={<span className="flex items-center gap-2">{p.label}{p.is_standard && <Pill tone="blue">Standard</Pill>}</span>}>
        {can("packs", "update", { pack: p.ref }) && <Link className="btn" to={`/packs/${p.ref}/edit`}>Edit</Link>}
        {/* Upgrading and uninstalling install or remove code: the server requires packs:manage. */}
        {can("packs", "manage", { pack: p.ref }) && <button className="btn" onClick={() => setUpgrading(true)}>Upgrade</button>}
        {can("packs", "manage", { pack: p.ref }) && <button className="btn btn-danger" onClick={() => setConfirm(true)}>Uninstall</button>}
      </PageHeader>
      <div className="flex flex-col gap-4 2xl:flex-row">
        <div className="min-w-0 flex-1 space-y-4">
          <Card title="Information">
            <dl>
              <InfoRow label="Ref"><span className="font-mono">{p.ref}</span></InfoRow>
              <InfoRow label="Label">{p.label}</InfoRow>
              <InfoRow label="Version">{p.version}</InfoRow>
              <InfoRow label="Description">{p.description}</InfoRow>
              <InfoRow label="Dependencies">{(p.dependencies ?? []).join(", ") || "—"}</InfoRow>
              <InfoRow label="Created">{dateTime(p.created)}</InfoRow>
              <InfoRow label="Updated">{dateTime(p.updated)}</InfoRow>
            </dl>
          </Card>
          {Object.keys(schema).length > 0 && (
            <Card title="Configuration">
              <table className="table" data-testid="pack-config">
                <tbody>
                  {Object.entries(schema).map(([key, def]) => {
                    const usesDefault = config[key] === undefined && def.default !== undefined;
                    return (
                      <tr key={key}>
                        <td className="font-mono">{key} <span className="text-xs text-gray-400">{def.type ?? "string"}</span>{usesDefault && <Pill>default</Pill>}</td>
                        <td>{configValue(usesDefault ? def.default : config[key])}</td>
                        <td className="text-xs text-gray-500">{def.description}</td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </Card>
          )}
          <Card title={`Actions (${actions.data?.length ?? 0})`}>
            <div className="grid grid-cols-1 gap-2 lg:grid-cols-2">
              {(actions.data ?? []).map((a) => (
                <Link key={a.ref} to={`/actions/${a.ref}`} className="rounded border p-2 text-sm hover:bg-gray-50">
                  <div className="font-medium">{a.label}</div><div className="font-mono text-xs text-gray-500">{a.ref}</div>
                </Link>
              ))}
            </div>
          </Card>
          <PackTests packRef={p.ref} canRun={can("packs", "update", { pack: p.ref })} />
          {Object.keys(p.meta ?? {}).length > 0 && <Card title="Metadata"><JsonBlock value={p.meta} /></Card>}
        </div>
        <QuickActions>
          {(["actions", "triggers", "sensors", "rules"] as const).map((kind) => (
            <Link key={kind} className="text-blue-600" to={`/${kind}?pack=${p.ref}`}>View {kind}</Link>
          ))}
        </QuickActions>
      </div>
      {confirm && (
        <ConfirmModal title={`Uninstall pack ${p.ref}?`} confirmLabel={remove.isPending ? "Uninstalling…" : "Uninstall"} onClose={() => setConfirm(false)} busy={remove.isPending} error={remove.error}
          message={<>Uninstalling <strong>{p.label}</strong> removes its directory and environments and deletes its actions, triggers, sensors and rules. Past executions are kept.</>}
          onConfirm={() => remove.mutate(`/api/v1/packs/${p.ref}`)} />
      )}
      {upgrading && <UpgradeModal pack={p} onClose={() => setUpgrading(false)} />}
    </div>
  );
}

export default function Packs() {
  const { ref } = useParams();
  const { can } = usePermissions();
  const list = useQuery({ queryKey: ["packs", "all"], queryFn: () => getAll<PackSummary>("/api/v1/packs") });
  return (
    <ListDetail noun="packs" basePath="/packs" items={list.data} loading={list.isLoading} error={list.error} selected={ref} groupByPack={false}
      header={<div className="flex items-center justify-between"><h1 className="text-lg font-semibold">Packs</h1>{can("packs", "create") && <NewPackMenu />}</div>}
      badges={(p) => <><span className="text-xs text-gray-500">v{(p as PackSummary).version}</span>{(p as PackSummary).is_standard && <Pill tone="blue">Standard</Pill>}</>}
      detail={ref && <PackDetail key={ref} packRef={ref} />} />
  );
}
