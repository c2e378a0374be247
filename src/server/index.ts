export { createServer } from './app.js';
export { DEFAULT_LIMITS, DEFAULT_TIMEOUTS, type CreateServerOptions, type RevkitServer, type ServerLimits, type ServerTimeouts } from './options.js';
export { HttpStore, type HttpStoreOptions } from '../http/index.js';
export { Authenticator, parseTokens, loadTokensFile, allows, unusableToken, MIN_TOKEN_LENGTH, type Access, type Scope, type TokenSpec, type Principal } from './auth.js';
export { applyMergePatch } from './merge-patch.js';
export { openApiDocument } from './openapi.js';
export { HTTP_ERROR_CODES, HttpProblem, type Problem } from './problem.js';
export { ServerMetrics } from './metrics.js';
