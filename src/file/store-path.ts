import { lstatSync, readlinkSync, realpathSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { BackendError, InvalidArgumentError } from '../core/index.js';

/**
 * The path of the file a store path names, with every symlink resolved (its
 * folder created if missing): the file's real path when it exists; else, for a
 * link to a file not yet there, where the link points; else the real path of
 * its folder plus its name. Two paths to one file — a symlink and its target,
 * a linked folder — so give one lock (`<path>.lock`) and one file to replace:
 * renaming the new version over a symlink would turn the link into a file of
 * its own, and the stores behind it would silently part.
 */
export function realStorePath(given: string): string {
  let path = given;
  for (let hops = 0; ; hops++) {
    try {
      return realpathSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw cannotUse(given, err);
    }
    let link = false;
    try {
      link = lstatSync(path).isSymbolicLink();
    } catch {
      // Not there at all: a new store.
    }
    if (link && hops < 40) {
      path = resolve(dirname(path), readlinkSync(path));
      continue;
    }
    if (link) throw new InvalidArgumentError(`the store path ${given} goes through more than 40 symbolic links`);
    // A misspelled path must not quietly become a new, empty store: the folder must exist (the file may be new).
    let folder: string;
    try {
      folder = realpathSync(dirname(path));
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new InvalidArgumentError(`file: the folder ${dirname(path)} does not exist — check the path for a typo, or create the folder first`);
      }
      throw new BackendError(`cannot open the folder of ${path}: ${(cause as Error).message}`, { transient: false, cause });
    }
    return join(folder, basename(path));
  }
}

function cannotUse(path: string, cause: unknown): BackendError {
  return new BackendError(`cannot resolve the store path ${path}: ${(cause as Error).message}`, { transient: false, cause });
}
