import Fastify from 'fastify';
import { MAX_KEY_BYTES } from '../core/index.js';
import { createContext, type ServerPluginOptions } from './context.js';
import { hostGuard } from './host-check.js';
import type { CreateServerOptions, RevkitServer } from './options.js';
import { admissionPlugin } from './plugins/admission.js';
import { bodyPlugin } from './plugins/body.js';
import { clockHeaderPlugin } from './plugins/clock-header.js';
import { hostGuardPlugin } from './plugins/host-guard.js';
import { notFoundPlugin } from './plugins/not-found.js';
import { clientErrorHandler, frameworkErrors, problemsPlugin } from './plugins/problems.js';
import { requestMetricsPlugin } from './plugins/request-metrics.js';
import { adminRoutes } from './routes/admin.js';
import { consolePlugin } from './routes/console.js';
import { keysRoutes } from './routes/keys.js';
import { operationsRoutes } from './routes/operations.js';
import { txnRoutes } from './routes/txn.js';
import { watchRoutes } from './routes/watch.js';

export { DEFAULT_LIMITS, DEFAULT_TIMEOUTS, type CreateServerOptions, type RevkitServer, type ServerLimits, type ServerTimeouts } from './options.js';

/**
 * Creates the HTTP server (docs/semantics.md, "HTTP server") over a store (not yet listening):
 * the shared parts first (plugins/, each registered on this instance with fastify-plugin, so
 * that every route registered after them has their hooks), then one plugin per resource (routes/).
 */
export async function createServer(options: CreateServerOptions): Promise<RevkitServer> {
  const ctx = await createContext(options);
  const { limits, timeouts } = ctx;
  let url: string | undefined;

  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: limits.maxBodyBytes,
    connectionTimeout: timeouts.idleMs,
    keepAliveTimeout: timeouts.keepAliveMs,
    requestTimeout: Math.max(timeouts.requestMs, timeouts.headersMs),
    http: { headersTimeout: timeouts.headersMs, connectionsCheckingInterval: timeouts.checkIntervalMs },
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    exposeHeadRoutes: true,
    routerOptions: { maxParamLength: 4 * MAX_KEY_BYTES },
    frameworkErrors,
    clientErrorHandler,
  });
  const routes: string[] = [];
  app.addHook('onRoute', (r) => {
    for (const m of [r.method].flat()) routes.push(`${m} ${r.url}`);
  });

  const shared: ServerPluginOptions = { ctx };
  await app.register(problemsPlugin, shared);
  await app.register(hostGuardPlugin, shared); // before anything else, on every request
  await app.register(admissionPlugin, shared);
  await app.register(requestMetricsPlugin, shared);
  await app.register(clockHeaderPlugin, shared);
  await app.register(bodyPlugin, shared);
  await app.register(notFoundPlugin);

  await app.register(operationsRoutes, shared);
  await app.register(consolePlugin); // the web console at /ui
  await app.register(keysRoutes, shared);
  await app.register(txnRoutes, shared);
  await app.register(watchRoutes, shared);
  await app.register(adminRoutes, shared);

  app.addHook('preClose', async () => {
    ctx.closing = true;
    for (const w of ctx.watches) w.abort();
    ctx.clock.stop(); // not awaited: a head read of an unreachable store may take long, and nothing waits for its answer
  });
  app.addHook('onClose', async () => {
    if (ctx.ownsStore) await ctx.store.close();
  });

  return {
    app,
    store: ctx.store,
    metrics: ctx.metrics,
    routes,
    get url() {
      return url;
    },
    async listen(listenOptions = {}) {
      const host = listenOptions.host ?? '127.0.0.1';
      ctx.hostAllowed = hostGuard(host, options.allowedHosts);
      await app.listen({ host, port: listenOptions.port ?? 0 });
      const address = app.server.address();
      const port = typeof address === 'object' && address ? address.port : listenOptions.port;
      url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
      return url;
    },
    async close() {
      await app.close();
    },
  };
}
