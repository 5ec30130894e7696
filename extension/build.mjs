// Builds the extension into dist/callto (a folder Chromium loads with --load-extension or
// "Load unpacked") and dist/callto-extension.zip (for the Chrome Web Store or a policy install).
import { build } from 'esbuild';
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'dist', 'callto');
rmSync(join(here, 'dist'), { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: ['background', 'content', 'popup'].map((n) => join(here, 'src', `${n}.ts`)),
  outdir: out,
  bundle: true,
  format: 'iife',
  target: 'chrome110',
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
});
cpSync(join(here, 'static'), out, { recursive: true });
console.log(`extension built in ${out}`);
