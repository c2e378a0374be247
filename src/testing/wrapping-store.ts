import {
  BaseStore, UnsupportedError,
  type Capabilities, type HistoryOptions, type ListOptions, type ListPage, type Store, type StoredRecord, type WatchEvent, type WatchOptions,
} from '../core/index.js';

/**
 * A store in front of another one: the testing wrappers (the canary, the
 * history recorder) change how single-key reads and writes happen and pass
 * lists, watches and history straight through.
 */
export abstract class WrappingStore extends BaseStore {
  readonly backend: string;
  readonly capabilities: Capabilities;

  constructor(protected readonly inner: Store, backend: string) {
    super();
    this.backend = backend;
    this.capabilities = inner.capabilities;
  }

  /** A wrapper combines update()s only where the store it wraps would (not over HttpStore). */
  protected override get combinesUpdates(): boolean {
    return (this.inner as unknown as { combinesUpdates?: boolean }).combinesUpdates === true;
  }

  override copyValue(value: unknown): unknown {
    const inner = this.inner as Partial<Pick<BaseStore, 'copyValue'>>;
    return inner.copyValue ? inner.copyValue(value) : super.copyValue(value);
  }

  override checkValue(value: unknown, key?: string): unknown {
    const inner = this.inner as Partial<Pick<BaseStore, 'checkValue'>>;
    return inner.checkValue ? inner.checkValue(value, key) : value;
  }

  list<T = unknown>(options?: ListOptions): Promise<ListPage<T>> {
    return this.inner.list<T>(options);
  }

  watch<T = unknown>(options: WatchOptions): AsyncIterable<WatchEvent<T>> {
    return this.inner.watch<T>(options);
  }

  history<T = unknown>(key: string, options?: HistoryOptions): Promise<StoredRecord<T>[]> {
    return this.inner.history<T>(key, options);
  }

  headRevision(): Promise<number> {
    return this.inner.headRevision ? this.inner.headRevision() : Promise.reject(new UnsupportedError('headRevision', this.inner.backend));
  }
}
