import { lazy, Suspense, type ComponentType, type ReactNode } from "react";
import { Navigate, Route, Routes, useLocation } from "react-router-dom";
import { useAuth } from "@/auth/AuthContext";
import { Layout } from "@/components/Layout";
import { Spinner } from "@/components/ui";
import Login from "@/pages/Login";

/**
 * A lazily loaded page whose chunk starts downloading at start-up, in parallel with the session
 * check. Once the chunk is in, the page renders without suspending: a suspended route costs a
 * fallback commit plus React's reveal throttle (~300 ms) before the page's own requests start.
 */
function page<P extends object>(loader: () => Promise<{ default: ComponentType<P> }>): ComponentType<P> {
  let loaded: ComponentType<P> | null = null;
  const promise = loader().then((module) => {
    loaded = module.default;
    return module;
  });
  const Lazy = lazy(() => promise);
  return function Page(props: P) {
    const Loaded = loaded;
    return Loaded ? <Loaded {...props} /> : <Lazy {...props} />;
  };
}

const Dashboard = page(() => import("@/pages/Dashboard"));
const Packs = page(() => import("@/pages/packs/Packs"));
const PackForm = page(() => import("@/pages/packs/PackForm"));
const PackRegister = page(() => import("@/pages/packs/PackRegister"));
const Actions = page(() => import("@/pages/actions/Actions"));
const Rules = page(() => import("@/pages/rules/Rules"));
const RuleForm = page(() => import("@/pages/rules/RuleForm"));
const Triggers = page(() => import("@/pages/triggers/Triggers"));
const TriggerForm = page(() => import("@/pages/triggers/TriggerForm"));
const Sensors = page(() => import("@/pages/Sensors"));
const Executions = page(() => import("@/pages/executions/Executions"));
const ExecutionDetail = page(() => import("@/pages/executions/ExecutionDetail"));
const Events = page(() => import("@/pages/events/Events"));
const EventDetail = page(() => import("@/pages/events/EventDetail"));
const Enforcements = page(() => import("@/pages/events/Enforcements"));
const EnforcementDetail = page(() => import("@/pages/events/EnforcementDetail"));
const Keys = page(() => import("@/pages/Keys"));
const Inquiries = page(() => import("@/pages/Inquiries"));
const WorkflowBuilder = page(() => import("@/workflow/Builder"));

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
