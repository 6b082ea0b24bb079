import { useEffect, useState, type FormEvent } from "react";
import { useNavigate, useParams } from "react-router-dom";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { get, post, put } from "@/api/http";
import type { Pack } from "@/api/types";
import { Card, ErrorBox, Field, PageHeader, Spinner } from "@/components/ui";
import { SchemaBuilder } from "@/components/SchemaBuilder";
import { ParamSchemaForm } from "@/components/ParamSchemaForm";
import { flatten, type FlatSchema } from "@/components/schema";

const list = (text: string) => text.split(",").map((s) => s.trim()).filter(Boolean);

export default function PackForm() {
  const { ref: editRef } = useParams();
  const navigate = useNavigate();
  const client = useQueryClient();
  const existing = useQuery({ queryKey: ["packs", editRef], enabled: !!editRef, queryFn: () => get<Pack>(`/api/v1/packs/${editRef}`) });
  const [label, setLabel] = useState("");
  const [ref, setRef] = useState("");
  const [description, setDescription] = useState("");
  const [version, setVersion] = useState("1.0.0");
  const [tags, setTags] = useState("");
  const [deps, setDeps] = useState("");
  const [standard, setStandard] = useState(false);
  const [schema, setSchema] = useState<FlatSchema>({});
  const [config, setConfig] = useState<Record<string, unknown>>({});
  const [meta, setMeta] = useState("{}");
  const [problem, setProblem] = useState("");
  useEffect(() => {
    const p = existing.data;
    if (!p) return;
    setLabel(p.label); setRef(p.ref); setDescription(p.description ?? ""); setVersion(p.version);
    setTags((p.tags ?? []).join(", ")); setDeps((p.dependencies ?? []).join(", "));
    setSchema(flatten(p.conf_schema)); setConfig((p.config ?? {}) as Record<string, unknown>); setMeta(JSON.stringify(p.meta ?? {}, null, 2));
  }, [existing.data]);
  const isStandard = !!existing.data?.is_standard;
  const save = useMutation({
    mutationFn: async () => {
      let metaValue: unknown;
      try { metaValue = JSON.parse(meta || "{}"); } catch { throw new Error("Metadata must be valid JSON"); }
      if (isStandard) return put<Pack>(`/api/v1/packs/${editRef}`, { config });
      const body = { label, description: description || null, version, tags: list(tags), dependencies: list(deps), conf_schema: schema, config, meta: metaValue };
      return editRef ? put<Pack>(`/api/v1/packs/${editRef}`, body) : post<Pack>("/api/v1/packs", { ...body, ref, is_standard: standard || undefined });
    },
    onSuccess: (pack) => {
      void client.invalidateQueries({ queryKey: ["packs"] });
      navigate(`/packs/${pack.ref}`);
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!editRef && !/^[a-z0-9_-]+$/.test(ref)) return setProblem("Reference must match ^[a-z0-9_-]+$");
    setProblem("");
    save.mutate();
  };
  if (editRef && existing.isLoading) return <Spinner />;
  return (
    <form onSubmit={submit} className="max-w-3xl space-y-4">
      <PageHeader title={editRef ? `Edit pack ${editRef}` : "Create Pack"} />
      <ErrorBox error={existing.error || save.error} />
      {problem && <ErrorBox error={new Error(problem)} />}
      <Card title="Pack">
        <fieldset disabled={isStandard} className="grid grid-cols-2 gap-3">
          <Field label="Label *"><input className="input" name="label" required value={label} onChange={(e) => setLabel(e.target.value)}
            onBlur={() => !ref && !editRef && setRef(label.toLowerCase().replace(/[^a-z0-9_-]+/g, "_").replace(/^_+|_+$/g, ""))} /></Field>
          <Field label="Reference *"><input className="input font-mono" name="ref" required value={ref} disabled={!!editRef} onChange={(e) => setRef(e.target.value)} /></Field>
          <Field label="Description"><input className="input" name="description" value={description} onChange={(e) => setDescription(e.target.value)} /></Field>
          <Field label="Version *"><input className="input" name="version" required value={version} onChange={(e) => setVersion(e.target.value)} /></Field>
          <Field label="Tags"><input className="input" name="tags" value={tags} onChange={(e) => setTags(e.target.value)} placeholder="a, b" /></Field>
          <Field label="Pack Dependencies"><input className="input" name="dependencies" value={deps} onChange={(e) => setDeps(e.target.value)} placeholder="core, other" /></Field>
          {!editRef && <label className="flex items-center gap-2 text-sm"><input type="checkbox" checked={standard} onChange={(e) => setStandard(e.target.checked)} />Mark as standard pack</label>}
        </fieldset>
      </Card>
      <Card title="Configuration Schema">
        <SchemaBuilder value={schema} onChange={setSchema} disabled={isStandard} />
      </Card>
      <Card title="Configuration Values">
        <ParamSchemaForm schema={schema} values={config} onChange={setConfig} />
      </Card>
      <Card title="Metadata JSON">
        <textarea className="input font-mono" rows={4} value={meta} disabled={isStandard} onChange={(e) => setMeta(e.target.value)} />
      </Card>
      <div className="flex gap-2">
        <button type="submit" className="btn btn-primary" disabled={save.isPending}>{save.isPending ? "Saving…" : editRef ? "Save" : "Create Pack"}</button>
        <button type="button" className="btn" onClick={() => navigate(-1)}>Cancel</button>
      </div>
    </form>
  );
}
