import { useEffect, type ReactNode } from "react";
import { Link } from "react-router-dom";
import { ApiError, errorText } from "@/api/errors";

export function Spinner({ label = "Loading…" }: { label?: string }) {
  return (
    <div className="flex items-center gap-2 p-4 text-sm text-gray-500" role="status">
      <span className="h-4 w-4 animate-spin rounded-full border-2 border-gray-300 border-t-blue-600" />
      {label}
    </div>
  );
}

/** 403 → amber "Access Denied" with the server's message; anything else → red box. */
export function ErrorBox({ error, prefix }: { error: unknown; prefix?: string }) {
  if (!error) return null;
  if (error instanceof ApiError && error.status === 403) {
    return (
      <div className="rounded border border-amber-300 bg-amber-50 p-3 text-sm text-amber-900" role="alert">
        <div className="font-semibold">Access Denied</div>
        <div>{error.message}</div>
      </div>
    );
  }
  return (
    <div className="rounded border border-red-300 bg-red-50 p-3 text-sm text-red-800" role="alert">
      {prefix}
      {errorText(error)}
    </div>
  );
}

const STATUS_COLOURS: Record<string, string> = {
  completed: "bg-green-100 text-green-800",
  succeeded: "bg-green-100 text-green-800",
  processed: "bg-green-100 text-green-800",
  responded: "bg-green-100 text-green-800",
  failed: "bg-red-100 text-red-800",
  timeout: "bg-orange-100 text-orange-800",
  running: "bg-blue-100 text-blue-800",
  created: "bg-blue-100 text-blue-800",
  pending: "bg-yellow-100 text-yellow-800",
  requested: "bg-yellow-100 text-yellow-800",
  scheduling: "bg-yellow-100 text-yellow-800",
  scheduled: "bg-yellow-100 text-yellow-800",
  canceling: "bg-gray-200 text-gray-700",
  cancelled: "bg-gray-200 text-gray-700",
  disabled: "bg-gray-200 text-gray-700",
  abandoned: "bg-purple-100 text-purple-800",
};

export function StatusPill({ status }: { status: string }) {
  return (
    <span
      data-status={status}
      className={`inline-block rounded-full px-2 py-0.5 text-xs font-medium ${STATUS_COLOURS[status] ?? "bg-gray-100 text-gray-700"}`}
    >
      {status}
    </span>
  );
}

export function Pill({ children, tone = "gray" }: { children: ReactNode; tone?: "gray" | "green" | "blue" | "purple" | "indigo" }) {
  const tones = {
    gray: "bg-gray-100 text-gray-700",
    green: "bg-green-100 text-green-800",
    blue: "bg-blue-100 text-blue-800",
    purple: "bg-purple-100 text-purple-800",
    indigo: "bg-indigo-100 text-indigo-800",
  };
  return <span className={`inline-block rounded-full px-2 py-0.5 text-xs font-medium ${tones[tone]}`}>{children}</span>;
}

export function LiveBadge({ connected }: { connected: boolean }) {
  if (!connected) return null;
  return (
    <span className="inline-flex items-center gap-1 rounded-full bg-green-100 px-2 py-0.5 text-xs font-medium text-green-800" data-testid="live-badge">
      <span className="h-2 w-2 animate-pulse rounded-full bg-green-500" />
      Live
    </span>
  );
}

export function Card({ title, children, actions }: { title?: ReactNode; children: ReactNode; actions?: ReactNode }) {
  return (
    <section className="rounded-lg border border-gray-200 bg-white p-4 shadow-sm">
      {(title || actions) && (
        <div className="mb-3 flex items-center justify-between gap-2">
          <h2 className="text-sm font-semibold text-gray-800">{title}</h2>
          {actions}
        </div>
      )}
      {children}
    </section>
  );
}

export function JsonBlock({ value, tone }: { value: unknown; tone?: "red" }) {
  return (
    <pre className={`max-h-96 overflow-auto whitespace-pre-wrap break-all rounded p-3 font-mono text-xs ${tone === "red" ? "bg-red-50 text-red-900" : "bg-gray-900 text-gray-100"}`}>
      {value === undefined ? "—" : JSON.stringify(value, null, 2)}
    </pre>
  );
}

export function Modal({ title, onClose, children, wide }: { title: string; onClose: () => void; children: ReactNode; wide?: boolean }) {
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => e.key === "Escape" && onClose();
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [onClose]);
  return (
    <div className="fixed inset-0 z-50 flex items-center justify-center bg-black/40 p-4" role="dialog" aria-label={title}>
      <div className={`max-h-[90vh] w-full overflow-auto rounded-lg bg-white p-5 shadow-xl ${wide ? "max-w-3xl" : "max-w-lg"}`}>
        <div className="mb-4 flex items-center justify-between">
          <h2 className="text-lg font-semibold">{title}</h2>
          <button onClick={onClose} aria-label="Close" className="text-gray-500 hover:text-gray-800">×</button>
        </div>
        {children}
      </div>
    </div>
  );
}

export function ConfirmModal({
  title, message, confirmLabel = "Delete", onConfirm, onClose, busy, error,
}: {
  title: string; message: ReactNode; confirmLabel?: string; onConfirm: () => void; onClose: () => void; busy?: boolean; error?: unknown;
}) {
  return (
    <Modal title={title} onClose={onClose}>
      <div className="space-y-4 text-sm">
        <div>{message}</div>
        <ErrorBox error={error} />
        <div className="flex justify-end gap-2">
          <button className="btn" onClick={onClose}>Cancel</button>
          <button className="btn btn-danger" disabled={busy} onClick={onConfirm}>{busy ? "Working…" : confirmLabel}</button>
        </div>
      </div>
    </Modal>
  );
}

export function Field({ label, children, hint }: { label: string; children: ReactNode; hint?: ReactNode }) {
  return (
    <label className="block text-sm">
      <span className="mb-1 block font-medium text-gray-700">{label}</span>
      {children}
      {hint && <span className="mt-1 block text-xs text-gray-500">{hint}</span>}
    </label>
  );
}

export function InfoRow({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div className="grid grid-cols-3 gap-2 py-1 text-sm">
      <dt className="text-gray-500">{label}</dt>
      <dd className="col-span-2 break-all">{children ?? "—"}</dd>
    </div>
  );
}

export function PageHeader({ title, children }: { title: ReactNode; children?: ReactNode }) {
  return (
    <div className="mb-4 flex flex-wrap items-center justify-between gap-2">
      <h1 className="text-2xl font-semibold text-gray-900">{title}</h1>
      <div className="flex flex-wrap items-center gap-2">{children}</div>
    </div>
  );
}

export function RefLink({ to, children }: { to: string; children: ReactNode }) {
  return <Link to={to} className="text-blue-600 hover:underline">{children}</Link>;
}

export function Pager({ page, totalPages, onPage, total, pageSize }: { page: number; totalPages: number; onPage: (p: number) => void; total: number; pageSize: number }) {
  const from = total === 0 ? 0 : (page - 1) * pageSize + 1;
  const to = Math.min(total, page * pageSize);
  return (
    <div className="flex items-center justify-between p-2 text-sm text-gray-600">
      <span>Showing {from} to {to} of {total}</span>
      <div className="flex gap-2">
        <button className="btn" disabled={page <= 1} onClick={() => onPage(page - 1)}>Previous</button>
        <button className="btn" disabled={page >= totalPages} onClick={() => onPage(page + 1)}>Next</button>
      </div>
    </div>
  );
}
