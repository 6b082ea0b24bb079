import { useEffect, useState } from "react";
import { Link, useSearchParams } from "react-router-dom";
import { keepPreviousData, useQuery, useQueryClient } from "@tanstack/react-query";
import { getPage, qs, type Paged } from "@/api/http";
import type { EventSummary } from "@/api/types";
import { useEntityNotifications } from "@/realtime/hooks";
import { ErrorBox, LiveBadge, PageHeader, Pager, Spinner } from "@/components/ui";
import { dateTime } from "@/lib/format";

export function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => { const t = window.setTimeout(() => setV(value), ms); return () => window.clearTimeout(t); }, [value, ms]);
  return v;
}

export default function Events() {
  const [params, setParams] = useSearchParams();
  const client = useQueryClient();
  const [trigger, setTrigger] = useState(params.get("trigger_ref") ?? "");
  const [rule, setRule] = useState(params.get("rule_ref") ?? "");
  const [page, setPage] = useState(1);
  const [suggestions, setSuggestions] = useState<Set<string>>(new Set());
  const filters = useDebounced({ trigger, rule }, 500);
  useEffect(() => { setPage(1); setParams(new URLSearchParams(Object.entries({ trigger_ref: filters.trigger, rule_ref: filters.rule }).filter(([, v]) => v)), { replace: true }); }, [filters, setParams]);
  const key = ["events", "list", filters, page];
  const list = useQuery({ queryKey: key, placeholderData: keepPreviousData, queryFn: () => getPage<EventSummary>(`/api/v1/events${qs({ page, per_page: 50, trigger_ref: filters.trigger, rule_ref: filters.rule })}`) });
  const { connected } = useEntityNotifications("event", (n) => {
    if (n.notification_type !== "event_created") return;
    const p = n.payload;
    const row = { id: n.entity_id ?? (p.id as number), trigger: p.trigger, trigger_ref: p.trigger_ref, rule: p.rule ?? null, rule_ref: p.rule_ref ?? null, source: p.source ?? null, source_ref: p.source_ref ?? null, has_payload: true, created: (p.created as string) ?? n.timestamp } as EventSummary;
    setSuggestions((s) => new Set([...s, row.trigger_ref, row.rule_ref ?? ""].filter(Boolean)));
    if ((filters.trigger && !String(row.trigger_ref).includes(filters.trigger)) || (filters.rule && !String(row.rule_ref ?? "").includes(filters.rule))) return;
    client.setQueryData<Paged<EventSummary>>(key, (old) => {
      if (!old || old.data.some((r) => r.id === row.id)) return old;
      return { ...old, data: page === 1 ? [row, ...old.data].slice(0, 50) : old.data, pagination: { ...old.pagination, total_items: old.pagination.total_items + 1 } };
    });
  });
  const rows = list.data?.data ?? [];
  const known = [...new Set([...suggestions, ...rows.flatMap((r) => [r.trigger_ref, r.rule_ref ?? ""])].filter(Boolean))];
  return (
    <div className="space-y-4">
      <PageHeader title="Events">{connected && <span className="text-xs text-green-700">Live updates</span>}<LiveBadge connected={connected} /></PageHeader>
      <div className="flex gap-2">
        <input className="input" list="event-refs" aria-label="Trigger filter" placeholder="Trigger" value={trigger} onChange={(e) => setTrigger(e.target.value)} />
        <input className="input" list="event-refs" aria-label="Rule filter" placeholder="Rule" value={rule} onChange={(e) => setRule(e.target.value)} />
        <datalist id="event-refs">{known.map((k) => <option key={k} value={k} />)}</datalist>
      </div>
      <ErrorBox error={list.error} />
      <div className="overflow-x-auto rounded-lg border bg-white">
        {list.isLoading ? <Spinner /> : (
          <table className="table" data-testid="events-table">
            <thead><tr><th>ID</th><th>Trigger</th><th>Rule</th><th>Source</th><th>Created</th></tr></thead>
            <tbody>
              {rows.map((r) => (
                <tr key={r.id} data-event={r.id}>
                  <td><Link className="text-blue-600" to={`/events/${r.id}`}>#{r.id}</Link></td>
                  <td className="font-mono">{r.trigger_ref} <span className="text-gray-400">({r.trigger})</span></td>
                  <td>{r.rule_ref ?? <span className="text-gray-400">No rule</span>}</td>
                  <td>{r.source_ref ?? <span className="text-gray-400">No source</span>}</td>
                  <td>{dateTime(r.created)}</td>
                </tr>
              ))}
              {rows.length === 0 && <tr><td colSpan={5} className="py-6 text-center text-gray-400">Events will appear here when triggers fire</td></tr>}
            </tbody>
          </table>
        )}
        {list.data && <Pager page={page} totalPages={list.data.pagination.total_pages} total={list.data.pagination.total_items} pageSize={50} onPage={setPage} />}
      </div>
    </div>
  );
}
