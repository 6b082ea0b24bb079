import { Link, useParams } from "react-router-dom";
import { useQuery } from "@tanstack/react-query";
import { get } from "@/api/http";
import type { Event } from "@/api/types";
import { Card, ErrorBox, InfoRow, JsonBlock, PageHeader, Spinner } from "@/components/ui";
import { dateTime } from "@/lib/format";

export default function EventDetail() {
  const id = Number(useParams().id);
  const event = useQuery({ queryKey: ["events", id], queryFn: () => get<Event>(`/api/v1/events/${id}`) });
  if (event.isLoading) return <Spinner />;
  const e = event.data;
  if (!e) return <ErrorBox error={event.error} />;
  const hasPayload = e.payload && Object.keys(e.payload as object).length > 0;
  return (
    <div className="space-y-4">
      <PageHeader title={`Event #${e.id}`} />
      <Card title="Event">
        <dl>
          <InfoRow label="Trigger"><Link className="text-blue-600" to={`/triggers/${e.trigger_ref}`}>{e.trigger_ref}</Link></InfoRow>
          <InfoRow label="Source">{e.source_ref ?? "No source"}</InfoRow>
          <InfoRow label="Rule">{e.rule_ref ? <Link className="text-blue-600" to={`/rules/${e.rule_ref}`}>{e.rule_ref}</Link> : "No rule"}</InfoRow>
          <InfoRow label="Created">{dateTime(e.created)}</InfoRow>
        </dl>
      </Card>
      <Card title="Payload">{hasPayload ? <JsonBlock value={e.payload} /> : <p className="text-sm text-gray-500">No payload data</p>}</Card>
      <div className="flex gap-3 text-sm">
        <Link className="text-blue-600" to={`/enforcements?event=${e.id}`}>Enforcements of this event</Link>
        <Link className="text-blue-600" to={`/events?trigger_ref=${e.trigger_ref}`}>Similar events</Link>
      </div>
    </div>
  );
}
