// Live progress of a pack install or upgrade (docs/web-ui.md "Packs"): the server streams one
// NDJSON line per step; each stage keeps its latest line, with a bar when the step is measured.
import { useState } from "react";
import { postStream, type InstallLine } from "@/api/http";

export type StageLine = { stage: string; message: string; pack?: string; current?: number; total?: number; unit?: string };

/** Run a streamed install/upgrade, collecting its progress lines (one per stage and pack). */
export function useInstallStream() {
  const [lines, setLines] = useState<StageLine[]>([]);
  const start = <T,>(path: string, body: unknown): Promise<T> => {
    setLines([]);
    return postStream<T>(path, body, (line: InstallLine) => {
      if (line.event !== "progress") return;
      const step: StageLine = { stage: line.stage, message: line.message, pack: line.pack, current: line.current, total: line.total, unit: line.unit };
      setLines((previous) => {
        const index = previous.findIndex((p) => p.stage === step.stage && p.pack === step.pack);
        if (index < 0) return [...previous, step];
        const next = previous.slice();
        next[index] = step;
        return next;
      });
    });
  };
  return { lines, start };
}

function amount(value: number, unit?: string): string {
  if (unit === "bytes") return value >= 1 << 20 ? `${(value / (1 << 20)).toFixed(1)} MiB` : `${Math.round(value / 1024)} KiB`;
  return String(value);
}

export function InstallProgress({ lines, running }: { lines: StageLine[]; running: boolean }) {
  if (!lines.length && !running) return null;
  return (
    <ol className="space-y-2 rounded border bg-gray-50 p-3 text-sm" data-testid="install-progress" aria-live="polite">
      {lines.map((line) => {
        const measured = line.total !== undefined && line.total > 0 && line.current !== undefined;
        const percent = measured ? Math.min(100, Math.round((100 * line.current!) / line.total!)) : null;
        return (
          <li key={`${line.pack ?? ""}:${line.stage}`} data-stage={line.stage}>
            <div className="flex gap-2">
              <span className="w-28 shrink-0 font-mono text-xs uppercase text-gray-500">{line.stage}</span>
              <span className="min-w-0 flex-1 break-words">{line.pack && <span className="font-mono">{line.pack}: </span>}{line.message}</span>
              {measured && <span className="shrink-0 text-xs text-gray-500">{amount(line.current!, line.unit)} / {amount(line.total!, line.unit)}</span>}
            </div>
            {percent !== null && (
              <div className="mt-1 h-1.5 rounded bg-gray-200" role="progressbar" aria-valuenow={percent} aria-valuemin={0} aria-valuemax={100} aria-label={`${line.stage} progress`}>
                <div className="h-1.5 rounded bg-blue-600" style={{ width: `${percent}%` }} />
              </div>
            )}
          </li>
        );
      })}
      {running && <li className="text-xs text-gray-500">Working…</li>}
    </ol>
  );
}
