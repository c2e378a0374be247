// Shared by the per-issue figure scripts (bench/*-figures.mjs).
import { open } from '../../dist/index.js';

/** `--name value` pairs from the command line. */
export function flagArgs(argv = process.argv.slice(2)) {
  return Object.fromEntries(argv.reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
}

/** The upper middle value: with the odd round counts these scripts use, the median. */
export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** One writer incrementing one key with update() defaults, opening and closing the store inside the timed part. */
export async function revkitLoop(url, key, ops) {
  const store = await open(url);
  try {
    for (let i = 0; i < ops; i++) await store.update(key, (n) => (n ?? 0) + 1);
  } finally {
    await store.close();
  }
}
