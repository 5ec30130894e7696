// Prints the size of every file in dist/ (raw and gzip) and the JS total: the page weight of the CTI.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';

const root = new URL('../dist/', import.meta.url).pathname;
const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else files.push(p);
  }
};
walk(root);
let jsRaw = 0;
let jsGz = 0;
for (const f of files.sort()) {
  const data = readFileSync(f);
  const gz = gzipSync(data).length;
  if (f.endsWith('.js')) {
    jsRaw += data.length;
    jsGz += gz;
  }
  console.log(`${relative(root, f).padEnd(40)} ${String(data.length).padStart(9)} B  gzip ${String(gz).padStart(8)} B`);
}
const entry = files.filter((f) => /assets\/index-[^/]*\.js$/.test(f));
const entryRaw = entry.reduce((n, f) => n + readFileSync(f).length, 0);
const entryGz = entry.reduce((n, f) => n + gzipSync(readFileSync(f)).length, 0);
const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
console.log(`JS bundle total: ${kib(jsRaw)} (gzip ${kib(jsGz)})`);
console.log(`  loaded at start: ${kib(entryRaw)} (gzip ${kib(entryGz)}); the web phone (JsSIP) loads later, only for users who have one`);
