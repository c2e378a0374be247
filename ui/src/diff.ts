// A line diff for JSON values (pretty-printed), for the conflict view and history.

export type DiffLine = { op: ' ' | '-' | '+'; text: string };

/** Largest table the LCS may use; beyond it the middle is shown as removed-then-added. */
const MAX_CELLS = 4_000_000;

export function diffLines(a: string, b: string): DiffLine[] {
  const x = a.split('\n');
  const y = b.split('\n');
  let start = 0;
  while (start < x.length && start < y.length && x[start] === y[start]) start++;
  let endX = x.length;
  let endY = y.length;
  while (endX > start && endY > start && x[endX - 1] === y[endY - 1]) { endX--; endY--; }
  const head = x.slice(0, start).map((text): DiffLine => ({ op: ' ', text }));
  const tail = x.slice(endX).map((text): DiffLine => ({ op: ' ', text }));
  return [...head, ...middle(x.slice(start, endX), y.slice(start, endY)), ...tail];
}

function middle(x: string[], y: string[]): DiffLine[] {
  const n = x.length;
  const m = y.length;
  if (n * m > MAX_CELLS) return [...x.map((text): DiffLine => ({ op: '-', text })), ...y.map((text): DiffLine => ({ op: '+', text }))];
  // lcs[i][j]: longest common subsequence of x[i..] and y[j..], row-major.
  const w = m + 1;
  const lcs = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i * w + j] = x[i] === y[j] ? (lcs[(i + 1) * w + j + 1] as number) + 1 : Math.max(lcs[(i + 1) * w + j] as number, lcs[i * w + j + 1] as number);
    }
  }
  const out: DiffLine[] = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { out.push({ op: ' ', text: x[i] as string }); i++; j++; }
    else if ((lcs[(i + 1) * w + j] as number) >= (lcs[i * w + j + 1] as number)) out.push({ op: '-', text: x[i++] as string });
    else out.push({ op: '+', text: y[j++] as string });
  }
  while (i < n) out.push({ op: '-', text: x[i++] as string });
  while (j < m) out.push({ op: '+', text: y[j++] as string });
  return out;
}

export const changed = (d: DiffLine[]): number => d.filter((l) => l.op !== ' ').length;
