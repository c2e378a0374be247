// Top self-time functions of a V8 .cpuprofile (node --cpu-prof), for the figure scripts'
// "what limits it" lines. Usage as a script: node bench/lib/cpu-profile.mjs FILE.cpuprofile [top]
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** [{ name, where, selfMs, share }] sorted by self time, `(idle)` and `(program)` included. */
export function topSelfTime(file, top = 25) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const dt = profile.timeDeltas;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]);
    const f = node.callFrame;
    const where = f.url ? `${f.url.replace(/^file:\/\/.*?\/(node_modules|dist|src)\//, '$1/')}:${f.lineNumber + 1}` : '';
    const id = `${f.functionName || '(anonymous)'}\t${where}`;
    self.set(id, (self.get(id) ?? 0) + (dt[i + 1] ?? 0) / 1000);
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([id, ms]) => {
      const [name, where] = id.split('\t');
      return { name, where, selfMs: ms, share: ms / total };
    });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const r of topSelfTime(process.argv[2], Number(process.argv[3] ?? 25))) {
    console.log(`${(r.share * 100).toFixed(1).padStart(5)}%  ${r.selfMs.toFixed(0).padStart(6)} ms  ${r.name}  ${r.where}`);
  }
}
