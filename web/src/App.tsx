import { lazy, Suspense, type ComponentType, type ReactNode } from "react";
import { matchPath, Navigate, Route, Routes, useLocation } from "react-router-dom";
import { useAuth } from "@/auth/AuthContext";
import { Layout } from "@/components/Layout";
import { Spinner } from "@/components/ui";
import Login from "@/pages/Login";

type Loader<P> = () => Promise<{ default: ComponentType<P> }>;
const preloads: { patterns: string[]; preload: () => void }[] = [];

/**
 * A lazily loaded page. The chunk of the page the app starts on is fetched at start-up, in
 * parallel with the session check, and the others once the browser is idle. A page whose chunk is
 * in renders without suspending: a suspended route costs a fallback commit plus React's reveal
 * throttle (~300 ms) before the page's own requests even start.
 */
function page<P extends object>(loader: Loader<P>, ...patterns: string[]): ComponentType<P> {
  let loaded: ComponentType<P> | null = null;
  let promise: ReturnType<Loader<P>> | null = null;
  const load = () => {
    promise ??= loader().then((module) => {
      loaded = module.default;
      return module;
    });
    return promise;
  };
  preloads.push({ patterns, preload: () => void load() });
  const Lazy = lazy(load);
  return function Page(props: P) {
    const Loaded = loaded;
    return Loaded ? <Loaded {...props} /> : <Lazy {...props} />;
  };
}

const Dashboard = page(() => import("@/pages/Dashboard"), "/");
const Packs = page(() => import("@/pages/packs/Packs"), "/packs/:ref?");
const PackForm = page(() => import("@/pages/packs/PackForm"), "/packs/new", "/packs/:ref/edit");
const PackRegister = page(() => import("@/pages/packs/PackRegister"), "/packs/register", "/packs/install");
const Actions = page(() => import("@/pages/actions/Actions"), "/actions/:ref?");
const Rules = page(() => import("@/pages/rules/Rules"), "/rules/:ref?");
const RuleForm = page(() => import("@/pages/rules/RuleForm"), "/rules/new", "/rules/:ref/edit");
const Triggers = page(() => import("@/pages/triggers/Triggers"), "/triggers/:ref?");
const TriggerForm = page(() => import("@/pages/triggers/TriggerForm"), "/triggers/create", "/triggers/:ref/edit");
const Sensors = page(() => import("@/pages/Sensors"), "/sensors/:ref?");
const Executions = page(() => import("@/pages/executions/Executions"), "/executions");
const ExecutionDetail = page(() => import("@/pages/executions/ExecutionDetail"), "/executions/:id");
const Events = page(() => import("@/pages/events/Events"), "/events");
const EventDetail = page(() => import("@/pages/events/EventDetail"), "/events/:id");
const Enforcements = page(() => import("@/pages/events/Enforcements"), "/enforcements");
const EnforcementDetail = page(() => import("@/pages/events/EnforcementDetail"), "/enforcements/:id");
const Keys = page(() => import("@/pages/Keys"), "/keys");
const Inquiries = page(() => import("@/pages/Inquiries"), "/inquiries");
const WorkflowBuilder = page(() => import("@/workflow/Builder"), "/actions/workflows/new", "/actions/workflows/:ref/edit");

/** Fetch the current page's chunk now and every other page's once the first page is up. */
export function preloadPages(pathname: string): void {
  for (const entry of preloads) {
    if (entry.patterns.some((pattern) => matchPath(pattern, pathname))) entry.preload();
  }
  window.setTimeout(() => preloads.forEach((entry) => entry.preload()), 3000);
}

function RequireAuth({ children }: { children: ReactNode }) {
  const { user, loading } = useAuth();
  const location = useLocation();
  // With a stored token the page renders (and starts its requests) while /auth/me is checked;
  // a token that turns out to be bad sends the user to the login page as below.
  if (loading) return <>{children}</>;
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
