import { UnsupportedError, type Store } from '../core/index.js';

export class SqliteStore {
  static async fromUrl(_url: string, _options: unknown): Promise<Store> {
    throw new UnsupportedError('open', 'sqlite', 'this backend is not built yet');
  }
}
