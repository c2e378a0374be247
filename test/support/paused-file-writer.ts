/**
 * A `file:` writer in another process, stopped at a known point of its
 * commit: it holds the store's lock and its temp file is complete, but not
 * yet renamed over the store (its `rename` waits for a word on stdin). The
 * test then lets it go on (`resume()`) or kills it (`kill()`) — no sleeps,
 * every step waits on what the child said.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';

const storeModule = new URL('../../dist/file/index.js', import.meta.url).href;

export interface PausedWriter {
  /** The temp file the child wrote and has not renamed yet. */
  temp: string;
  /** Lets the rename happen; resolves to what the child's put() was told. */
  resume(): Promise<{ ok: boolean; code?: string; message?: string }>;
  /** SIGKILL while paused; resolves once the child is gone (and with it its lock). */
  kill(): Promise<void>;
}

export async function pausedWriter(path: string, key: string, value: unknown): Promise<PausedWriter> {
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, ['--input-type=module', '-e', `
    import { createRequire, syncBuiltinESMExports } from 'node:module';
    const require = createRequire(import.meta.url);
    const fsp = require('node:fs/promises');
    const rename = fsp.rename;
    fsp.rename = async (from, to) => {
      if (String(from).endsWith('.revkit-tmp')) {
        console.log(JSON.stringify({ temp: String(from) }));
        await new Promise((resolve) => process.stdin.once('data', resolve));
      }
      return rename(from, to);
    };
    syncBuiltinESMExports();
    const { FileStore } = await import(${JSON.stringify(storeModule)});
    const s = new FileStore(${JSON.stringify(path)});
    try {
      await s.put(${JSON.stringify(key)}, ${JSON.stringify(value)});
      console.log(JSON.stringify({ ok: true }));
    } catch (err) {
      console.log(JSON.stringify({ ok: false, code: err.code, message: err.message }));
    }
    await s.close();
    process.exit(0);
  `]);
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const nextLine = async () => {
    const line = await lines.next();
    if (line.done) throw new Error(`the paused writer exited early (${await exited}): ${stderr}`);
    return JSON.parse(line.value);
  };
  const { temp } = (await nextLine()) as { temp: string };
  return {
    temp,
    resume: async () => {
      child.stdin.write('go\n');
      const told = await nextLine();
      await exited;
      return told;
    },
    kill: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}
