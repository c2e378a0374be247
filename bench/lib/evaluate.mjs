// The targets, evaluated on one run's results.
export const byPolicy = (cells, id) => cells?.find((c) => c.policy === id);

export function evaluate(b) {
  if (!b.available) return null;
  const raw = b.single?.raw.opsPerSec;
  const hotOff = byPolicy(b.hot, 'default');
  const hotOn = byPolicy(b.hot, 'default+combine');
  const mpOff = byPolicy(b.multi, 'default');
  const mpOn = byPolicy(b.multi, 'default+combine');
  const zero = (cells) => (cells.length === 0 || cells.some((c) => !c) ? null : cells.every((c) => c.failed === 0 && c.lost === 0 && c.duplicated === 0));
  const allLost = (cells) => (cells ?? []).reduce((n, c) => n + c.lost + c.duplicated, 0);
  const t = [];
  t.push({ id: 'a', text: '(a) update() / raw CAS loop, one writer ≤ 1.10×', value: b.single?.ratio, met: b.single ? b.single.ratio <= 1.1 : null, unit: '×' });
  t.push({
    id: 'b0', text: '(b) 0 failed, 0 lost (update() defaults, combining off and on)',
    value: hotOff && hotOn ? `${hotOff.failed + hotOn.failed} failed, ${hotOff.lost + hotOn.lost} lost` : null, met: zero([hotOff, hotOn]),
  });
  t.push({ id: 'b1', text: '(b) goodput without combining ≥ 1.0× one-writer raw', value: hotOff && raw ? hotOff.opsPerSec / raw : null, met: hotOff && raw ? hotOff.opsPerSec / raw >= 1.0 : null, unit: '×' });
  t.push({ id: 'b5', text: '(b) goodput with combining ≥ 5× one-writer raw', value: hotOn && raw ? hotOn.opsPerSec / raw : null, met: hotOn && raw ? hotOn.opsPerSec / raw >= 5 : null, unit: '×' });
  if (b.crossProcess === false) {
    t.push({ id: 'c0', text: '(c) 0 failed, 0 lost', value: 'n/a (one process only)', met: null });
    t.push({ id: 'c8', text: '(c) goodput ≥ 0.8× one-writer raw', value: 'n/a (one process only)', met: null });
  } else {
    t.push({
      id: 'c0', text: '(c) 0 failed, 0 lost (update() defaults, combining off and on)',
      value: mpOff && mpOn ? `${mpOff.failed + mpOn.failed} failed, ${mpOff.lost + mpOn.lost} lost` : null, met: zero([mpOff, mpOn]),
    });
    t.push({ id: 'c8', text: '(c) goodput ≥ 0.8× one-writer raw (update() defaults)', value: mpOn && raw ? mpOn.opsPerSec / raw : null, met: mpOn && raw ? mpOn.opsPerSec / raw >= 0.8 : null, unit: '×' });
  }
  t.push({ id: 'lost', text: 'no lost or duplicated update in any cell (every policy)', value: allLost([...(b.hot ?? []), ...(b.multi ?? []), ...(b.sweep ?? []), ...(b.distinct ? [b.distinct] : [])]), met: null });
  t[t.length - 1].met = t[t.length - 1].value === 0;
  return t;
}

export function verdict(x) {
  if (x.met === null) return x.value === null || x.value === undefined ? 'not measured' : String(x.value);
  const v = typeof x.value === 'number' ? (x.unit === '×' ? `${x.value.toFixed(2)}×` : String(x.value)) : x.value;
  return `${x.met ? '✅ met' : '❌ not met'} (${v})`;
}
