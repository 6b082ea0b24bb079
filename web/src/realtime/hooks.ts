import { useEffect, useRef, useState } from "react";
import { notificationSocket, type Notification } from "./socket";

/** Subscribe to `entity_type:<type>` while mounted; the handler may change without resubscribing. */
export function useEntityNotifications(
  entityType: string,
  handler: (notification: Notification) => void,
  enabled = true,
): { connected: boolean } {
  const ref = useRef(handler);
  useEffect(() => {
    ref.current = handler;
  });
  const [connected, setConnected] = useState(notificationSocket.connected);
  useEffect(() => notificationSocket.onConnection(setConnected), []);
  useEffect(() => {
    if (!enabled) return;
    return notificationSocket.subscribe(entityType, (n) => ref.current(n));
  }, [entityType, enabled]);
  return { connected };
}
