// A hand-written SVG line chart for the growth benchmarks (like bench/lib/svg.mjs): a log-scale
// x axis of sizes (keys, revisions, change-log entries), a log or linear y axis, one line per
// series, points with their value as a tooltip, and a dotted "linear growth" guide from each
// series' first point (what a cost that grows with the store would look like).
const COLORS = ['#4e79a7', '#f28e2b', '#e15759', '#59a14f', '#b07aa1', '#76b7b2', '#edc948', '#9c755f'];
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function sizeLabel(n) {
  if (n >= 1e6) return `${n / 1e6}M`;
  if (n >= 1e3) return `${n / 1e3}k`;
  return String(n);
}

function yLabel(v) {
  if (v >= 1e9) return `${+(v / 1e9).toPrecision(3)}G`;
  if (v >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (v >= 1e3) return `${+(v / 1e3).toPrecision(3)}k`;
  return String(+v.toPrecision(3));
}

/**
 * series: [{ label, points: [[x, y]], dashed?, dash? (an SVG dash pattern), color? }]; logY default true;
 * guide: 'cost' (a cost growing linearly with the size: y0·x/x0), 'rate' (a rate falling as
 * 1/size: y0·x0/x), or false; default 'cost' on a log y axis.
 */
export function lineChart({ title, subtitle = '', xLabel, yUnit, series, logY = true, guide = logY ? 'cost' : false, width: plotWidth = 590, height = 460 }) {
  // Room on the right for the legend's longest label (~6.6 px a character at 12 px).
  const legendWidth = Math.max(200, 46 + Math.ceil(6.6 * Math.max(0, ...series.map((s) => String(s.label).length))));
  const width = plotWidth + legendWidth;
  const m = { l: 78, r: legendWidth, t: subtitle ? 58 : 42, b: 52 };
  const pw = width - m.l - m.r;
  const ph = height - m.t - m.b;
  const pts = series.flatMap((s) => s.points).filter(([x, y]) => x > 0 && y !== null && y !== undefined && (!logY || y > 0));
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`);
  out.push(`<rect width="${width}" height="${height}" fill="#fff"/>`);
  out.push(`<text x="${m.l}" y="22" font-size="15" font-weight="600">${esc(title)}</text>`);
  if (subtitle) out.push(`<text x="${m.l}" y="40" fill="#555">${esc(subtitle)}</text>`);
  if (pts.length === 0) {
    out.push(`<text x="${m.l}" y="${m.t + 30}">no data</text></svg>`);
    return `${out.join('\n')}\n`;
  }
  const xs = [...new Set(pts.map((p) => p[0]))].sort((a, b) => a - b);
  const xlo = 10 ** Math.floor(Math.log10(xs[0]));
  const xhi = 10 ** Math.ceil(Math.log10(xs[xs.length - 1]));
  const ys = pts.map((p) => p[1]);
  let ylo;
  let yhi;
  if (logY) {
    ylo = 10 ** Math.floor(Math.log10(Math.min(...ys)));
    yhi = 10 ** Math.ceil(Math.log10(Math.max(...ys)));
    if (yhi === ylo) yhi = ylo * 10;
  } else {
    ylo = 0;
    const top = Math.max(...ys);
    const step = 10 ** Math.floor(Math.log10(top || 1));
    yhi = Math.ceil((top * 1.05) / step) * step || 1;
  }
  const xOf = (x) => m.l + ((Math.log10(x) - Math.log10(xlo)) / (Math.log10(xhi) - Math.log10(xlo) || 1)) * pw;
  const yOf = (y) => (logY
    ? m.t + ph - ((Math.log10(Math.min(Math.max(y, ylo), yhi)) - Math.log10(ylo)) / (Math.log10(yhi) - Math.log10(ylo))) * ph
    : m.t + ph - (Math.min(y, yhi) / yhi) * ph);
  // grid
  const yticks = [];
  if (logY) for (let d = ylo; d <= yhi * 1.0001; d *= 10) yticks.push(d);
  else for (let i = 0; i <= 5; i++) yticks.push((yhi * i) / 5);
  for (const d of yticks) {
    const y = yOf(d).toFixed(1);
    out.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${y}" y2="${y}" stroke="#ddd"/>`);
    out.push(`<text x="${m.l - 8}" y="${y}" text-anchor="end" dominant-baseline="middle" fill="#555">${yLabel(d)}</text>`);
  }
  for (let d = xlo; d <= xhi * 1.0001; d *= 10) {
    const x = xOf(d).toFixed(1);
    out.push(`<line x1="${x}" x2="${x}" y1="${m.t}" y2="${m.t + ph}" stroke="#eee"/>`);
    out.push(`<text x="${x}" y="${m.t + ph + 18}" text-anchor="middle" fill="#555">${sizeLabel(d)}</text>`);
  }
  out.push(`<text x="${m.l + pw / 2}" y="${height - 12}" text-anchor="middle">${esc(xLabel)} (log scale)</text>`);
  out.push(`<text transform="translate(18 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">${esc(yUnit)}${logY ? ' (log scale)' : ''}</text>`);
  out.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
  out.push(`<clipPath id="plot"><rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}"/></clipPath>`);
  const legend = [];
  series.forEach((s, i) => {
    const color = s.color ?? COLORS[i % COLORS.length];
    const ps = s.points.filter(([x, y]) => x > 0 && y !== null && y !== undefined && (!logY || y > 0)).sort((a, b) => a[0] - b[0]);
    if (ps.length === 0) return;
    legend.push({ label: s.label, color, dash: s.dash ?? (s.dashed ? '6 4' : undefined) });
    if (guide && ps.length > 1) {
      const [x0, y0] = ps[0];
      const x1 = ps[ps.length - 1][0];
      out.push(`<path d="M${xOf(x0).toFixed(1)} ${yOf(y0).toFixed(1)} L${xOf(x1).toFixed(1)} ${yOf(guide === 'rate' ? (y0 * x0) / x1 : (y0 * x1) / x0).toFixed(1)}" stroke="${color}" stroke-width="1" stroke-dasharray="1 4" fill="none" opacity="0.6" clip-path="url(#plot)"/>`);
    }
    const d = ps.map((p, j) => `${j ? 'L' : 'M'}${xOf(p[0]).toFixed(1)} ${yOf(p[1]).toFixed(1)}`).join(' ');
    const dash = s.dash ?? (s.dashed ? '6 4' : undefined);
    out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`);
    for (const p of ps) {
      out.push(`<circle cx="${xOf(p[0]).toFixed(1)}" cy="${yOf(p[1]).toFixed(1)}" r="3" fill="${dash ? '#fff' : color}" stroke="${color}"><title>${esc(s.label)}, ${sizeLabel(p[0])}: ${yLabel(p[1])} ${esc(yUnit)}</title></circle>`);
    }
  });
  let ly = m.t + 6;
  const lx = m.l + pw + 16;
  for (const l of legend) {
    out.push(`<line x1="${lx}" x2="${lx + 24}" y1="${ly}" y2="${ly}" stroke="${l.color}" stroke-width="2"${l.dash ? ` stroke-dasharray="${l.dash}"` : ''}/><text x="${lx + 30}" y="${ly}" dominant-baseline="middle">${esc(l.label)}</text>`);
    ly += 20;
  }
  if (guide) {
    ly += 6;
    out.push(`<line x1="${lx}" x2="${lx + 24}" y1="${ly}" y2="${ly}" stroke="#555" stroke-dasharray="1 4"/><text x="${lx + 30}" y="${ly}" dominant-baseline="middle" fill="#555">${guide === 'rate' ? 'rate ∝ 1/size' : 'cost ∝ size'} from</text>`);
    out.push(`<text x="${lx + 30}" y="${ly + 15}" dominant-baseline="middle" fill="#555">the first point (guide)</text>`);
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
