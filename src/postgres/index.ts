import { UnsupportedError, type Store } from '../core/index.js';

// Placeholder until the postgres backend lands (its own issue).
export class PostgresStore {
  static async fromUrl(_url: string, _options: unknown): Promise<Store> {
    throw new UnsupportedError('open', 'postgres', 'this backend is not built yet');
  }
}
