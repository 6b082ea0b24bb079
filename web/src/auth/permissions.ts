// What the signed-in identity may do (docs/web-ui.md "Permissions"; the contract of
// GET /api/v1/identities/{id}/permissions). A 404 from that route (a server without the
// permission model) means "all allowed": the server still refuses with 403, which the UI shows.
import { useQuery } from "@tanstack/react-query";
import { get } from "@/api/http";
import { ApiError } from "@/api/errors";
import type { Grant, IdentityPermissions } from "@/api/types";
import { useAuth } from "./AuthContext";

export type Can = (resource: string, action: string, scope?: { pack?: string | null; owned?: boolean }) => boolean;

export function grantAllows(
  grants: Grant[],
  resource: string,
  action: string,
  scope: { pack?: string | null; owned?: boolean } = {},
): boolean {
  return grants.some((grant) => {
    if (grant.resource !== "*" && grant.resource !== resource) return false;
    const actions = grant.actions;
    if (!actions.includes("*") && !actions.includes("manage") && !actions.includes(action)) return false;
    const packs = grant.constraints?.packs;
    // A pack-limited grant allows an action with no entity in view (e.g. "Create") in principle;
    // the server decides for the concrete pack.
    if (packs && packs.length && scope.pack && !packs.includes(scope.pack)) return false;
    if (grant.constraints?.owner === "self" && scope.owned === false) return false;
    return true;
  });
}

export function usePermissions(): { can: Can; loaded: boolean; permissions: IdentityPermissions | null } {
  const { user } = useAuth();
  const query = useQuery({
    queryKey: ["permissions", user?.id],
    enabled: !!user,
    staleTime: 60_000,
    queryFn: async (): Promise<IdentityPermissions | null> => {
      try {
        return await get<IdentityPermissions>(`/api/v1/identities/${user!.id}/permissions`);
      } catch (error) {
        if (error instanceof ApiError && (error.status === 404 || error.status === 405)) return null;
        throw error;
      }
    },
  });
  const permissions = query.data ?? null;
  const can: Can = (resource, action, scope) => {
    if (!query.isSuccess) return query.isError; // unknown while loading; permissive if the route errs
    if (!permissions || permissions.is_admin) return true;
    return grantAllows(permissions.grants, resource, action, scope);
  };
  return { can, loaded: query.isSuccess || query.isError, permissions };
}
