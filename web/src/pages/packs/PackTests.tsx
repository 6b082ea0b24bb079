// Pack tests (web-ui.md §5.2, docs/packs.md): the latest run, "Run Tests", history, suites and cases.
import { useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import type { components } from "@/api/schema";
import { get, getPage, post } from "@/api/http";
import { ApiError } from "@/api/errors";
import { Card, ErrorBox, Pager, StatusPill } from "@/components/ui";
import { dateTime, duration } from "@/lib/format";

type Execution = components["schemas"]["PackTestExecution"];
type Result = components["schemas"]["PackTestResult"];

const outcome = (run: { failed: number; totalTests: number; skipped: number }) =>
  run.failed > 0 ? "failed" : run.totalTests > 0 && run.skipped === run.totalTests ? "skipped" : "passed";

function Suites({ result }: { result: Result }) {
  const [open, setOpen] = useState<string | null>(null);
  return (
    <ul className="space-y-1 text-sm">
      {result.testSuites.map((suite) => (
        <li key={suite.name} className="rounded border">
          <button className="flex w-full justify-between px-2 py-1" onClick={() => setOpen(open === suite.name ? null : suite.name)}>
            <span>{open === suite.name ? "▾" : "▸"} {suite.name} <span className="text-gray-400">({suite.runnerType})</span></span>
            <span>{suite.passed}/{suite.total} passed</span>
          </button>
          {open === suite.name && (
            <ul className="divide-y border-t">
              {suite.testCases.map((c) => (
                <li key={c.name} className="px-3 py-1">
                  <div className="flex justify-between"><span className="font-mono">{c.name}</span><StatusPill status={c.status === "passed" ? "completed" : c.status} /></div>
                  {c.errorMessage && <div className="text-xs text-red-700">{c.errorMessage}</div>}
                  {c.stderr && <pre className="max-h-32 overflow-auto whitespace-pre-wrap text-xs text-gray-600">{c.stderr}</pre>}
                </li>
              ))}
            </ul>
          )}
        </li>
      ))}
    </ul>
  );
}

export function PackTests({ packRef, canRun }: { packRef: string; canRun: boolean }) {
  const client = useQueryClient();
  const [page, setPage] = useState(1);
  const latest = useQuery({
    queryKey: ["packs", packRef, "tests", "latest"],
    queryFn: async () => {
      try {
        return await get<Execution>(`/api/v1/packs/${packRef}/tests/latest`);
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) return null; // never tested
        throw error;
      }
    },
  });
  const history = useQuery({ queryKey: ["packs", packRef, "tests", page], queryFn: () => getPage<Execution>(`/api/v1/packs/${packRef}/tests?page=${page}&page_size=10`) });
  const run = useMutation({
    mutationFn: () => post<Result>(`/api/v1/packs/${packRef}/test`),
    onSuccess: () => client.invalidateQueries({ queryKey: ["packs", packRef, "tests"] }),
  });
  const last = latest.data;
  const result = run.data ?? (last?.result as Result | undefined);
  return (
    <Card title="Testing" actions={canRun && <button className="btn" disabled={run.isPending} onClick={() => run.mutate()}>{run.isPending ? "Running…" : "Run Tests"}</button>}>
      <div className="space-y-3" data-testid="pack-tests">
        <ErrorBox error={run.error || latest.error} />
        {last ? (
          <div className="flex flex-wrap items-center gap-2 text-sm">
            <StatusPill status={outcome(last) === "passed" ? "completed" : outcome(last)} />
            <span>{last.passed}/{last.totalTests} passed</span>
            <span className="text-gray-500">v{last.packVersion} · {last.triggerReason} · {dateTime(last.executionTime)} · {duration(last.durationMs)} · {last.passRate}%</span>
          </div>
        ) : latest.isSuccess && <p className="text-sm text-gray-500">No test runs yet.</p>}
        {result?.testSuites && <Suites result={result} />}
        {(history.data?.data.length ?? 0) > 1 && (
          <>
            <table className="table">
              <thead><tr><th>Status</th><th>Passed</th><th>Version</th><th>Reason</th><th>Date</th><th>Duration</th></tr></thead>
              <tbody>
                {history.data!.data.map((h) => (
                  <tr key={h.id}><td>{outcome(h)}</td><td>{h.passed}/{h.totalTests}</td><td>{h.packVersion}</td><td>{h.triggerReason}</td><td>{dateTime(h.executionTime)}</td><td>{duration(h.durationMs)}</td></tr>
                ))}
              </tbody>
            </table>
            <Pager page={page} totalPages={history.data!.pagination.total_pages} total={history.data!.pagination.total_items} pageSize={10} onPage={setPage} />
          </>
        )}
      </div>
    </Card>
  );
}
