import { Link, useParams } from "react-router-dom";
import { useQuery } from "@tanstack/react-query";
import { get } from "@/api/http";
import type { Enforcement } from "@/api/types";
import { Card, ErrorBox, InfoRow, JsonBlock, PageHeader, Pill, Spinner, StatusPill } from "@/components/ui";
import { dateTime } from "@/lib/format";

export default function EnforcementDetail() {
  const id = Number(useParams().id);
  const enforcement = useQuery({ queryKey: ["enforcements", id], queryFn: () => get<Enforcement>(`/api/v1/enforcements/${id}`) });
  if (enforcement.isLoading) return <Spinner />;
  const e = enforcement.data;
  if (!e) return <ErrorBox error={enforcement.error} />;
  return (
    <div className="space-y-4">
      <PageHeader title={<span className="flex items-center gap-2">Enforcement #{e.id}<StatusPill status={e.status} /><Pill tone={e.condition === "all" ? "purple" : "indigo"}>{e.condition}</Pill></span>} />
      <Card title="Enforcement">
        <dl>
          <InfoRow label="Rule">{e.rule_ref ? <Link className="text-blue-600" to={`/rules/${e.rule_ref}`}>{e.rule_ref}</Link> : "—"}</InfoRow>
          <InfoRow label="Trigger"><Link className="text-blue-600" to={`/triggers/${e.trigger_ref}`}>{e.trigger_ref}</Link></InfoRow>
          <InfoRow label="Event">{e.event ? <Link className="text-blue-600" to={`/events/${e.event}`}>#{e.event}</Link> : "—"}</InfoRow>
          <InfoRow label="Resolved at">{e.resolved_at ? dateTime(e.resolved_at) : "Pending"}</InfoRow>
          <InfoRow label="Created">{dateTime(e.created)}</InfoRow>
        </dl>
      </Card>
      <div className="grid grid-cols-1 gap-4 xl:grid-cols-3">
        <Card title="Rule Conditions"><JsonBlock value={e.conditions} /></Card>
        <Card title="Enforcement Configuration"><JsonBlock value={e.config} /></Card>
        <Card title="Payload"><JsonBlock value={e.payload} /></Card>
      </div>
      <Link className="text-sm text-blue-600" to={`/executions?enforcement=${e.id}`}>Related executions</Link>
    </div>
  );
}
