import { useEffect, useState } from "react";
import { Link, useSearchParams } from "react-router-dom";
import { keepPreviousData, useQuery, useQueryClient } from "@tanstack/react-query";
import { getPage, qs, type Paged } from "@/api/http";
import type { EnforcementSummary } from "@/api/types";
import { useEntityNotifications } from "@/realtime/hooks";
import { ErrorBox, LiveBadge, PageHeader, Pager, Pill, Spinner, StatusPill } from "@/components/ui";
import { dateTime } from "@/lib/format";
import { useDebounced } from "./Events";

export default function Enforcements() {
  const [params, setParams] = useSearchParams();
  const client = useQueryClient();
  const [rule, setRule] = useState(params.get("rule_ref") ?? "");
  const [trigger, setTrigger] = useState(params.get("trigger_ref") ?? "");
  const [event, setEvent] = useState(params.get("event") ?? "");
  const [status, setStatus] = useState(params.get("status") ?? "");
  const [page, setPage] = useState(1);
  const f = useDebounced({ rule, trigger, event, status }, 500);
  useEffect(() => { setPage(1); setParams(new URLSearchParams(Object.entries({ rule_ref: f.rule, trigger_ref: f.trigger, event: f.event, status: f.status }).filter(([, v]) => v)), { replace: true }); }, [f, setParams]);
  const list = useQuery({ queryKey: ["enforcements", "list", f, page], placeholderData: keepPreviousData, queryFn: () => getPage<EnforcementSummary>(`/api/v1/enforcements${qs({ page, per_page: 50, trigger_ref: f.trigger, event: f.event, status: f.status })}`) });
  const { connected } = useEntityNotifications("enforcement", (n) => {
    const p = n.payload as Partial<EnforcementSummary>;
    client.setQueryData<EnforcementSummary>(["enforcements", n.entity_id], (old) => (old ? { ...old, ...p } : old));
    for (const [key, data] of client.getQueriesData<Paged<EnforcementSummary>>({ queryKey: ["enforcements", "list"] })) {
      if (!data) continue;
      const present = data.data.some((r) => r.id === n.entity_id);
      const matches = (!f.status || p.status === f.status) && (!f.event || String(p.event) === f.event) && (!f.rule || String(p.rule_ref ?? "").includes(f.rule)) && (!f.trigger || p.trigger_ref === f.trigger);
      if (present) client.setQueryData(key, { ...data, data: data.data.map((r) => (r.id === n.entity_id ? { ...r, ...p } : r)) });
      else if (matches && p.id !== undefined) client.setQueryData(key, { ...data, data: [p as EnforcementSummary, ...data.data].slice(0, 50), pagination: { ...data.pagination, total_items: data.pagination.total_items + 1 } });
    }
  });
  const rows = (list.data?.data ?? []).filter((r) => !f.rule || String(r.rule_ref ?? "").includes(f.rule));
  return (
    <div className="space-y-4">
      <PageHeader title="Enforcements"><LiveBadge connected={connected} /></PageHeader>
      <div className="grid grid-cols-4 gap-2">
        <input className="input" aria-label="Rule filter" placeholder="Rule" value={rule} onChange={(e) => setRule(e.target.value)} />
        <input className="input" aria-label="Trigger filter" placeholder="Trigger" value={trigger} onChange={(e) => setTrigger(e.target.value)} />
        <input className="input" aria-label="Event filter" placeholder="Event ID" value={event} onChange={(e) => setEvent(e.target.value.replace(/\D/g, ""))} />
        <select className="input" aria-label="Status filter" value={status} onChange={(e) => setStatus(e.target.value)}><option value="">Any status</option><option>created</option><option>processed</option><option>disabled</option></select>
      </div>
      <ErrorBox error={list.error} />
      <div className="overflow-x-auto rounded-lg border bg-white">
        {list.isLoading ? <Spinner /> : (
          <table className="table" data-testid="enforcements-table">
            <thead><tr><th>ID</th><th>Rule</th><th>Trigger</th><th>Event</th><th>Condition</th><th>Status</th><th>Created</th></tr></thead>
            <tbody>
              {rows.map((r) => (
                <tr key={r.id}>
                  <td><Link className="text-blue-600" to={`/enforcements/${r.id}`}>#{r.id}</Link></td><td>{r.rule_ref}</td><td>{r.trigger_ref}</td>
                  <td>{r.event ? <Link className="text-blue-600" to={`/events/${r.event}`}>#{r.event}</Link> : "—"}</td>
                  <td><Pill tone={r.condition === "all" ? "purple" : "indigo"}>{r.condition}</Pill></td><td><StatusPill status={r.status} /></td><td>{dateTime(r.created)}</td>
                </tr>
              ))}
              {rows.length === 0 && <tr><td colSpan={7} className="py-6 text-center text-gray-400">No enforcements</td></tr>}
            </tbody>
          </table>
        )}
        {list.data && <Pager page={page} totalPages={list.data.pagination.total_pages} total={list.data.pagination.total_items} pageSize={50} onPage={setPage} />}
      </div>
    </div>
  );
}
