export * from './core/index.js';
export { open, supportedSchemes, type OpenOptions } from './open.js';
export { MemoryStore, memoryStore } from './memory/index.js';
