import { useState } from "react";
import { Link } from "react-router-dom";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { getPage } from "@/api/http";
import type { InquirySummary } from "@/api/types";
import { useEntityNotifications } from "@/realtime/hooks";
import { usePermissions } from "@/auth/permissions";
import { ErrorBox, LiveBadge, Modal, PageHeader, Spinner, StatusPill } from "@/components/ui";
import { InquiryForm } from "@/components/InquiryForm";
import { dateTime, relativeTime } from "@/lib/format";

const FILTERS = ["pending", "responded", "timeout", "cancelled", "all"];

export default function Inquiries() {
  const client = useQueryClient();
  const { can } = usePermissions();
  const [filter, setFilter] = useState("pending");
  const [answering, setAnswering] = useState<number | null>(null);
  const list = useQuery({
    queryKey: ["inquiries", "list", filter],
    queryFn: () => getPage<InquirySummary>(filter === "all" ? "/api/v1/inquiries?limit=100" : `/api/v1/inquiries/status/${filter}?page_size=100`),
  });
  const { connected } = useEntityNotifications("inquiry", () => void client.invalidateQueries({ queryKey: ["inquiries"] }));
  return (
    <div className="space-y-4">
      <PageHeader title="Inquiries"><LiveBadge connected={connected} /></PageHeader>
      <div className="flex gap-1" role="group" aria-label="Status">
        {FILTERS.map((f) => <button key={f} className={`btn capitalize ${filter === f ? "btn-primary" : ""}`} onClick={() => setFilter(f)}>{f}</button>)}
      </div>
      <ErrorBox error={list.error} />
      <div className="overflow-x-auto rounded-lg border bg-white">
        {list.isLoading ? <Spinner /> : (
          <table className="table" data-testid="inquiries-table">
            <thead><tr><th>ID</th><th>Prompt</th><th>Execution</th><th>Status</th><th>Times out</th><th>Created</th><th /></tr></thead>
            <tbody>
              {(list.data?.data ?? []).map((i) => (
                <tr key={i.id} data-inquiry={i.id}>
                  <td>#{i.id}</td><td className="max-w-md truncate">{i.prompt}</td>
                  <td><Link className="text-blue-600" to={`/executions/${i.execution}`}>#{i.execution}</Link></td>
                  <td><StatusPill status={i.status} /></td><td>{i.timeout_at ? dateTime(i.timeout_at) : "never"}</td><td>{relativeTime(i.created)}</td>
                  <td>{i.status === "pending" && can("inquiries", "respond") && <button className="btn btn-primary" onClick={() => setAnswering(i.id)}>Respond</button>}</td>
                </tr>
              ))}
              {list.data?.data.length === 0 && <tr><td colSpan={7} className="py-6 text-center text-gray-400">No {filter === "all" ? "" : filter} inquiries</td></tr>}
            </tbody>
          </table>
        )}
      </div>
      {answering !== null && <Modal title={`Inquiry #${answering}`} onClose={() => setAnswering(null)}><InquiryForm id={answering} onDone={() => setAnswering(null)} /></Modal>}
    </div>
  );
}
