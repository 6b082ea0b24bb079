// Token storage and refresh (web-ui.md §2). The refresh call uses bare fetch: no interceptors, no loops.
const ACCESS = "access_token";
const REFRESH = "refresh_token";
export const REDIRECT_KEY = "redirect_after_login";

export const apiBase = (import.meta.env.VITE_API_BASE_URL as string | undefined) ?? "";

export function getAccess(): string | null {
  return localStorage.getItem(ACCESS);
}
export function getRefresh(): string | null {
  return localStorage.getItem(REFRESH);
}
export function storeTokens(access: string, refresh?: string | null): void {
  localStorage.setItem(ACCESS, access);
  if (refresh) localStorage.setItem(REFRESH, refresh);
}
export function clearTokens(): void {
  localStorage.removeItem(ACCESS);
  localStorage.removeItem(REFRESH);
}

/** Seconds until the JWT expires; null when it cannot be parsed. */
export function secondsLeft(token: string): number | null {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(part)) as { exp?: number };
    return typeof claims.exp === "number" ? claims.exp - Date.now() / 1000 : null;
  } catch {
    return null;
  }
}

let inflight: Promise<boolean> | null = null;

/** Exchange the refresh token; concurrent callers share one request. */
export function refreshTokens(): Promise<boolean> {
  if (inflight) return inflight;
  const refresh = getRefresh();
  if (!refresh) return Promise.resolve(false);
  inflight = (async () => {
    try {
      const response = await fetch(`${apiBase}/auth/refresh`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: refresh }),
      });
      if (!response.ok) return false;
      const body = (await response.json()) as { data: { access_token: string; refresh_token?: string } };
      storeTokens(body.data.access_token, body.data.refresh_token);
      return true;
    } catch {
      return false;
    } finally {
      inflight = null;
    }
  })();
  return inflight;
}

/** The session is over: remember where we were and hard-navigate to the login page. */
export function sessionExpired(): void {
  clearTokens();
  const here = window.location.pathname + window.location.search;
  if (!window.location.pathname.startsWith("/login")) sessionStorage.setItem(REDIRECT_KEY, here);
  window.location.assign("/login");
}
