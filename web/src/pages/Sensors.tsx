import { useState } from "react";
import { Link, useParams } from "react-router-dom";
import { useQuery } from "@tanstack/react-query";
import { get, getAll } from "@/api/http";
import type { Sensor, SensorSummary } from "@/api/types";
import { ListDetail } from "@/components/ListDetail";
import { Card, ConfirmModal, ErrorBox, InfoRow, PageHeader, Spinner } from "@/components/ui";
import { usePermissions } from "@/auth/permissions";
import { useDelete } from "@/lib/useDelete";
import { dateTime } from "@/lib/format";

function SensorDetail({ sensorRef }: { sensorRef: string }) {
  const { can } = usePermissions();
  const sensor = useQuery({ queryKey: ["sensors", sensorRef], queryFn: () => get<Sensor>(`/api/v1/sensors/${sensorRef}`) });
  const [confirm, setConfirm] = useState(false);
  const remove = useDelete("sensors", "/sensors");
  if (sensor.isLoading) return <Spinner />;
  const s = sensor.data;
  if (!s) return <ErrorBox error={sensor.error} />;
  return (
    <div className="space-y-4">
      <PageHeader title={s.label}>
        {can("sensors", "delete", { pack: s.pack_ref }) && <button className="btn btn-danger" onClick={() => setConfirm(true)}>Delete</button>}
      </PageHeader>
      <Card title="Sensor">
        <dl>
          <InfoRow label="Enabled">{s.enabled ? "Yes" : "No"}</InfoRow>
          <InfoRow label="Ref"><span className="font-mono">{s.ref}</span></InfoRow>
          <InfoRow label="Pack"><Link className="text-blue-600" to={`/packs/${s.pack_ref}`}>{s.pack_ref}</Link></InfoRow>
          <InfoRow label="Entry point"><span className="font-mono">{s.entrypoint}</span></InfoRow>
          <InfoRow label="Description">{s.description}</InfoRow>
          <InfoRow label="Trigger type"><Link className="text-blue-600" to={`/triggers/${s.trigger_ref}`}>{s.trigger_ref}</Link></InfoRow>
          <InfoRow label="Created">{dateTime(s.created)}</InfoRow>
          <InfoRow label="Updated">{dateTime(s.updated)}</InfoRow>
        </dl>
      </Card>
      {confirm && <ConfirmModal title={`Delete sensor ${s.ref}?`} message={<>Delete sensor <strong>{s.ref}</strong>?</>} busy={remove.isPending} error={remove.error}
        onClose={() => setConfirm(false)} onConfirm={() => remove.mutate(`/api/v1/sensors/${s.ref}`)} />}
    </div>
  );
}

export default function Sensors() {
  const { ref } = useParams();
  const list = useQuery({ queryKey: ["sensors", "all"], queryFn: () => getAll<SensorSummary>("/api/v1/sensors") });
  return (
    <ListDetail noun="sensors" basePath="/sensors" items={list.data} loading={list.isLoading} error={list.error} selected={ref}
      header={<h1 className="text-lg font-semibold">Sensors</h1>} detail={ref && <SensorDetail key={ref} sensorRef={ref} />} />
  );
}
