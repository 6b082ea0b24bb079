import { useMutation, useQueryClient } from "@tanstack/react-query";
import { post } from "@/api/http";
import { ErrorBox } from "./ui";

/** Enable switch for rules, triggers and sensors: POST …/:ref/enable|disable. */
export function EnableSwitch({ kind, entityRef, enabled, allowed }: { kind: "rules" | "triggers" | "sensors"; entityRef: string; enabled: boolean; allowed: boolean }) {
  const client = useQueryClient();
  const toggle = useMutation({
    mutationFn: () => post(`/api/v1/${kind}/${entityRef}/${enabled ? "disable" : "enable"}`),
    onSuccess: () => client.invalidateQueries({ queryKey: [kind] }),
  });
  return (
    <div className="flex items-center gap-2">
      <button role="switch" aria-checked={enabled} aria-label="Enabled" disabled={!allowed || toggle.isPending} onClick={() => toggle.mutate()}
        className={`relative h-6 w-11 rounded-full transition ${enabled ? "bg-green-500" : "bg-gray-300"} disabled:opacity-50`}>
        <span className={`absolute top-0.5 h-5 w-5 rounded-full bg-white shadow transition ${enabled ? "left-5" : "left-0.5"}`} />
      </button>
      <span className="text-sm">{toggle.isPending ? "Updating..." : enabled ? "Enabled" : "Disabled"}</span>
      <ErrorBox error={toggle.error} />
    </div>
  );
}
