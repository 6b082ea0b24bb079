// Upgrade an installed pack from where it came from (or another source), with live progress
// (docs/web-ui.md "Packs"). Configuration values are kept by the server.
import { useState } from "react";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import type { Pack } from "@/api/types";
import { ErrorBox, Field, Modal } from "@/components/ui";
import { InstallProgress, useInstallStream } from "./InstallProgress";

type Result = { pack: Pack; previous_version?: string | null; tests_skipped?: boolean };

export function UpgradeModal({ pack, onClose }: { pack: Pack; onClose: () => void }) {
  const client = useQueryClient();
  const [source, setSource] = useState("");
  const [refSpec, setRefSpec] = useState("");
  const [skipTests, setSkipTests] = useState(false);
  const [allowDowngrade, setAllowDowngrade] = useState(false);
  const progress = useInstallStream();
  const run = useMutation({
    mutationFn: () => progress.start<Result>(`/api/v1/packs/${pack.ref}/upgrade`, {
      source: source || undefined, ref_spec: refSpec || undefined, skip_tests: skipTests, allow_downgrade: allowDowngrade,
    }),
    onSuccess: () => { void client.invalidateQueries({ queryKey: ["packs"] }); void client.invalidateQueries({ queryKey: ["actions"] }); },
  });
  const result = run.data;
  return (
    <Modal title={`Upgrade pack ${pack.ref}?`} onClose={() => !run.isPending && onClose()} wide>
      <div className="space-y-3 text-sm">
        <p>Installed version: <strong>{pack.version}</strong>. The new version is fetched, its environments built and its tests run before it replaces this one; configuration values are kept. On failure nothing changes.</p>
        <Field label="Source" hint="Leave empty to upgrade from where the pack was installed.">
          <input className="input font-mono" name="upgrade_source" value={source} onChange={(e) => setSource(e.target.value)} disabled={run.isPending} />
        </Field>
        <Field label="Git Reference"><input className="input font-mono" name="upgrade_ref_spec" value={refSpec} onChange={(e) => setRefSpec(e.target.value)} placeholder="main, v1.2.0, a commit" disabled={run.isPending} /></Field>
        <label className="flex items-center gap-2"><input type="checkbox" name="upgrade_skip_tests" checked={skipTests} onChange={(e) => setSkipTests(e.target.checked)} />Skip Tests</label>
        <label className="flex items-center gap-2"><input type="checkbox" checked={allowDowngrade} onChange={(e) => setAllowDowngrade(e.target.checked)} />Allow downgrade</label>
        <InstallProgress lines={progress.lines} running={run.isPending} />
        <ErrorBox error={run.error} />
        {result && (
          <div className="rounded border border-green-300 bg-green-50 p-3 text-green-800" role="status">
            Pack &apos;{result.pack.label}&apos; upgraded {result.previous_version ? `from v${result.previous_version} ` : ""}to v{result.pack.version} successfully!
          </div>
        )}
        <div className="flex justify-end gap-2">
          <button className="btn" onClick={onClose} disabled={run.isPending}>{result ? "Close" : "Cancel"}</button>
          {!result && <button className="btn btn-primary" disabled={run.isPending} onClick={() => run.mutate()}>{run.isPending ? "Upgrading…" : "Upgrade"}</button>}
        </div>
      </div>
    </Modal>
  );
}
