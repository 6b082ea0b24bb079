import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useNavigate } from "react-router-dom";
import { del } from "@/api/http";

/** Delete an entity, drop the cached lists of its kind, and return to the list page. */
export function useDelete(kind: string, listPath: string) {
  const client = useQueryClient();
  const navigate = useNavigate();
  return useMutation({
    mutationFn: (path: string) => del(path),
    onSuccess: () => {
      void client.invalidateQueries({ queryKey: [kind] });
      navigate(listPath);
    },
  });
}
