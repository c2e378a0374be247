// A V8 .cpuprofile (node --cpu-prof) as a flame graph SVG: one box per call path, as wide as
// the share of samples spent in it and below it, the root at the bottom; hover a box for its
// name, file and share. Written here because the field's renderers (speedscope, 0x,
// flamegraph.pl) are interactive apps or need perf/Perl; this draws a static file that a
// README can show. Colours: revkit's own code orange, node_modules blue, Node's internals
// grey, native and V8 (GC, idle, program) green.
import { readFileSync } from 'node:fs';

const ROW = 16;
const WIDTH = 1200;
const MIN_SHARE = 0.005;
// Deeper frames (module loading, recursion) are cut: the flame stays one screen high.
const MAX_DEPTH = 40;

function nameOf(node) {
  const { functionName, url, lineNumber } = node.callFrame;
  const file = url.replace(/^file:\/\//, '').replace(/^.*\/(dist|node_modules)\//, '$1/').replace(/^node:/, '');
  return { fn: functionName || '(anonymous)', where: file ? `${file}:${lineNumber + 1}` : '' };
}

function colour({ where, fn }) {
  if (where.startsWith('dist/')) return '#f0a050';
  if (where.startsWith('node_modules/')) return '#7fa7d8';
  if (where === '' || fn.startsWith('(')) return '#8cc88c';
  return '#c4c4c4';
}

const escape = (text) => text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);

/** The profile's call tree with time per node (self + children), merged by (function, file) along each path. */
function callTree(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const build = (node) => {
    const { fn, where } = nameOf(node);
    const merged = new Map();
    for (const childId of node.children ?? []) {
      const child = build(byId.get(childId));
      const key = `${child.fn}\u0000${child.where}`;
      const into = merged.get(key);
      if (into) {
        into.total += child.total;
        into.children.push(...child.children);
      } else merged.set(key, child);
    }
    const children = [...merged.values()].sort((a, b) => b.total - a.total);
    const total = (self.get(node.id) ?? 0) + children.reduce((s, c) => s + c.total, 0);
    return { fn, where, total, children };
  };
  return build(profile.nodes[0]);
}

/** Renders `file` (a .cpuprofile) as an SVG string titled `title`. */
export function flameGraph(file, title) {
  const root = callTree(JSON.parse(readFileSync(file, 'utf8')));
  const boxes = [];
  let depth = 0;
  const place = (node, x, level) => {
    const share = node.total / root.total;
    if (share < MIN_SHARE || level > MAX_DEPTH) return;
    depth = Math.max(depth, level);
    boxes.push({ node, x, level, share });
    let at = x;
    for (const child of node.children) {
      place(child, at, level + 1);
      at += (child.total / root.total) * WIDTH;
    }
  };
  place(root, 0, 0);
  const height = (depth + 1) * ROW + 40;
  const rects = boxes.map(({ node, x, level, share }) => {
    const w = share * WIDTH;
    const y = height - (level + 1) * ROW - 4;
    const label = `${node.fn} ${node.where}`.trim();
    const tip = `${label} — ${(share * 100).toFixed(1)} %`;
    const chars = Math.floor((w - 4) / 6.2);
    const text = chars >= 3 ? `<text x="${(x + 2).toFixed(1)}" y="${y + 11}">${escape(label.length > chars ? `${label.slice(0, chars - 1)}…` : label)}</text>` : '';
    return `<g><title>${escape(tip)}</title><rect x="${x.toFixed(1)}" y="${y}" width="${Math.max(w - 0.5, 0.5).toFixed(1)}" height="${ROW - 1}" fill="${colour(node)}"/>${text}</g>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" font-family="monospace" font-size="10">
<rect width="100%" height="100%" fill="#fff"/>
<text x="4" y="16" font-size="13">${escape(title)}</text>
${rects.join('\n')}
</svg>
`;
}
