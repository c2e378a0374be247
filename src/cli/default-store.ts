import { mkdirSync } from 'node:fs';

/** The store every command uses when given none. */
export const DEFAULT_STORE = 'sqlite:./data/revkit.db';

/**
 * The store URL a command opens: the default one's folder (./data) is
 * created on first use; any other path must exist — a store never creates
 * the folder of a path it was given (a typo would become a new, empty store).
 */
export function storeUrl(url: string | undefined): string {
  if (url === undefined || url === DEFAULT_STORE) {
    mkdirSync('data', { recursive: true });
    return DEFAULT_STORE;
  }
  return url;
}
