export * from './history.js';
export * from './linearizability.js';
export * from './chain.js';
export * from './parsers.js';
export * from './api-model.js';
export * from './increments.js';
export * from './watch.js';
