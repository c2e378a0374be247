#!/usr/bin/env node
// Builds the web console into dist/ui: one minified ES module bundle (Preact +
// htm + the console), the stylesheet and the page. `revkit serve` serves them at /ui.
import { copyFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const out = here('../dist/ui/');
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [here('src/main.ts')],
  outfile: `${out}console.js`,
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['chrome110', 'firefox110', 'safari16'],
  legalComments: 'eof',
  logLevel: 'warning',
});
copyFileSync(here('index.html'), `${out}index.html`);
copyFileSync(here('console.css'), `${out}console.css`);
