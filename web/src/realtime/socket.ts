// One WebSocket per tab to the API's own origin (docs/notifications.md; web-ui.md §3.1).
import { getAccess } from "@/api/tokens";

export type Notification = {
  notification_type: string;
  entity_type: string;
  entity_id: number | null;
  user_id?: number | null;
  payload: Record<string, unknown>;
  timestamp: string;
};
type Handler = (notification: Notification) => void;

export function socketUrl(): string {
  const configured = import.meta.env.VITE_WS_URL as string | undefined;
  if (configured) return configured.endsWith("/ws") ? configured : `${configured.replace(/\/$/, "")}/ws`;
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${window.location.host}/api/v1/notifications/ws`;
}

export class NotificationSocket {
  private ws: WebSocket | null = null;
  private handlers = new Map<string, Set<Handler>>();
  private attempts = 0;
  private timer: number | null = null;
  private closed = false;
  private listeners = new Set<(connected: boolean) => void>();
  connected = false;

  start(): void {
    this.closed = false;
    this.open();
  }

  private open(): void {
    const token = getAccess();
    if (!token || this.closed) return;
    const ws = new WebSocket(`${socketUrl()}?token=${encodeURIComponent(token)}`);
    this.ws = ws;
    ws.onopen = () => {
      this.attempts = 0;
      this.setConnected(true);
      for (const filter of this.handlers.keys()) this.sendFrame("subscribe", filter);
    };
    ws.onmessage = (message) => this.dispatch(message.data);
    ws.onclose = () => {
      this.setConnected(false);
      if (this.ws === ws) this.ws = null;
      if (this.closed || this.attempts >= 10) return;
      this.attempts += 1;
      this.timer = window.setTimeout(() => this.open(), Math.min(5000 * this.attempts, 30000));
    };
  }

  stop(): void {
    this.closed = true;
    if (this.timer !== null) window.clearTimeout(this.timer);
    this.ws?.close(1000);
    this.ws = null;
    this.setConnected(false);
  }

  private setConnected(value: boolean): void {
    this.connected = value;
    for (const listener of this.listeners) listener(value);
  }

  onConnection(listener: (connected: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private sendFrame(type: "subscribe" | "unsubscribe", filter: string): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ type, filter }));
  }

  subscribe(entityType: string, handler: Handler): () => void {
    const filter = `entity_type:${entityType}`;
    let set = this.handlers.get(filter);
    if (!set) {
      set = new Set();
      this.handlers.set(filter, set);
      this.sendFrame("subscribe", filter);
    }
    set.add(handler);
    return () => {
      const current = this.handlers.get(filter);
      if (!current) return;
      current.delete(handler);
      if (current.size === 0) {
        this.handlers.delete(filter);
        this.sendFrame("unsubscribe", filter);
      }
    };
  }

  private dispatch(raw: unknown): void {
    if (typeof raw !== "string") return;
    let frame: Record<string, unknown>;
    try {
      frame = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      return;
    }
    if (!("notification_type" in frame)) return; // welcome, acks, pong
    const notification = frame as unknown as Notification;
    const set = this.handlers.get(`entity_type:${notification.entity_type}`);
    for (const handler of set ?? []) {
      try {
        handler(notification);
      } catch (error) {
        console.error("notification handler failed", error);
      }
    }
  }
}

export const notificationSocket = new NotificationSocket();
