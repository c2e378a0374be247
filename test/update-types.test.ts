// update()'s overloads: with a `default`, the mutation is given a T, never undefined.
// The first test compiles this very file under strict, so the expectTypeOf lines are checked.
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { MemoryStore } from '../src/memory/index.js';

describe('update() types', () => {
  it('this file compiles under strict', () => {
    const file = fileURLToPath(import.meta.url);
    const program = ts.createProgram([file], {
      strict: true, noEmit: true, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022, lib: ['lib.es2024.d.ts'], skipLibCheck: true, types: ['node'],
    });
    const errors = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    expect(errors).toEqual([]);
  }, 60_000);
});

describe('update() typing', () => {
  it('a mutation given a default receives T; without one, T | undefined', async () => {
    const s = new MemoryStore();
    const flags = await s.update<{ beta?: boolean; n: number }>('cfg/flags', (f) => {
      expectTypeOf(f).toEqualTypeOf<{ beta?: boolean; n: number }>();
      return { ...f, n: f.n + 1 };
    }, { default: { n: 0 } });
    expect(flags?.value).toEqual({ n: 1 });
    const counter = await s.update<number>('jobs/done', (n) => {
      expectTypeOf(n).toEqualTypeOf<number | undefined>();
      return (n ?? 0) + 1;
    });
    expect(counter?.value).toBe(1);
    const factory = await s.update<string[]>('list', (xs) => [...xs, 'x'], { default: () => [] });
    expect(factory?.value).toEqual(['x']);
    await s.close();
  });
});
