// Vite build of the callto web CTI. Output goes to web/dist, which the callto server serves at `/`.
// `CALLTO_DEV_SERVER=http://127.0.0.1:8080 npm run dev` proxies the API, events and SIP WebSocket to a
// running server so the app can be developed with hot reload.
import { defineConfig } from 'vite';

const target = process.env.CALLTO_DEV_SERVER ?? 'http://127.0.0.1:8080';

export default defineConfig({
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    target: 'es2022',
    chunkSizeWarningLimit: 600,
  },
  server: {
    proxy: {
      '/api': { target, ws: true, changeOrigin: true },
      '/sip': { target, ws: true, changeOrigin: true },
    },
  },
});
