import { UnsupportedError, type Store } from '../core/index.js';

// Placeholder until the nats backend lands (its own issue).
export class NatsStore {
  static async fromUrl(_url: string, _options: unknown): Promise<Store> {
    throw new UnsupportedError('open', 'nats', 'this backend is not built yet');
  }
}
