import type { components } from "./schema";

type S = components["schemas"];
export type Pack = S["PackResponse"];
export type PackSummary = S["PackSummary"];
export type Action = S["ActionResponse"];
export type ActionSummary = S["ActionSummary"];
export type Rule = S["RuleResponse"];
export type RuleSummary = S["RuleSummary"];
export type Trigger = S["TriggerResponse"];
export type TriggerSummary = S["TriggerSummary"];
export type Sensor = S["SensorResponse"];
export type SensorSummary = S["SensorSummary"];
export type Execution = S["ExecutionResponse"];
export type ExecutionSummary = S["ExecutionSummary"];
export type ExecutionStatus = S["ExecutionStatus"];
export type ExecutionLogs = S["ExecutionLogs"];
export type WorkflowTaskInfo = S["WorkflowTask"];
export type EventSummary = S["EventSummary"];
export type Event = S["EventResponse"];
export type EnforcementSummary = S["EnforcementSummary"];
export type Enforcement = S["EnforcementResponse"];
export type KeySummary = S["KeySummary"];
export type Key = S["KeyResponse"];
export type Inquiry = S["InquiryResponse"];
export type InquirySummary = S["InquirySummary"];
export type Dashboard = S["Dashboard"];
export type Point = S["Point"];
export type HistoryRecord = S["HistoryRecord"];
export type Workflow = S["WorkflowResponse"];
export type UserInfo = S["UserInfo"];

export const EXECUTION_STATUSES: ExecutionStatus[] = [
  "requested",
  "scheduling",
  "scheduled",
  "running",
  "completed",
  "failed",
  "canceling",
  "cancelled",
  "timeout",
  "abandoned",
];
export const TERMINAL = new Set<string>(["completed", "failed", "cancelled", "timeout", "abandoned"]);

export type Grant = {
  resource: string;
  actions: string[];
  constraints?: { packs?: string[]; owner?: "self" };
};
export type IdentityPermissions = {
  identity_id: number;
  login: string;
  is_admin: boolean;
  permission_sets: string[];
  grants: Grant[];
};
