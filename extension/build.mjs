// Builds the extension from one set of sources into two packages that differ only in their manifest:
//   dist/callto/          Chromium (Chrome, Edge, Brave): --load-extension or "Load unpacked";
//   dist/callto-extension.zip  the same, for the Chrome Web Store or a policy install;
//   dist/callto-firefox/  Firefox: static/manifest.json with static/manifest.firefox.json laid over it
//                         (background scripts instead of a service worker, the add-on id);
//   dist/callto-firefox.zip    the same, for about:debugging, addons.mozilla.org or `web-ext sign`.
import { build } from 'esbuild';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');
const chromium = join(dist, 'callto');
const firefox = join(dist, 'callto-firefox');
const FIREFOX_OVERLAY = 'manifest.firefox.json';
rmSync(dist, { recursive: true, force: true });
mkdirSync(chromium, { recursive: true });
await build({
  entryPoints: ['background', 'content', 'popup'].map((n) => join(here, 'src', `${n}.ts`)),
  outdir: chromium,
  bundle: true,
  format: 'iife',
  target: ['chrome110', 'firefox128'],
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
});
cpSync(join(here, 'static'), chromium, { recursive: true, filter: (src) => !src.endsWith(FIREFOX_OVERLAY) });
// Firefox gets the very same files (scripts included, byte for byte); only the manifest differs.
cpSync(chromium, firefox, { recursive: true });
const manifest = JSON.parse(readFileSync(join(here, 'static', 'manifest.json'), 'utf8'));
const overlay = JSON.parse(readFileSync(join(here, 'static', FIREFOX_OVERLAY), 'utf8'));
writeFileSync(join(firefox, 'manifest.json'), `${JSON.stringify({ ...manifest, ...overlay }, null, 2)}\n`);
console.log(`extension built in ${chromium} (Chromium) and ${firefox} (Firefox)`);
