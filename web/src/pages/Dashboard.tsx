import { useState } from "react";
import { Link } from "react-router-dom";
import { keepPreviousData, useQuery, useQueryClient } from "@tanstack/react-query";
import { Bar, BarChart, CartesianGrid, Legend, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";
import { getPage, get, qs } from "@/api/http";
import type { Dashboard as DashboardData, ExecutionSummary, Point } from "@/api/types";
import { useAuth } from "@/auth/AuthContext";
import { useEntityNotifications } from "@/realtime/hooks";
import { applyExecutionNotification } from "@/realtime/executionCache";
import { Card, ErrorBox, LiveBadge, PageHeader, StatusPill } from "@/components/ui";
import { relativeTime } from "@/lib/format";

const RANGES = [6, 12, 24, 48, 168];
const STATUS_FILL: Record<string, string> = {
  completed: "#22c55e", failed: "#ef4444", timeout: "#f97316", running: "#3b82f6", requested: "#eab308",
  scheduling: "#facc15", scheduled: "#fde047", canceling: "#9ca3af", cancelled: "#6b7280", abandoned: "#a855f7",
  online: "#22c55e", offline: "#ef4444", draining: "#eab308",
};

function useCount(key: string, path: string) {
  return useQuery({ queryKey: ["count", key], queryFn: () => getPage<unknown>(path).then((p) => p.pagination.total_items) });
}

function bucketLabel(bucket: string, hours: number): string {
  const d = new Date(bucket);
  if (hours <= 24) return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  if (hours <= 48) return d.toLocaleString([], { weekday: "short", hour: "2-digit" });
  return d.toLocaleDateString();
}

/** Points → rows keyed by bucket with one column per label (stacked bars). */
function pivot(points: Point[], hours: number): { rows: Record<string, string | number>[]; keys: string[] } {
  const keys = new Set<string>();
  const rows = new Map<string, Record<string, string | number>>();
  for (const p of points) {
    const key = p.label ?? "value";
    keys.add(key);
    const row = rows.get(p.bucket) ?? { bucket: bucketLabel(p.bucket, hours) };
    row[key] = ((row[key] as number | undefined) ?? 0) + p.value;
    rows.set(p.bucket, row);
  }
  return { rows: [...rows.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, r]) => r), keys: [...keys] };
}

function Chart({ title, points, hours, stacked }: { title: string; points: Point[]; hours: number; stacked?: boolean }) {
  const { rows, keys } = pivot(points, hours);
  return (
    <Card title={title}>
      {rows.length === 0 ? <p className="py-8 text-center text-sm text-gray-400">No data in this time range</p> : (
        <ResponsiveContainer width="100%" height={180}>
          <BarChart data={rows}>
            <CartesianGrid strokeDasharray="3 3" />
            <XAxis dataKey="bucket" fontSize={10} />
            <YAxis allowDecimals={false} fontSize={10} width={30} />
            <Tooltip />
            {stacked && <Legend wrapperStyle={{ fontSize: 11 }} />}
            {keys.map((k) => <Bar key={k} dataKey={k} stackId={stacked ? "s" : undefined} fill={STATUS_FILL[k] ?? "#3b82f6"} isAnimationActive={false} />)}
          </BarChart>
        </ResponsiveContainer>
      )}
    </Card>
  );
}

function FailureRing({ pct }: { pct: number }) {
  const colour = pct === 0 ? "#22c55e" : pct < 5 ? "#eab308" : pct < 20 ? "#f97316" : "#ef4444";
  const circumference = 2 * Math.PI * 40;
  return (
    <svg width="110" height="110" viewBox="0 0 100 100" aria-label="Failure rate">
      <circle cx="50" cy="50" r="40" stroke="#e5e7eb" strokeWidth="10" fill="none" />
      <circle cx="50" cy="50" r="40" stroke={colour} strokeWidth="10" fill="none" strokeDasharray={`${(pct / 100) * circumference} ${circumference}`} transform="rotate(-90 50 50)" />
      <text x="50" y="55" textAnchor="middle" fontSize="16" fontWeight="600">{pct.toFixed(1)}%</text>
    </svg>
  );
}

