// Terminal tables and BENCHMARKS.md from one run's results.
import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { int, ms, fixed, ratio, textTable, mdTable } from './format.mjs';
import { evaluate, verdict, byPolicy } from './evaluate.mjs';
import { hotKeySvg } from './svg.mjs';

const avail = (r) => r.backends.filter((b) => b.available);
const labelOf = (r, id) => r.params.policies.find((p) => p.id === id)?.label ?? id;
const vsRaw = (b, c) => (b.single && c ? c.opsPerSec / b.single.raw.opsPerSec : null);

function tables(r) {
  const T = {};
  T.headline = {
    title: 'Headline: update() defaults (combining on) against the one-writer raw CAS loop of the same driver',
    headers: ['backend', '(a) 1 writer: update() / raw', '(b) 64 writers, 1 process: ops/s (× raw)', '(b) same, combining off', '(c) 4 × 16 writers: ops/s (× raw)', 'failed', 'lost'],
    rows: avail(r).map((b) => {
      const on = byPolicy(b.hot, 'default+combine');
      const off = byPolicy(b.hot, 'default');
      const mp = byPolicy(b.multi, 'default+combine');
      const cells = [on, off, byPolicy(b.multi, 'default'), mp].filter(Boolean);
      return [
        b.name,
        b.single ? `${ratio(b.single.ratio)} (${int(b.single.update.opsPerSec)} vs ${int(b.single.raw.opsPerSec)} ops/s)` : '–',
        on ? `${int(on.opsPerSec)} (${ratio(vsRaw(b, on))})` : '–',
        off ? `${int(off.opsPerSec)} (${ratio(vsRaw(b, off))})` : '–',
        mp ? `${int(mp.opsPerSec)} (${ratio(vsRaw(b, mp))})` : b.crossProcess === false ? 'n/a (one process)' : '–',
        String(cells.reduce((n, c) => n + c.failed, 0)),
        String(cells.reduce((n, c) => n + c.lost + c.duplicated, 0)),
      ];
    }),
  };
  T.a = {
    title: '(a) One writer, one key: update() versus the raw driver CAS loop (median time per op over alternating rounds)',
    headers: ['backend', 'raw ops/s', 'update() ops/s', 'ratio', 'update({combine:false}) ops/s', 'ratio', 'getRecord+put loop ops/s', 'ratio', 'raw + change log ops/s', 'ratio', 'update() / raw + log', 'update() p50 ms', 'p99 ms', 'update() ratio per round'],
    rows: avail(r).filter((b) => b.single).map((b) => {
      const s = b.single;
      return [b.name, int(s.raw.opsPerSec), int(s.update.opsPerSec), ratio(s.ratio), int(s.updateNoCombine.opsPerSec), ratio(s.ratioNoCombine), s.primitives ? int(s.primitives.opsPerSec) : '–', s.primitives ? ratio(s.ratioPrimitives) : '–', s.logged ? int(s.logged.opsPerSec) : '–', s.logged ? ratio(s.ratioLogged) : '–', s.logged ? ratio(s.ratioOverLogged) : '–', ms(s.update.p50Ms), ms(s.update.p99Ms), s.ratiosPerRound.map((x) => x.toFixed(2)).join(' ')];
    }),
  };
  const cellRows = (key) =>
    avail(r).flatMap((b) =>
      (b[key] ?? []).map((c) => [b.name, labelOf(r, c.policy), int(c.opsPerSec), ratio(vsRaw(b, c)), ms(c.p50Ms), ms(c.p99Ms), fixed(c.attemptsPerCommit), String(c.failed), String(c.lost + c.duplicated)]),
    );
  const cellHeaders = ['backend', 'policy', 'ops/s', '× raw', 'p50 ms', 'p99 ms', 'attempts/commit', 'failed', 'lost'];
  T.b = { title: '(b) 64 writers on one hot key, one process', headers: cellHeaders, rows: cellRows('hot') };
  T.c = { title: '(c) 4 processes × 16 writers on one hot key', headers: cellHeaders, rows: cellRows('multi') };
  T.d = {
    title: '(d) 64 writers on distinct keys, one process (update() defaults)',
    headers: ['backend', 'ops/s', '× raw', 'p50 ms', 'p99 ms', 'attempts/commit', 'failed', 'lost'],
    rows: avail(r).filter((b) => b.distinct).map((b) => {
      const c = b.distinct;
      return [b.name, int(c.opsPerSec), ratio(vsRaw(b, c)), ms(c.p50Ms), ms(c.p99Ms), fixed(c.attemptsPerCommit), String(c.failed), String(c.lost + c.duplicated)];
    }),
  };
  T.sweep = {
    title: 'Hot-key goodput against writers (one process, update() defaults): combining off → on',
    headers: ['backend', ...r.params.sweepWriters.map((w) => `${w} writer${w > 1 ? 's' : ''}`)],
    rows: avail(r).filter((b) => b.sweep || b.hot).map((b) => [
      b.name,
      ...r.params.sweepWriters.map((w) => {
        const pick = (id) => (w === r.params.hotWriters ? byPolicy(b.hot, id) : (b.sweep ?? []).find((c) => c.writers === w && c.policy === id));
        const off = pick('default');
        const on = pick('default+combine');
        return off && on ? `${int(off.opsPerSec)} → ${int(on.opsPerSec)} (${ratio(on.opsPerSec / off.opsPerSec)})` : '–';
      }),
    ]),
  };
  const ev = avail(r).map((b) => [b, evaluate(b)]);
  const ids = ev[0]?.[1].map((x) => x.id) ?? [];
  T.targets = {
    title: 'Targets (issue #7)',
    headers: ['target', ...ev.map(([b]) => b.name)],
    rows: ids.map((id) => [ev[0][1].find((x) => x.id === id).text, ...ev.map(([, t]) => verdict(t.find((x) => x.id === id)))]),
  };
  return T;
}

