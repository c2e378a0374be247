import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { cruise, type ICruiseResult } from 'dependency-cruiser';
import { describe, expect, it } from 'vitest';

// The layering of src/ (docs/architecture.md): no import cycle, core imports core only,
// a backend imports core only, and so on — the rules are in .dependency-cruiser.cjs.
const root = fileURLToPath(new URL('..', import.meta.url));
const config = createRequire(import.meta.url)('../.dependency-cruiser.cjs') as {
  forbidden: Array<{ name: string }>;
  options: Record<string, unknown>;
};

async function violations(baseDir: string, tsConfig?: string): Promise<string[]> {
  const result = await cruise(
    ['src'],
    { ...config.options, ruleSet: { forbidden: config.forbidden }, validate: true, baseDir, tsConfig: tsConfig ? { fileName: tsConfig } : undefined, outputType: 'json' } as never,
  );
  const output = (typeof result.output === 'string' ? JSON.parse(result.output) : result.output) as ICruiseResult;
  expect(output.summary.totalCruised).toBeGreaterThan(0);
  return output.summary.violations.map((v) => `${v.rule.name}: ${v.from} → ${v.to}${v.cycle ? ` (cycle ${v.cycle.map((c) => (typeof c === 'string' ? c : c.name)).join(' → ')})` : ''}`);
}

describe('architecture', () => {
  it('src/ breaks none of the layering rules and has no import cycle', async () => {
    expect(await violations(root, `${root}tsconfig.json`)).toEqual([]);
  }, 120_000);

  it('the check catches a cycle, a core file importing a backend and a backend importing the server, the test kit importing the server (canary: test/fixtures/layering)', async () => {
    const found = await violations(fileURLToPath(new URL('fixtures/layering/', import.meta.url)));
    expect(found).toEqual(expect.arrayContaining([
      expect.stringMatching(/^no-circular: src\/core\/(first|second)\.ts → src\/core\/(first|second)\.ts/),
      'core-imports-core-only: src/core/first.ts → src/memory/index.ts',
      'backend-imports-core-only: src/redis/index.ts → src/server/index.ts',
      'server-and-testing-apart: src/testing/index.ts → src/server/index.ts',
    ]));
  }, 120_000);

  it('every source file can be read in one sitting: 400 lines at most, or its first lines say why it is longer', () => {
    const tooLong = (readdirSync(`${root}src`, { recursive: true }) as string[])
      .filter((f) => f.endsWith('.ts'))
      .map((f) => ({ f, lines: readFileSync(`${root}src/${f}`, 'utf8').split('\n') }))
      .filter(({ lines }) => lines.length > 400 && !lines.slice(0, 10).some((l) => /Longer than 400 lines because/.test(l)))
      .map(({ f, lines }) => `src/${f}: ${lines.length} lines`);
    expect(tooLong).toEqual([]);
  });
});
