import { useEffect, useState } from "react";
import { NavLink, Outlet, useLocation } from "react-router-dom";
import {
  Activity, Boxes, ClipboardList, Gauge, KeyRound, ListChecks, LogOut, MessageCircleQuestion, Radio, Radar, Scale, Zap,
} from "lucide-react";
import { useAuth } from "@/auth/AuthContext";
import { notificationSocket } from "@/realtime/socket";

const GROUPS = [
  [{ to: "/", label: "Dashboard", icon: Gauge }],
  [
    { to: "/actions", label: "Actions", icon: Zap },
    { to: "/rules", label: "Rules", icon: Scale },
    { to: "/triggers", label: "Triggers", icon: Radio },
    { to: "/sensors", label: "Sensors", icon: Radar },
  ],
  [
    { to: "/executions", label: "Execution History", icon: Activity },
    { to: "/enforcements", label: "Enforcement History", icon: ListChecks },
    { to: "/events", label: "Event History", icon: ClipboardList },
    { to: "/inquiries", label: "Inquiries", icon: MessageCircleQuestion },
  ],
  [
    { to: "/keys", label: "Keys & Secrets", icon: KeyRound },
    { to: "/packs", label: "Pack Management", icon: Boxes },
  ],
];

export function Layout() {
  const { user, logout } = useAuth();
  const location = useLocation();
  const [collapsed, setCollapsed] = useState(() => localStorage.getItem("sidebar-collapsed") === "true");
  useEffect(() => localStorage.setItem("sidebar-collapsed", String(collapsed)), [collapsed]);
  useEffect(() => {
    notificationSocket.start();
    return () => notificationSocket.stop();
  }, []);
  const active = (to: string) => (to === "/" ? location.pathname === "/" : location.pathname.startsWith(to));
  return (
    <div className="flex h-full">
      <aside className={`${collapsed ? "w-20" : "w-64"} flex shrink-0 flex-col bg-gray-900 text-gray-200 transition-all`}>
        <div className="flex items-center justify-between p-4">
          <span className="text-xl font-bold text-white">{collapsed ? "A" : "Attune"}</span>
          <button aria-label="Toggle sidebar" className="text-gray-400 hover:text-white" onClick={() => setCollapsed(!collapsed)}>
            {collapsed ? "»" : "«"}
          </button>
        </div>
        <nav className="flex-1 space-y-4 overflow-y-auto px-2">
          {GROUPS.map((group, i) => (
            <div key={i} className="space-y-1 border-t border-gray-800 pt-2 first:border-0">
              {group.map(({ to, label, icon: Icon }) => (
                <NavLink key={to} to={to} title={collapsed ? label : undefined}
                  className={`flex items-center gap-3 rounded px-3 py-2 text-sm ${active(to) ? "bg-gray-700 text-white" : "hover:bg-gray-800"}`}>
                  <Icon size={18} />
                  {!collapsed && <span>{label}</span>}
                </NavLink>
              ))}
            </div>
          ))}
        </nav>
        <div className="border-t border-gray-800 p-3 text-sm">
          {!collapsed && <div className="mb-2 truncate text-gray-400" data-testid="current-user">{user?.login}</div>}
          <button className="flex items-center gap-2 text-gray-300 hover:text-white" onClick={logout}>
            <LogOut size={16} />{!collapsed && "Logout"}
          </button>
        </div>
      </aside>
      <main className="min-w-0 flex-1 overflow-y-auto p-6">
        <Outlet />
      </main>
    </div>
  );
}
