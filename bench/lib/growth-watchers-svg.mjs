// Hand-written SVG line charts for bench/growth-watchers.mjs (in the manner of bench/lib/svg.mjs):
// x = watchers on a log scale, y linear or log; one line per series, dashed where asked.
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

const short = (v) => {
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e3) return `${+(v / 1e3).toPrecision(3)}k`;
  if (a >= 1 || a === 0) return `${+v.toPrecision(3)}`;
  return `${+v.toPrecision(2)}`;
};

/**
 * series: [{ name, color, dash?, points: [[watchers, y], …] }] (y null or ≤ 0 on a log axis: left out).
 * logY: log-scale y; notes: lines of small print under the title.
 */
export function lineChart({ title, notes = [], xLabel, yLabel, series, logY = false, unit = '' }) {
  const W = 780;
  const H = 460 + notes.length * 14;
  const m = { l: 78, r: 250, t: 44 + notes.length * 14, b: 52 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const usable = (y) => y !== null && y !== undefined && Number.isFinite(y) && (!logY || y > 0);
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  const ys = series.flatMap((s) => s.points.map((p) => p[1])).filter(usable);
  if (xs.length === 0 || ys.length === 0) return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="60"><text x="10" y="30">${esc(title)}: no data</text></svg>\n`;
  const lx0 = Math.log10(Math.max(1, xs[0]));
  const lx1 = Math.log10(Math.max(10, xs[xs.length - 1]));
  const xOf = (x) => m.l + (lx1 === lx0 ? pw / 2 : ((Math.log10(Math.max(1, x)) - lx0) / (lx1 - lx0)) * pw);
  let ticks;
  let yOf;
  if (logY) {
    const lo = 10 ** Math.floor(Math.log10(Math.min(...ys)));
    const hi = 10 ** Math.ceil(Math.log10(Math.max(...ys)) + 1e-9);
    const span = Math.log10(hi) - Math.log10(lo) || 1;
    yOf = (v) => m.t + ph - ((Math.log10(v) - Math.log10(lo)) / span) * ph;
    ticks = [];
    for (let d = lo; d <= hi * 1.0001; d *= 10) ticks.push(d);
  } else {
    const maxY = Math.max(...ys, 0);
    const minY = Math.min(...ys, 0);
    const step = niceStep((maxY - minY) / 5 || 1);
    const lo = Math.floor(minY / step) * step;
    const hi = Math.ceil(maxY / step) * step || step;
    yOf = (v) => m.t + ph - ((v - lo) / (hi - lo)) * ph;
    ticks = [];
    for (let v = lo; v <= hi + step / 1e6; v += step) ticks.push(v);
  }
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="${m.l}" y="22" font-size="15" font-weight="600">${esc(title)}</text>`);
  notes.forEach((n, i) => out.push(`<text x="${m.l}" y="${40 + i * 14}" font-size="11" fill="#555">${esc(n)}</text>`));
  for (const t of ticks) {
    const y = yOf(t).toFixed(1);
    out.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${y}" y2="${y}" stroke="#ddd"/>`);
    out.push(`<text x="${m.l - 8}" y="${y}" text-anchor="end" dominant-baseline="middle" fill="#555">${short(t)}</text>`);
  }
  for (const x of xs) {
    const px = xOf(x).toFixed(1);
    out.push(`<line x1="${px}" x2="${px}" y1="${m.t}" y2="${m.t + ph}" stroke="#eee"/>`);
    out.push(`<text x="${px}" y="${m.t + ph + 18}" text-anchor="middle" fill="#555">${x.toLocaleString('en-US')}</text>`);
  }
  out.push(`<text x="${m.l + pw / 2}" y="${H - 12}" text-anchor="middle">${esc(xLabel)}</text>`);
  out.push(`<text transform="translate(18 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`);
  out.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
  for (const s of series) {
    const pts = s.points.filter((p) => usable(p[1]));
    if (pts.length === 0) continue;
    const d = pts.map((p, i) => `${i ? 'L' : 'M'}${xOf(p[0]).toFixed(1)} ${yOf(p[1]).toFixed(1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`);
    for (const p of pts) {
      out.push(`<circle cx="${xOf(p[0]).toFixed(1)}" cy="${yOf(p[1]).toFixed(1)}" r="3.5" fill="${s.dash ? '#fff' : s.color}" stroke="${s.color}"><title>${esc(s.name)}, ${p[0]} watchers: ${short(p[1])}${esc(unit)}</title></circle>`);
    }
  }
  let ly = m.t + 6;
  const lx = m.l + pw + 16;
  for (const s of series) {
    out.push(`<line x1="${lx}" x2="${lx + 24}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/><text x="${lx + 30}" y="${ly}" dominant-baseline="middle">${esc(s.name)}</text>`);
    ly += 20;
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

function niceStep(raw) {
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const f of [1, 2, 2.5, 5, 10]) if (f * p >= raw) return f * p;
  return 10 * p;
}
