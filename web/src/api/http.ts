// One fetch wrapper for every call: bearer token, one silent refresh on 401, errors as ApiError.
import createClient, { type Middleware } from "openapi-fetch";
import type { paths } from "./schema";
import { ApiError, messageOf } from "./errors";
import { apiBase, getAccess, refreshTokens, sessionExpired } from "./tokens";

async function send(input: string, init: RequestInit, retried = false): Promise<Response> {
  const headers = new Headers(init.headers);
  const token = getAccess();
  if (token) headers.set("Authorization", `Bearer ${token}`);
  const response = await fetch(input, { ...init, headers });
  if (response.status === 401 && !retried && !input.includes("/auth/login")) {
    if (await refreshTokens()) return send(input, init, true);
    sessionExpired();
  }
  return response;
}

async function parse(response: Response): Promise<unknown> {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { "Content-Type": "application/json" };
  }
  const response = await send(`${apiBase}${path}`, init);
  const parsed = await parse(response);
  if (!response.ok) {
    const code = parsed && typeof parsed === "object" ? (parsed as { code?: string }).code : undefined;
    throw new ApiError(response.status, messageOf(parsed, `${response.status} ${response.statusText}`), code);
  }
  return parsed as T;
}

export type Paged<T> = {
  data: T[];
  pagination: { page: number; page_size: number; total_items: number; total_pages: number };
};

export const get = <T>(path: string) => request<{ data: T }>("GET", path).then((r) => r.data);
export const getPage = <T>(path: string) => request<Paged<T>>("GET", path);
export const post = <T>(path: string, body?: unknown) =>
  request<{ data: T; message?: string }>("POST", path, body ?? {}).then((r) => r?.data);
export const put = <T>(path: string, body: unknown) =>
  request<{ data: T }>("PUT", path, body).then((r) => r?.data);
export const del = (path: string) => request<unknown>("DELETE", path);

export function qs(params: Record<string, string | number | boolean | undefined | null>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** Every page of a list (the server caps page_size at 100; web-ui.md §1.4 [gap]). */
export async function getAll<T>(path: string, sizeParam = "page_size"): Promise<T[]> {
  const sep = path.includes("?") ? "&" : "?";
  const rows: T[] = [];
  for (let page = 1; page < 1000; page++) {
    const result = await getPage<T>(`${path}${sep}page=${page}&${sizeParam}=100`);
    rows.push(...result.data);
    if (page >= result.pagination.total_pages) break;
  }
  return rows;
}

// The generated, typed client for the OpenAPI routes; it shares the auth/refresh behaviour above.
const authMiddleware: Middleware = {
  async onRequest({ request }) {
    const token = getAccess();
    if (token) request.headers.set("Authorization", `Bearer ${token}`);
    return request;
  },
  async onResponse({ request, response }) {
    if (response.status !== 401 || request.url.includes("/auth/")) return response;
    if (await refreshTokens()) {
      const retry = new Request(request, { headers: new Headers(request.headers) });
      retry.headers.set("Authorization", `Bearer ${getAccess()}`);
      return fetch(retry);
    }
    sessionExpired();
    return response;
  },
};

export const client = createClient<paths>({ baseUrl: apiBase || window.location.origin });
client.use(authMiddleware);

/** Unwrap an openapi-fetch result: the data, or an ApiError with the server's message. */
export function unwrap<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (result.error !== undefined || !result.response.ok) {
    throw new ApiError(result.response.status, messageOf(result.error, result.response.statusText));
  }
  return result.data as T;
}

/** One line of a streamed pack install/upgrade (docs/web-ui.md "Packs"; api.md pack routes). */
export type InstallLine =
  | { event: "progress"; stage: string; message: string; pack?: string; current?: number; total?: number; unit?: string }
  | { event: "heartbeat" }
  | { event: "result"; data: unknown; message?: string }
  | { event: "error"; status: number; code?: string; error: string };

/**
 * POST and read the NDJSON answer line by line, handing each progress line to `onLine` as it
 * arrives; resolves with the final result's data, rejects with an ApiError for an error line.
 */
export async function postStream<T>(path: string, body: unknown, onLine: (line: InstallLine) => void): Promise<T> {
  const sep = path.includes("?") ? "&" : "?";
  const response = await send(`${apiBase}${path}${sep}stream=true`, {
    method: "POST",
    body: JSON.stringify(body),
    headers: { "Content-Type": "application/json" },
  });
  if (!response.ok || !response.body) {
    // Validation, permission and not-found errors come back as plain JSON before any streaming.
    const parsed = await parse(response);
    const code = parsed && typeof parsed === "object" ? (parsed as { code?: string }).code : undefined;
    throw new ApiError(response.status, messageOf(parsed, `${response.status} ${response.statusText}`), code);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let outcome: InstallLine | null = null;
  const handle = (text: string) => {
    if (!text.trim()) return;
    const line = JSON.parse(text) as InstallLine;
    onLine(line);
    if (line.event === "result" || line.event === "error") outcome = line;
  };
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let newline = buffer.indexOf("\n");
    while (newline >= 0) {
      handle(buffer.slice(0, newline));
      buffer = buffer.slice(newline + 1);
      newline = buffer.indexOf("\n");
    }
  }
  handle(buffer + decoder.decode());
  const last = outcome as InstallLine | null;
  if (last?.event === "result") return last.data as T;
  if (last?.event === "error") throw new ApiError(last.status, last.error, last.code);
  throw new ApiError(502, "The install stream ended without a result");
}
