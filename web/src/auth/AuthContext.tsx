// Session state (web-ui.md §2): bootstrap from /auth/me, login, logout, proactive refresh.
import { createContext, useCallback, useContext, useEffect, useState, type ReactNode } from "react";
import { get } from "@/api/http";
import { ApiError, messageOf } from "@/api/errors";
import type { UserInfo } from "@/api/types";
import { apiBase, clearTokens, getAccess, refreshTokens, secondsLeft, storeTokens } from "@/api/tokens";

type AuthState = {
  user: UserInfo | null;
  loading: boolean;
  login: (login: string, password: string) => Promise<void>;
  logout: () => void;
};

const AuthContext = createContext<AuthState | null>(null);

export function AuthProvider({ children }: { children: ReactNode }) {
  const [user, setUser] = useState<UserInfo | null>(null);
  const [loading, setLoading] = useState<boolean>(() => getAccess() !== null);

  useEffect(() => {
    if (!getAccess()) return;
    get<UserInfo>("/auth/me")
      .then(setUser)
      .catch(() => clearTokens())
      .finally(() => setLoading(false));
  }, []);

  // Refresh when the access token has five minutes or less left (checked at start and every 60 s).
  useEffect(() => {
    if (!user) return;
    const check = () => {
      const token = getAccess();
      if (!token) return;
      const left = secondsLeft(token);
      if (left === null || left <= 300) void refreshTokens();
    };
    check();
    const timer = window.setInterval(check, 60_000);
    return () => window.clearInterval(timer);
  }, [user]);

  const login = useCallback(async (loginName: string, password: string) => {
    const response = await fetch(`${apiBase}/auth/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ login: loginName, password }),
    });
    const text = await response.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      /* plain text error */
    }
    if (!response.ok) throw new ApiError(response.status, messageOf(body, "Login failed"));
    const data = (body as { data: { access_token: string; refresh_token: string; user?: UserInfo } }).data;
    storeTokens(data.access_token, data.refresh_token);
    setUser(data.user ?? (await get<UserInfo>("/auth/me")));
  }, []);

  const logout = useCallback(() => {
    clearTokens();
    setUser(null);
    window.location.assign("/login");
  }, []);

  return <AuthContext.Provider value={{ user, loading, login, logout }}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthState {
  const state = useContext(AuthContext);
  if (!state) throw new Error("useAuth outside AuthProvider");
  return state;
}
