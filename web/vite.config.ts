import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";
import { fileURLToPath, URL } from "node:url";

const api = process.env.ATTUNE_API_URL ?? "http://localhost:8080";

// Build output goes inside the Python package so the API serves it at `/` (docs/web-ui.md).
export default defineConfig({
  plugins: [react()],
  resolve: { alias: { "@": fileURLToPath(new URL("./src", import.meta.url)) } },
  server: {
    host: "127.0.0.1",
    port: 3001,
    proxy: {
      "/api": { target: api, ws: true },
      "/auth": { target: api },
    },
  },
  build: {
    outDir: "../src/attune/api/ui_dist",
    emptyOutDir: true,
    chunkSizeWarningLimit: 1500,
  },
});
