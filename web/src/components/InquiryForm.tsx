// Answer an inquiry with a form generated from its response_schema (docs/inquiries.md).
import { useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { get, post } from "@/api/http";
import type { Inquiry } from "@/api/types";
import { ParamSchemaForm } from "./ParamSchemaForm";
import { flatten, validateParams } from "./schema";
import { ErrorBox, Spinner } from "./ui";

export function InquiryForm({ id, onDone }: { id: number; onDone?: () => void }) {
  const client = useQueryClient();
  const inquiry = useQuery({ queryKey: ["inquiries", id], queryFn: () => get<Inquiry>(`/api/v1/inquiries/${id}`) });
  const [values, setValues] = useState<Record<string, unknown>>({});
  const [raw, setRaw] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const schema = flatten(inquiry.data?.response_schema);
  const freeForm = Object.keys(schema).length === 0;
  const respond = useMutation({
    mutationFn: () => {
      let response: unknown = values;
      if (freeForm) { try { response = raw.trim() ? JSON.parse(raw) : {}; } catch { response = raw; } }
      return post<Inquiry>(`/api/v1/inquiries/${id}/respond`, { response });
    },
    onSuccess: () => {
      void client.invalidateQueries({ queryKey: ["inquiries"] });
      onDone?.();
    },
  });
  if (inquiry.isLoading) return <Spinner />;
  if (!inquiry.data) return <ErrorBox error={inquiry.error} />;
  if (inquiry.data.status !== "pending") return <p className="text-sm text-gray-600">This inquiry is {inquiry.data.status}.</p>;
  return (
    <form className="space-y-3" data-testid="inquiry-form" onSubmit={(e) => {
      e.preventDefault();
      const problems = freeForm ? {} : validateParams(schema, values);
      setErrors(problems);
      if (!Object.keys(problems).length) respond.mutate();
    }}>
      <p className="font-medium">{inquiry.data.prompt}</p>
      {freeForm ? (
        <textarea className="input font-mono" rows={3} aria-label="Response" placeholder='Any JSON answer, e.g. {"approved": true}' value={raw} onChange={(e) => setRaw(e.target.value)} />
      ) : <ParamSchemaForm schema={schema} values={values} onChange={setValues} errors={errors} />}
      <ErrorBox error={respond.error} />
      <button className="btn btn-primary" type="submit" disabled={respond.isPending}>{respond.isPending ? "Submitting…" : "Submit Response"}</button>
    </form>
  );
}