export default function Dashboard() {
  const { user } = useAuth();
  const client = useQueryClient();
  const [hours, setHours] = useState(24);
  const { connected } = useEntityNotifications("execution", (n) => {
    applyExecutionNotification(client, n);
    void client.invalidateQueries({ queryKey: ["count", "running"] });
  });
  const packs = useCount("packs", "/api/v1/packs?page_size=1");
  const rules = useCount("rules", "/api/v1/rules/enabled?page_size=1");
  const running = useCount("running", "/api/v1/executions?status=running&per_page=1");
  const actions = useCount("actions", "/api/v1/actions?page_size=1");
  const recent = useQuery({ queryKey: ["executions", "list", { page: 1, perPage: 20 }], queryFn: () => getPage<ExecutionSummary>("/api/v1/executions?per_page=20") });
  const analytics = useQuery({
    queryKey: ["analytics", hours], placeholderData: keepPreviousData, refetchInterval: 120_000,
    queryFn: () => get<DashboardData>(`/api/v1/analytics/dashboard${qs({ hours })}`),
  });
  const rows = recent.data?.data ?? [];
  const counts = rows.reduce<Record<string, number>>((acc, r) => ({ ...acc, [r.status]: (acc[r.status] ?? 0) + 1 }), {});
  const finished = (counts.completed ?? 0) + (counts.failed ?? 0) + (counts.timeout ?? 0);
  const sum = (points?: Point[]) => (points ?? []).reduce((a, p) => a + p.value, 0);
  const a = analytics.data;
  const cards = [
    { label: "Total Packs", value: packs.data, to: "/packs" },
    { label: "Active Rules", value: rules.data, to: "/rules" },
    { label: "Running Executions", value: running.data, to: "/executions?status=running" },
    { label: "Total Actions", value: actions.data, to: "/actions" },
  ];
  return (
    <div className="space-y-4">
      <PageHeader title={<>Welcome back, {user?.display_name || user?.login}</>}><LiveBadge connected={connected} /></PageHeader>
      <div className="grid grid-cols-2 gap-4 lg:grid-cols-4">
        {cards.map((c) => (
          <Link key={c.label} to={c.to} className="rounded-lg border bg-white p-4 shadow-sm hover:border-blue-300" data-card={c.label}>
            <div className="text-sm text-gray-500">{c.label}</div>
            <div className="text-3xl font-semibold" data-testid={`card-${c.label}`}>{c.value ?? "…"}</div>
          </Link>
        ))}
      </div>
      <div className="grid grid-cols-1 gap-4 lg:grid-cols-2">
        <Card title="Execution Status">
          <div className="space-y-1">
            {Object.entries(counts).map(([status, n]) => (
              <div key={status} className="flex items-center gap-2 text-sm">
                <span className="w-24"><StatusPill status={status} /></span>
                <div className="h-3 flex-1 rounded bg-gray-100"><div className="h-3 rounded" style={{ width: `${(n / rows.length) * 100}%`, background: STATUS_FILL[status] }} /></div>
                <span className="w-6 text-right">{n}</span>
              </div>
            ))}
            {rows.length === 0 && <p className="text-sm text-gray-400">No executions yet</p>}
            <p className="pt-2 text-sm">Success Rate: <strong>{finished ? `${(((counts.completed ?? 0) / finished) * 100).toFixed(0)}%` : "—"}</strong></p>
          </div>
        </Card>
        <Card title="Recent Activity" actions={<Link to="/executions" className="text-sm text-blue-600">View all →</Link>}>
          <ul className="max-h-64 divide-y overflow-y-auto text-sm">
            {rows.map((r) => (
              <li key={r.id}>
                <Link to={`/executions/${r.id}`} className="flex items-center justify-between gap-2 py-1.5 hover:bg-gray-50">
                  <span className="truncate font-mono">{r.action_ref}</span>
                  <span className="flex shrink-0 items-center gap-2"><StatusPill status={r.status} /><span className="text-gray-400">#{r.id}</span><span className="w-16 text-right text-gray-400">{relativeTime(r.created)}</span></span>
                </Link>
              </li>
            ))}
          </ul>
        </Card>
      </div>
      <div className="flex items-center justify-between">
        <h2 className="text-lg font-semibold">Analytics</h2>
        <div className="flex gap-1" role="group" aria-label="Time range">
          {RANGES.map((h) => (
            <button key={h} className={`btn ${h === hours ? "btn-primary" : ""}`} onClick={() => setHours(h)} aria-pressed={h === hours}>
              {h < 48 ? `${h}h` : `${h / 24}d`}
            </button>
          ))}
        </div>
      </div>
      <ErrorBox error={analytics.error} />
      <div className="grid grid-cols-3 gap-4">
        {[["Executions", a?.execution_throughput], ["Events", a?.event_volume], ["Enforcements", a?.enforcement_volume]].map(([label, pts]) => (
          <div key={label as string} className="rounded-lg border bg-white p-4 shadow-sm">
            <div className="text-sm text-gray-500">{label as string} ({hours}h)</div>
            <div className="text-2xl font-semibold" data-testid={`stat-${label}`}>{a ? sum(pts as Point[]) : "…"}</div>
          </div>
        ))}
      </div>
      <div className="grid grid-cols-1 gap-4 lg:grid-cols-2">
        <Chart title="Execution Throughput" points={a?.execution_throughput ?? []} hours={hours} />
        <Card title="Failure Rate">
          <div className="flex items-center gap-6">
            <FailureRing pct={a?.failure_rate.failure_rate_pct ?? 0} />
            <div className="text-sm">
              <div className="text-green-700">Completed: {a?.failure_rate.completed_count ?? 0}</div>
              <div className="text-red-700">Failed: {a?.failure_rate.failed_count ?? 0}</div>
              <div className="text-orange-700">Timeout: {a?.failure_rate.timeout_count ?? 0}</div>
            </div>
          </div>
        </Card>
        <Chart title="Execution Status Over Time" points={a?.execution_status ?? []} hours={hours} stacked />
        <Chart title="Worker Status Transitions" points={a?.worker_status ?? []} hours={hours} stacked />
        <Chart title="Event Volume" points={a?.event_volume ?? []} hours={hours} />
        <Chart title="Enforcement Volume" points={a?.enforcement_volume ?? []} hours={hours} />
      </div>
    </div>
  );
}
