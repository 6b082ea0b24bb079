// Apply an execution notification to the cached detail and lists (web-ui.md §3.2).
import type { QueryClient } from "@tanstack/react-query";
import type { Paged } from "@/api/http";
import type { Notification } from "./socket";

export type ExecutionListParams = {
  topLevelOnly?: boolean;
  parent?: number;
  status?: string;
  actionRef?: string;
  packName?: string;
  executor?: number;
  ruleRef?: string;
  triggerRef?: string;
  enforcement?: number;
  page?: number;
};

type Row = Record<string, unknown>;

function matches(row: Row, params: ExecutionListParams, status = row.status): boolean {
  if (params.topLevelOnly && row.parent != null) return false;
  if (params.parent !== undefined && row.parent !== params.parent) return false;
  if (params.status && status !== params.status) return false;
  if (params.actionRef && !String(row.action_ref ?? "").includes(params.actionRef)) return false;
  if (params.packName && !String(row.action_ref ?? "").startsWith(`${params.packName}.`)) return false;
  if (params.executor !== undefined && row.executor !== params.executor) return false;
  if (params.enforcement !== undefined && row.enforcement !== params.enforcement) return false;
  return true;
}

export function applyExecutionNotification(client: QueryClient, notification: Notification): void {
  const id = notification.entity_id ?? (notification.payload.id as number | undefined);
  if (id == null) return;
  const payload: Row = { ...notification.payload };
  const oldStatus = payload.old_status;
  for (const key of ["entity_type", "entity_id", "old_status", "action_id"]) delete payload[key];
  payload.id = id;
  const detail = client.getQueryData<Row>(["executions", id]);
  const merged: Row = detail ? { ...detail, ...payload } : payload;
  if (detail) client.setQueryData(["executions", id], merged);

  for (const [key, list] of client.getQueriesData<Paged<Row>>({ queryKey: ["executions", "list"] })) {
    if (!list) continue;
    const params = (key[2] ?? {}) as ExecutionListParams;
    const index = list.data.findIndex((row) => row.id === id);
    const total = list.pagination.total_items;
    let data = list.data;
    let totalItems = total;
    if (index >= 0) {
      const row = { ...data[index], ...payload };
      if (matches(row, params)) data = data.map((r, i) => (i === index ? row : r));
      else {
        data = data.filter((_, i) => i !== index);
        totalItems -= 1;
      }
    } else {
      if (params.ruleRef || params.triggerRef) continue; // the payload cannot answer these filters
      if ((params.page ?? 1) > 1 && oldStatus === undefined) continue;
      const nowMatches = matches(merged, params);
      if (oldStatus !== undefined) {
        const before = matches(merged, params, oldStatus);
        if (before && !nowMatches) totalItems -= 1;
        else if (!before && nowMatches) {
          data = [merged, ...data];
          totalItems += 1;
        }
      } else if (nowMatches) {
        data = [merged, ...data];
        totalItems += 1;
      }
    }
    if (data === list.data && totalItems === total) continue;
    client.setQueryData(key, {
      ...list,
      data: data.slice(0, 50),
      pagination: { ...list.pagination, total_items: Math.max(0, totalItems) },
    });
  }
}
