import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
// @ts-expect-error a plain .mjs module of the benchmarks, without types
import { flameGraph } from '../bench/lib/flame.mjs';

const frame = (functionName: string, url = 'file:///x/dist/core/update.js') => ({ functionName, url, lineNumber: 0, columnNumber: 0, scriptId: '1' });

describe('bench/lib/flame.mjs', () => {
  it('draws each call path as wide as its share of the samples, children above their caller', () => {
    // root → a (2 samples: 1 self, 1 in c) and b (1 sample): a is 2/3 wide, b 1/3, c 1/3 above a.
    const profile = {
      nodes: [
        { id: 1, callFrame: frame('(root)', ''), children: [2, 3] },
        { id: 2, callFrame: frame('a'), children: [4] },
        { id: 3, callFrame: frame('b', 'node:internal/timers'), children: [] },
        { id: 4, callFrame: frame('c', 'file:///x/node_modules/pg/lib/client.js'), children: [] },
      ],
      samples: [2, 4, 3],
      timeDeltas: [10, 10, 10],
    };
    const file = join(mkdtempSync(join(tmpdir(), 'revkit-flame-')), 'p.cpuprofile');
    writeFileSync(file, JSON.stringify(profile));
    const svg: string = flameGraph(file, 'test & <title>');
    const box = (name: string) => {
      const m = new RegExp(`<title>${name} [^<]*— ([\\d.]+) %</title><rect x="([\\d.]+)" y="(\\d+)" width="([\\d.]+)"`).exec(svg);
      expect(m, name).not.toBeNull();
      return { share: Number(m?.[1]), x: Number(m?.[2]), y: Number(m?.[3]), width: Number(m?.[4]) };
    };
    const [a, b, c] = [box('a'), box('b'), box('c')];
    expect([a.share, b.share, c.share]).toEqual([66.7, 33.3, 33.3]);
    expect(Math.abs(a.width - 800)).toBeLessThanOrEqual(1);
    expect(b.x).toBeCloseTo(800, 0);
    expect(c.y).toBeLessThan(a.y);
    expect(svg).toContain('test &amp; &lt;title&gt;');
    expect(svg).toContain('fill="#f0a050"'); // revkit's own code
    expect(svg).toContain('fill="#7fa7d8"'); // node_modules
  });
});