export function printTables(r) {
  const T = tables(r);
  const out = [];
  for (const k of ['a', 'b', 'c', 'd', 'sweep', 'headline', 'targets']) {
    if (T[k].rows.length === 0) continue;
    out.push(`\n${T[k].title}\n${textTable(T[k].headers, T[k].rows)}`);
  }
  for (const b of r.backends) {
    if (!b.available) out.push(`\n${b.name}: ${b.note}`);
    if (b.multiNote) out.push(`\n${b.multiNote}`);
    if (b.error) out.push(`\n${b.name}: ERROR ${b.error.split('\n')[0]}`);
  }
  return out.join('\n');
}

/** Policies ranked per backend and workload: the data behind the defaults. */
function policyFindings(r) {
  const lines = [];
  for (const b of avail(r)) {
    for (const [key, name] of [['hot', '(b)'], ['multi', '(c)']]) {
      const cells = (b[key] ?? []).filter((c) => !c.combine);
      if (cells.length === 0) continue;
      const ranked = [...cells].sort((x, y) => y.opsPerSec - x.opsPerSec);
      lines.push(`- **${b.name} ${name}**: ${ranked.map((c) => `${c.policy} ${int(c.opsPerSec)} ops/s, p99 ${ms(c.p99Ms)} ms, ${fixed(c.attemptsPerCommit)} attempts/commit${c.failed ? `, **${c.failed} failed**` : ''}`).join('; ')}.`);
    }
  }
  return lines.join('\n');
}

/**
 * Writes the hot-key chart into `dir` and the Markdown report to `report`
 * (bench/lib/out.mjs decides where: BENCHMARKS.md and bench/results/ only when publishing);
 * `json` is where this run's results are, for the report's link. Answers the paths written.
 */
