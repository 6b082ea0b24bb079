// Execute / Re-Run an action with a schema-driven form and environment variables (web-ui.md §5.3).
import { useState } from "react";
import { useNavigate } from "react-router-dom";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { post } from "@/api/http";
import type { Action, Execution } from "@/api/types";
import { ParamSchemaForm } from "./ParamSchemaForm";
import { flatten, validateParams } from "./schema";
import { ErrorBox, Modal } from "./ui";

const MASK = "********";

export function ExecuteModal({ action, initial, rerunOf, onClose }: { action: Action; initial?: Record<string, unknown>; rerunOf?: number; onClose: () => void }) {
  const schema = flatten(action.param_schema);
  // The server masks secret values in `config`; they are never pre-filled (web-ui.md §5.8).
  const prefill = Object.fromEntries(Object.entries(initial ?? {}).filter(([, v]) => v !== MASK));
  const masked = Object.keys(initial ?? {}).filter((k) => initial?.[k] === MASK);
  const navigate = useNavigate();
  const client = useQueryClient();
  const [values, setValues] = useState<Record<string, unknown>>(prefill);
  const [env, setEnv] = useState<{ key: string; value: string }[]>([{ key: "", value: "" }]);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const extra = Object.keys(initial ?? {}).filter((k) => !(k in schema));
  const run = useMutation({
    mutationFn: () => {
      // Unchanged re-run: the server's rerun keeps the original secret values.
      const untouched = JSON.stringify(values) === JSON.stringify(prefill) && env.every((e) => !e.key.trim());
      if (rerunOf !== undefined && untouched) return post<Execution>(`/api/v1/executions/${rerunOf}/rerun`);
      const env_vars = Object.fromEntries(env.filter((e) => e.key.trim()).map((e) => [e.key.trim(), e.value]));
      const parameters = Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined && v !== ""));
      return post<Execution>("/api/v1/executions/execute", { action_ref: action.ref, parameters, env_vars });
    },
    onSuccess: (execution) => {
      void client.invalidateQueries({ queryKey: ["executions", "list"] });
      navigate(`/executions/${execution.id}`);
    },
  });
  return (
    <Modal title={`${initial ? "Re-Run" : "Execute"} ${action.ref}`} onClose={onClose} wide>
      <form className="space-y-4" onSubmit={(e) => {
        e.preventDefault();
        const problems = validateParams(schema, values);
        setErrors(problems);
        if (Object.keys(problems).length === 0) run.mutate();
      }}>
        {masked.length > 0 && <p className="rounded bg-amber-50 p-2 text-xs text-amber-800">Secret values are not shown: {masked.join(", ")}. Leave every field unchanged to re-run with the original values, or enter them again.</p>}
        {extra.length > 0 && <p className="rounded bg-blue-50 p-2 text-xs text-blue-800">Kept parameters no longer in the schema: {extra.join(", ")}</p>}
        <ParamSchemaForm schema={schema} values={values} onChange={setValues} errors={errors} />
        <div>
          <h3 className="mb-1 text-sm font-semibold">Environment variables</h3>
          {env.map((row, i) => (
            <div key={i} className="mb-1 flex gap-2">
              <input className="input font-mono" placeholder="KEY" aria-label="Environment variable name" value={row.key} onChange={(e) => setEnv(env.map((r, j) => (j === i ? { ...r, key: e.target.value } : r)))} />
              <input className="input font-mono" placeholder="value" aria-label="Environment variable value" value={row.value} onChange={(e) => setEnv(env.map((r, j) => (j === i ? { ...r, value: e.target.value } : r)))} />
              <button type="button" className="btn" disabled={env.length === 1} onClick={() => setEnv(env.filter((_, j) => j !== i))}>−</button>
            </div>
          ))}
          <button type="button" className="btn text-xs" onClick={() => setEnv([...env, { key: "", value: "" }])}>Add variable</button>
        </div>
        <ErrorBox error={run.error} />
        <div className="flex justify-end gap-2">
          <button type="button" className="btn" onClick={onClose}>Cancel</button>
          <button type="submit" className="btn btn-primary" disabled={run.isPending}>{run.isPending ? "Starting…" : "Execute"}</button>
        </div>
      </form>
    </Modal>
  );
}
