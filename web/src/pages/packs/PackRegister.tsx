import { useState, type FormEvent } from "react";
import { useNavigate } from "react-router-dom";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { post } from "@/api/http";
import type { Pack } from "@/api/types";
import { Card, ErrorBox, Field, PageHeader } from "@/components/ui";
import { InstallProgress, useInstallStream } from "./InstallProgress";

type Result = { pack?: Pack; tests_skipped?: boolean; test_result?: { status?: string; passed?: number; totalTests?: number } | null } & Partial<Pack>;

export default function PackRegister({ mode }: { mode: "register" | "install" }) {
  const navigate = useNavigate();
  const client = useQueryClient();
  const [path, setPath] = useState("");
  const [kind, setKind] = useState("git");
  const [refSpec, setRefSpec] = useState("");
  const [skipTests, setSkipTests] = useState(false);
  const [skipDeps, setSkipDeps] = useState(false);
  const [force, setForce] = useState(false);
  const [done, setDone] = useState("");
  const progress = useInstallStream();
  const run = useMutation({
    mutationFn: () => mode === "register"
      ? post<Result>("/api/v1/packs/register", { path, force, skip_tests: skipTests })
      : progress.start<Result>("/api/v1/packs/install", { source: path, ref_spec: kind === "git" && refSpec ? refSpec : undefined, skip_tests: skipTests, skip_deps: skipDeps }),
    onSuccess: (data) => {
      // The register route answers with the bare pack, install with {pack, test_result, tests_skipped}.
      const pack = (data.pack ?? data) as Pack;
      const tests = data.tests_skipped || skipTests || !data.test_result ? "Tests were skipped." : `Tests ${data.test_result.status}: ${data.test_result.passed}/${data.test_result.totalTests} passed.`;
      setDone(`Pack '${pack.label}' ${mode === "register" ? "registered" : `v${pack.version} installed`} successfully! ${tests}`);
      void client.invalidateQueries({ queryKey: ["packs"] });
      window.setTimeout(() => navigate(`/packs/${pack.ref}`), 2000);
    },
  });
  const submit = (e: FormEvent) => { e.preventDefault(); run.mutate(); };
  return (
    <form onSubmit={submit} className="max-w-2xl space-y-4">
      <PageHeader title={mode === "register" ? "Register a Pack" : "Install a Pack"} />
      {done && <div className="rounded border border-green-300 bg-green-50 p-3 text-sm text-green-800" role="status">{done}</div>}
      <ErrorBox error={run.error} />
      {mode === "install" && <InstallProgress lines={progress.lines} running={run.isPending} />}
      <Card>
        <div className="space-y-3">
          {mode === "install" && (
            <Field label="Source type">
              <select className="input" value={kind} onChange={(e) => setKind(e.target.value)}>
                <option value="git">Git Repository</option>
                <option value="archive">Archive URL</option>
                <option value="registry" disabled>Registry (Coming Soon)</option>
              </select>
            </Field>
          )}
          <Field label={mode === "register" ? "Server path *" : "Source *"} hint={mode === "register" ? "A directory on the server with pack.yaml, actions/, sensors/, rules/, workflows/." : undefined}>
            <input className="input font-mono" name="path" required value={path} onChange={(e) => setPath(e.target.value)} />
          </Field>
          {mode === "install" && kind === "git" && (
            <Field label="Git Reference"><input className="input font-mono" name="ref_spec" value={refSpec} onChange={(e) => setRefSpec(e.target.value)} placeholder="main, v1.2.0, a commit" /></Field>
          )}
          <label className="flex items-center gap-2 text-sm"><input type="checkbox" name="skip_tests" checked={skipTests} onChange={(e) => setSkipTests(e.target.checked)} />Skip Tests</label>
          {mode === "register" && <label className="flex items-center gap-2 text-sm"><input type="checkbox" checked={force} onChange={(e) => setForce(e.target.checked)} />Force (replace an existing pack, ignore test failures)</label>}
          {mode === "install" && <label className="flex items-center gap-2 text-sm"><input type="checkbox" checked={skipDeps} onChange={(e) => setSkipDeps(e.target.checked)} />Skip Dependency Validation</label>}
          {(skipTests || skipDeps) && <p className="text-xs text-amber-700">Skipping checks may leave a pack that does not work.</p>}
        </div>
      </Card>
      <button type="submit" className="btn btn-primary" disabled={run.isPending}>{run.isPending ? "Working…" : mode === "register" ? "Register" : "Install"}</button>
    </form>
  );
}