export function writeReport(r, { dir, report, json }) {
  const T = tables(r);
  const here = fileURLToPath(new URL('.', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const svg = join(dir, 'hot-key.svg');
  writeFileSync(svg, hotKeySvg(r));
  const link = (file) => relative(dirname(report), file).split('\\').join('/');
  const m = r.machine;
  const p = r.params;
  const section = (k) => (T[k].rows.length ? `### ${T[k].title}\n\n${mdTable(T[k].headers, T[k].rows)}\n` : '');
  const decisionsPath = join(here, 'decisions.md');
  const decisions = existsSync(decisionsPath) ? readFileSync(decisionsPath, 'utf8').trim() : '';
  const notes = r.backends.filter((b) => !b.available || b.multiNote || b.error).map((b) => `- ${b.name}: ${b.available ? (b.error ? `error: ${b.error.split('\n')[0]}` : b.multiNote) : b.note}`);
  const md = `# Benchmarks

<!-- Generated by \`npm run bench\` (bench/run.mjs; \`-- --publish\` writes BENCHMARKS.md) from ${link(json)} — do not edit by hand;
     the reasoning behind the defaults lives in bench/lib/decisions.md and is copied in below. -->

Generated ${r.generatedAt} by \`${r.command}\`${r.complete ? '' : ' (**partial run**)'}; raw results in [\`${link(json)}\`](${link(json)}).
All figures come from one run on one machine, every backend side by side; ratios compare numbers taken
in that same run. Rerun with \`npm run bench\` (≈ 5–10 minutes, results in \`bench/out/\`; \`-- --publish\` to regenerate this file;
\`npm run bench -- --quick\` for a ≈ 1–2 minute smoke run).

## Machine, versions, parameters

- CPU: ${m.cpu}, ${m.cores} cores; ${m.memoryGiB} GiB RAM; ${m.os}; load average at start ${m.loadAverageAtStart.join(' / ')}
- Node ${m.node}; revkit ${m.revkit} at commit \`${m.commit}\`
${r.backends.map((b) => `- ${b.name}: ${b.available ? b.version : b.note}`).join('\n')}
- update() defaults measured: maxAttempts ${p.updateDefaults.maxAttempts}, deadlineMs ${p.updateDefaults.deadlineMs}, retry ${p.updateDefaults.retry}
- (a): ${p.rounds} alternating rounds of raw loop / update() / update({ combine: false }) / a hand-written \`getRecord\` + \`put({ ifRevision })\` loop over the same store (what the backend write itself costs, without the update loop) / the raw loop that also appends each change to a change log, as watch() and history() need (the target's \`logLoop\`: the floor of any design keeping a log in that engine), each sized from a warm-up to last ≈ ${p.roundMs} ms; store opening is inside the timed part on both sides (the raw loops connect inside \`rawLoop\`)
- (b), (c), (d): ${p.durationMs} ms per cell, writers loop \`update(key, n => n + 1)\` until the time is up; in-flight calls are finished and counted; (c) forks ${p.processes} \`node\` processes × ${p.writersPerProcess} writers that open the store by URL from \`dist/\`
- sweep (chart): ${p.sweepMs} ms per cell at ${p.sweepWriters.filter((w) => w !== p.hotWriters).join(', ')} writers; the ${p.hotWriters}-writer points are the (b) cells
- Policies: ${p.policies.map((x) => `\`${x.id}\` = ${x.label}`).join('; ')}
- ops/s counts committed updates (goodput); p50/p99 are per successful update() call, retries and backoff included;
  attempts/commit = (calls + retries reported by \`onRetry\`) / successful calls — with combining, one batch write commits many callers,
  and a caller waiting in a batch that retries counts that retry;
  failed = calls that threw (\`RetryExhaustedError\`); lost = successes the stored counter does not show (plus any it shows twice)
${notes.length ? `\nSkipped or partial:\n${notes.join('\n')}\n` : ''}
## Targets

${mdTable(T.targets.headers, T.targets.rows)}

## Headline

${mdTable(T.headline.headers, T.headline.rows)}

![hot-key goodput against writers](${link(svg)})

## Results

${['a', 'b', 'c', 'd', 'sweep'].map(section).filter(Boolean).join('\n')}
## Retry policies in this run

${policyFindings(r)}

${decisions}
`;
  mkdirSync(dirname(report), { recursive: true });
  writeFileSync(report, md);
  return [report, svg];
}
