import { useEffect, useState, type FormEvent } from "react";
import { Navigate, useLocation } from "react-router-dom";
import { useAuth } from "@/auth/AuthContext";
import { errorText } from "@/api/errors";
import { REDIRECT_KEY } from "@/api/tokens";

export default function Login() {
  const { login, user } = useAuth();
  const location = useLocation();
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const [saved] = useState(() => sessionStorage.getItem(REDIRECT_KEY));
  useEffect(() => {
    if (user) sessionStorage.removeItem(REDIRECT_KEY);
  }, [user]);
  if (user) {
    // After login (or when already signed in): the saved path, else where the guard came from.
    const from = (location.state as { from?: string } | null)?.from;
    return <Navigate to={saved || from || "/"} replace />;
  }
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError("");
    try {
      await login(name, password);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="flex min-h-full items-center justify-center bg-gray-100">
      <form onSubmit={submit} className="w-full max-w-sm space-y-4 rounded-lg bg-white p-8 shadow">
        <h1 className="text-center text-2xl font-bold">Attune</h1>
        {error && <div className="rounded border border-red-300 bg-red-50 p-2 text-sm text-red-800" role="alert">{error}</div>}
        <fieldset disabled={busy} className="space-y-3">
          <label className="block text-sm">Username
            <input className="input mt-1" name="login" required value={name} onChange={(e) => setName(e.target.value)} autoComplete="username" />
          </label>
          <label className="block text-sm">Password
            <input className="input mt-1" name="password" type="password" required value={password} onChange={(e) => setPassword(e.target.value)} autoComplete="current-password" />
          </label>
          <button type="submit" className="btn btn-primary w-full justify-center">{busy ? "Signing in..." : "Sign in"}</button>
        </fieldset>
      </form>
    </div>
  );
}
