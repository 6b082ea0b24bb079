// The list/detail pattern of packs, actions, rules, triggers and sensors (web-ui.md §1.4).
import { useMemo, useState, type ReactNode } from "react";
import { Link, useSearchParams } from "react-router-dom";
import { ErrorBox, Spinner } from "./ui";

export type ListItem = {
  ref: string;
  label?: string | null;
  description?: string | null;
  pack_ref?: string | null;
  enabled?: boolean | null;
  extra?: string[];
};

type Props<T extends ListItem> = {
  noun: string;
  basePath: string;
  items: T[] | undefined;
  loading: boolean;
  error: unknown;
  selected?: string;
  groupByPack?: boolean;
  badges?: (item: T) => ReactNode;
  subtitle?: (item: T) => ReactNode;
  header?: ReactNode;
  detail: ReactNode;
};

export function ListDetail<T extends ListItem>({ noun, basePath, items, loading, error, selected, groupByPack = true, badges, subtitle, header, detail }: Props<T>) {
  const [search, setSearch] = useState("");
  const [params] = useSearchParams();
  const pack = params.get("pack");
  const [closed, setClosed] = useState<Set<string>>(new Set());
  const filtered = useMemo(() => {
    const q = search.toLowerCase();
    return (items ?? []).filter((item) => {
      if (pack && item.pack_ref !== pack && !(noun === "packs" && item.ref === pack)) return false;
      if (!q) return true;
      return [item.label, item.ref, item.description, item.pack_ref, ...(item.extra ?? [])].some((v) => v?.toLowerCase().includes(q));
    });
  }, [items, search, pack, noun]);
  const groups = useMemo(() => {
    const map = new Map<string, T[]>();
    for (const item of filtered) {
      const key = groupByPack ? item.pack_ref ?? "" : "";
      map.set(key, [...(map.get(key) ?? []), item]);
    }
    return [...map.entries()].sort(([a], [b]) => a.localeCompare(b));
  }, [filtered, groupByPack]);
  return (
    <div className="flex h-full gap-4">
      <div className="flex w-96 shrink-0 flex-col rounded-lg border border-gray-200 bg-white">
        <div className="space-y-2 border-b p-3">
          {header}
          <div className="flex items-center gap-2">
            <input className="input" placeholder={`Search ${noun}…`} value={search} onChange={(e) => setSearch(e.target.value)} aria-label={`Search ${noun}`} />
            {search && <button className="text-xs text-gray-500" onClick={() => setSearch("")}>Clear</button>}
          </div>
          <div className="text-xs text-gray-500" data-testid="list-count">
            {filtered.length} of {items?.length ?? 0}
            {pack && <> · pack <span className="font-mono">{pack}</span> <Link className="text-blue-600" to={basePath}>(all)</Link></>}
          </div>
        </div>
        <div className="flex-1 overflow-y-auto p-2">
          {loading && <Spinner />}
          <ErrorBox error={error} />
          {groups.map(([group, rows]) => (
            <div key={group} className="mb-2">
              {groupByPack && (
                <button className="flex w-full justify-between px-2 py-1 text-xs font-semibold uppercase text-gray-500"
                  onClick={() => setClosed((s) => { const n = new Set(s); if (n.has(group)) n.delete(group); else n.add(group); return n; })}>
                  <span>{closed.has(group) ? "▸" : "▾"} {group || "—"}</span><span>{rows.length}</span>
                </button>
              )}
              {!closed.has(group) && rows.sort((a, b) => a.ref.localeCompare(b.ref)).map((item) => (
                <Link key={item.ref} to={`${basePath}/${encodeURIComponent(item.ref)}`} data-ref={item.ref}
                  className={`mb-1 block rounded border p-2 hover:bg-gray-50 ${selected === item.ref ? "border-blue-400 bg-blue-50" : "border-transparent"}`}>
                  <div className="flex items-center justify-between gap-2">
                    <span className="truncate font-medium">{item.label || item.ref}</span>
                    <span className="flex shrink-0 gap-1">
                      {badges?.(item)}
                      {item.enabled !== undefined && item.enabled !== null && (
                        <span className={`rounded-full px-2 text-xs ${item.enabled ? "bg-green-100 text-green-800" : "bg-gray-200 text-gray-600"}`}>{item.enabled ? "Enabled" : "Disabled"}</span>
                      )}
                    </span>
                  </div>
                  <div className="truncate font-mono text-xs text-gray-500">{subtitle ? subtitle(item) : item.ref}</div>
                  {item.description && <div className="line-clamp-2 text-xs text-gray-600">{item.description}</div>}
                </Link>
              ))}
            </div>
          ))}
        </div>
      </div>
      <div className="min-w-0 flex-1 overflow-y-auto">
        {selected ? detail : <div className="flex h-64 items-center justify-center text-gray-400">No {noun.replace(/s$/, "")} selected</div>}
      </div>
    </div>
  );
}

export function QuickActions({ children }: { children: ReactNode }) {
  return (
    <aside className="w-56 shrink-0 space-y-2 rounded-lg border border-gray-200 bg-white p-3 text-sm">
      <h3 className="font-semibold text-gray-700">Quick Actions</h3>
      <div className="flex flex-col gap-1">{children}</div>
    </aside>
  );
}
