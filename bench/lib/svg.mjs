// A hand-written SVG line chart: hot-key goodput (ops/s, log scale) against
// the number of writers in one process, per backend, combining on and off.
const COLORS = ['#4e79a7', '#f28e2b', '#e15759', '#59a14f', '#b07aa1', '#76b7b2', '#edc948', '#9c755f'];
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function hotKeySeries(results) {
  const series = [];
  for (const b of results.backends) {
    if (!b.available) continue;
    for (const id of ['default+combine', 'default']) {
      const points = [];
      for (const c of b.sweep ?? []) if (c.policy === id) points.push([c.writers, c.opsPerSec]);
      const hot = (b.hot ?? []).find((c) => c.policy === id);
      if (hot) points.push([hot.writers, hot.opsPerSec]);
      points.sort((x, y) => x[0] - y[0]);
      if (points.length > 0) series.push({ backend: b.name, combine: id === 'default+combine', points });
    }
  }
  return series;
}

export function hotKeySvg(results) {
  const series = hotKeySeries(results);
  const W = 760;
  const H = 440;
  const m = { l: 70, r: 200, t: 40, b: 50 };
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  const ys = series.flatMap((s) => s.points.map((p) => p[1])).filter((y) => y > 0);
  if (xs.length === 0 || ys.length === 0) return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="60"><text x="10" y="30">no data</text></svg>\n`;
  const lo = 10 ** Math.floor(Math.log10(Math.min(...ys)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...ys)));
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const xOf = (w) => m.l + (xs.length === 1 ? pw / 2 : (xs.indexOf(w) / (xs.length - 1)) * pw);
  const yOf = (v) => m.t + ph - ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * ph;
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="${m.l}" y="22" font-size="15" font-weight="600">Hot-key goodput: N writers incrementing one key in one process</text>`);
  for (let d = lo; d <= hi * 1.0001; d *= 10) {
    const y = yOf(d).toFixed(1);
    out.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${y}" y2="${y}" stroke="#ddd"/>`);
    out.push(`<text x="${m.l - 8}" y="${y}" text-anchor="end" dominant-baseline="middle" fill="#555">${d >= 1e6 ? `${d / 1e6}M` : d >= 1e3 ? `${d / 1e3}k` : d}</text>`);
  }
  for (const w of xs) {
    const x = xOf(w).toFixed(1);
    out.push(`<line x1="${x}" x2="${x}" y1="${m.t}" y2="${m.t + ph}" stroke="#eee"/>`);
    out.push(`<text x="${x}" y="${m.t + ph + 18}" text-anchor="middle" fill="#555">${w}</text>`);
  }
  out.push(`<text x="${m.l + pw / 2}" y="${H - 12}" text-anchor="middle">writers (one process, one key)</text>`);
  out.push(`<text transform="translate(18 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">committed updates per second (log)</text>`);
  out.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
  const backends = [...new Set(series.map((s) => s.backend))];
  series.forEach((s) => {
    const color = COLORS[backends.indexOf(s.backend) % COLORS.length];
    const d = s.points.map((p, i) => `${i ? 'L' : 'M'}${xOf(p[0]).toFixed(1)} ${yOf(p[1]).toFixed(1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${s.combine ? '' : ' stroke-dasharray="6 4"'}/>`);
    for (const p of s.points) {
      out.push(`<circle cx="${xOf(p[0]).toFixed(1)}" cy="${yOf(p[1]).toFixed(1)}" r="3" fill="${s.combine ? color : '#fff'}" stroke="${color}"><title>${esc(s.backend)} ${s.combine ? 'combining' : 'no combining'}, ${p[0]} writers: ${Math.round(p[1])} ops/s</title></circle>`);
    }
  });
  let ly = m.t + 6;
  const lx = m.l + pw + 16;
  for (const b of backends) {
    const color = COLORS[backends.indexOf(b) % COLORS.length];
    out.push(`<line x1="${lx}" x2="${lx + 24}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"/><text x="${lx + 30}" y="${ly}" dominant-baseline="middle">${esc(b)}</text>`);
    ly += 20;
  }
  ly += 8;
  out.push(`<line x1="${lx}" x2="${lx + 24}" y1="${ly}" y2="${ly}" stroke="#333" stroke-width="2"/><text x="${lx + 30}" y="${ly}" dominant-baseline="middle">combining on (default)</text>`);
  ly += 20;
  out.push(`<line x1="${lx}" x2="${lx + 24}" y1="${ly}" y2="${ly}" stroke="#333" stroke-width="2" stroke-dasharray="6 4"/><text x="${lx + 30}" y="${ly}" dominant-baseline="middle">combining off</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
