import { lazy, Suspense, type ReactNode } from "react";
import { Navigate, Route, Routes, useLocation } from "react-router-dom";
import { useAuth } from "@/auth/AuthContext";
import { Layout } from "@/components/Layout";
import { Spinner } from "@/components/ui";
import Login from "@/pages/Login";

const Dashboard = lazy(() => import("@/pages/Dashboard"));
const Packs = lazy(() => import("@/pages/packs/Packs"));
const PackForm = lazy(() => import("@/pages/packs/PackForm"));
const PackRegister = lazy(() => import("@/pages/packs/PackRegister"));
const Actions = lazy(() => import("@/pages/actions/Actions"));
const Rules = lazy(() => import("@/pages/rules/Rules"));
const RuleForm = lazy(() => import("@/pages/rules/RuleForm"));
const Triggers = lazy(() => import("@/pages/triggers/Triggers"));
const TriggerForm = lazy(() => import("@/pages/triggers/TriggerForm"));
const Sensors = lazy(() => import("@/pages/Sensors"));
const Executions = lazy(() => import("@/pages/executions/Executions"));
const ExecutionDetail = lazy(() => import("@/pages/executions/ExecutionDetail"));
const Events = lazy(() => import("@/pages/events/Events"));
const EventDetail = lazy(() => import("@/pages/events/EventDetail"));
const Enforcements = lazy(() => import("@/pages/events/Enforcements"));
const EnforcementDetail = lazy(() => import("@/pages/events/EnforcementDetail"));
const Keys = lazy(() => import("@/pages/Keys"));
const Inquiries = lazy(() => import("@/pages/Inquiries"));
const WorkflowBuilder = lazy(() => import("@/workflow/Builder"));

function RequireAuth({ children }: { children: ReactNode }) {
  const { user, loading } = useAuth();
  const location = useLocation();
  if (loading) return <Spinner />;
  if (!user) return <Navigate to="/login" replace state={{ from: location.pathname + location.search }} />;
  return <>{children}</>;
}

export default function App() {
  return (
    <Suspense fallback={<Spinner />}>
      <Routes>
        <Route path="/login" element={<Login />} />
        <Route element={<RequireAuth><Layout /></RequireAuth>}>
          <Route path="/" element={<Dashboard />} />
          <Route path="/packs/new" element={<PackForm />} />
          <Route path="/packs/register" element={<PackRegister mode="register" />} />
          <Route path="/packs/install" element={<PackRegister mode="install" />} />
          <Route path="/packs/:ref/edit" element={<PackForm />} />
          <Route path="/packs/:ref?" element={<Packs />} />
          <Route path="/actions/workflows/new" element={<WorkflowBuilder />} />
          <Route path="/actions/workflows/:ref/edit" element={<WorkflowBuilder />} />
          <Route path="/actions/:ref?" element={<Actions />} />
          <Route path="/rules/new" element={<RuleForm />} />
          <Route path="/rules/:ref/edit" element={<RuleForm />} />
          <Route path="/rules/:ref?" element={<Rules />} />
          <Route path="/triggers/create" element={<TriggerForm />} />
          <Route path="/triggers/:ref/edit" element={<TriggerForm />} />
          <Route path="/triggers/:ref?" element={<Triggers />} />
          <Route path="/sensors/:ref?" element={<Sensors />} />
          <Route path="/executions" element={<Executions />} />
          <Route path="/executions/:id" element={<ExecutionDetail />} />
          <Route path="/events" element={<Events />} />
          <Route path="/events/:id" element={<EventDetail />} />
          <Route path="/enforcements" element={<Enforcements />} />
          <Route path="/enforcements/:id" element={<EnforcementDetail />} />
          <Route path="/keys" element={<Keys />} />
          <Route path="/inquiries" element={<Inquiries />} />
          <Route path="*" element={<Navigate to="/" replace />} />
        </Route>
      </Routes>
    </Suspense>
  );
}
