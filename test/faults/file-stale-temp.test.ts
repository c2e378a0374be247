/**
 * A `file:` writer SIGKILLed mid-commit (its temp file complete, not yet
 * renamed) leaves that temp file behind; a store that has been writing all
 * along removes it when it next takes the lock — not only a process's first
 * commit. Needs `npm run build` (the killed writer loads dist/).
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileStore } from '../../src/file/index.js';
import { tempDir } from '../helpers.js';
import { pausedWriter } from '../support/paused-file-writer.js';

const dir = tempDir('file-stale-temp');

describe('file: temp files of killed writers', () => {
  it('a writer SIGKILLed between writing its temp file and renaming it: a long-running store\'s next commit removes the temp file; nothing of the killed write is visible', async () => {
    const path = join(dir, 'state.json');
    const s = new FileStore(path);
    await s.put('k', 1);
    // A sibling's live temp file, to show the cleanup is for this store's own only.
    const sibling = await pausedWriter(join(dir, 'state.json.bak'), 'k', 'backup');

    for (let round = 0; round < 3; round++) {
      const victim = await pausedWriter(path, 'victim', round);
      expect(existsSync(victim.temp)).toBe(true);
      await victim.kill();
      // The kernel dropped the victim's lock with it; its temp file stays until a writer takes the lock.
      expect(existsSync(victim.temp)).toBe(true);
      const e = await s.put('k', round + 2);
      expect(e.value).toBe(round + 2);
      expect(existsSync(victim.temp)).toBe(false);
      expect(readdirSync(dir).filter((n) => n.startsWith('.state.json.') && !n.startsWith('.state.json.bak.'))).toEqual([]);
      expect(await s.get('victim')).toBeNull();
    }

    expect(existsSync(sibling.temp)).toBe(true);
    expect(await sibling.resume()).toEqual({ ok: true });
    const doc = JSON.parse(readFileSync(path, 'utf8'));
    expect(doc.records.k.value).toBe(4);
    expect(doc.records.victim).toBeUndefined();
    await s.close();
  });
});
