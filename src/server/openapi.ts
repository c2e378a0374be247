/**
 * The OpenAPI 3.1 description of the server, served at /openapi.json.
 * Longer than 400 lines because it is one data document, read top to bottom
 * in the order of the published description (info, paths, components):
 * cutting it into files would only scatter one JSON object. Kept by hand
 * next to the routes in routes/; test/server-openapi.test.ts validates it
 * against the OpenAPI schema and checks that every route is in it.
 */
import { readFileSync } from 'node:fs';

/** The package's version (package.json, two folders up from src/server/ and dist/server/). */
const VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const problemResponse = (description: string) => ({
  description,
  content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
});

const ref = (name: string) => ({ $ref: `#/components/responses/${name}` });

const keyParam = {
  name: 'key',
  in: 'path',
  required: true,
  description:
    'The key, percent-encoded (encodeURIComponent). Literal `/` separates levels and may be left unencoded; `%2F` also decodes to `/`. ' +
    'For GET, a path ending in `/history` is the history route; read a key whose last level is `history` with that slash encoded (`a%2Fhistory`). ' +
    'At most 1024 UTF-8 bytes, no control characters.',
  schema: { type: 'string' },
};

const ifMatch = {
  name: 'If-Match',
  in: 'header',
  required: false,
  description:
    'Write only if the key is at one of these revisions (`"12"`), or `*`: only if it has a live value. Strong comparison: a weak validator (`W/"12"`) never matches. ' +
    'revkit extension: the revision of a deletion (see the 404 body of a deleted key, `currentEtag`) also matches, so a writer that read before a delete loses cleanly.',
  schema: { type: 'string' },
  example: '"12"',
};

const ifNoneMatch = {
  name: 'If-None-Match',
  in: 'header',
  required: false,
  description: '`*`: write only if the key has no live value (create). On GET: `304` when the current ETag matches.',
  schema: { type: 'string' },
  example: '*',
};

const writerHeader = {
  name: 'Revkit-Writer',
  in: 'header',
  required: false,
  description: 'Writer token stored with the write: 1 to 200 characters without control characters, percent-encoded as UTF-8 (`encodeURIComponent`; a token of `[A-Za-z0-9_-]` is sent as it is). Returned the same way as `Revkit-Writer` on reads, so a client can recognise its own write after a lost acknowledgement.',
  schema: { type: 'string', minLength: 1, maxLength: 2400 },
};

const entryHeaders = {
  ETag: { description: 'Strong validator: the revision in quotes, `"12"`.', schema: { type: 'string' } },
  'Revkit-Created-Revision': { description: 'Revision that created this incarnation of the key.', schema: { type: 'string' } },
  'Revkit-Updated-At': { description: 'Commit time, milliseconds since the epoch.', schema: { type: 'string' } },
  'Revkit-Expires-At': { description: 'Expiry time when the key has a TTL, milliseconds since the epoch.', schema: { type: 'string' } },
  'Last-Modified': { description: 'Commit time as an HTTP date.', schema: { type: 'string' } },
};

const etagHeader = { ETag: { description: 'The revision of the write, `"12"`.', schema: { type: 'string' } } };

export const openApiDocument = {
  openapi: '3.1.0',
  info: {
    title: 'revkit',
    version: VERSION,
    summary: 'Shared state that never loses an update: every write is a compare-and-swap on a revision.',
    description: [
      'HTTP/1.1 JSON API over any revkit store (memory, SQLite, a JSON file, PostgreSQL, Redis, NATS JetStream KV, or another revkit server): every write is a compare-and-swap on a revision, exposed as ETag / If-Match.',
      '',
      '**Revisions and ETags.** Every read and write of a key returns `ETag: "<revision>"`. Send it back in `If-Match` to update, or `If-None-Match: *` to create. ' +
        'A failed precondition is `412` whose problem body names the current ETag (`currentEtag`). When the server runs with `--require-preconditions`, unconditional PUT, DELETE and txn writes get `428`.',
      '',
      '**Errors** are `application/problem+json` (RFC 9457) with a stable `code`: the revkit codes (`ERR_CONFLICT` 412 for a failed If-Match / If-None-Match, 409 for a failed `/v1/txn` check, `ERR_VALIDATION` 422, `ERR_RETRY_EXHAUSTED` 409/503, `ERR_UNSUPPORTED` 501, ' +
        '`ERR_TOO_LARGE` 413, `ERR_INVALID_KEY` 400, `ERR_INVALID_ARGUMENT` 400, `ERR_BACKEND` 503, `ERR_OUTCOME_UNKNOWN` 503 (a write whose acknowledgement was lost and whose outcome cannot be established: it may or may not have committed), `ERR_HISTORY_GONE` 410, `ERR_CLOSED` 503) and the HTTP-level codes ' +
        '`ERR_BAD_REQUEST` 400 (malformed JSON, header or parameter), `ERR_UNAUTHORIZED` 401, `ERR_FORBIDDEN` 403, `ERR_NOT_FOUND` 404, `ERR_METHOD_NOT_ALLOWED` 405, ' +
        '`ERR_REQUEST_TIMEOUT` 408, `ERR_PAYLOAD_TOO_LARGE` 413 (request body over the limit), `ERR_URI_TOO_LONG` 414, `ERR_UNSUPPORTED_MEDIA_TYPE` 415, `ERR_MISDIRECTED_REQUEST` 421 (a Host the server does not answer for: the DNS-rebinding guard), ' +
        '`ERR_PRECONDITION_REQUIRED` 428, `ERR_HEADERS_TOO_LARGE` 431, `ERR_UNAVAILABLE` 503, `ERR_INTERNAL` 500.',
      '',
      '**Authentication.** `Authorization: Bearer <token>`. Tokens come from `--admin-token` (admin on every key) and from a tokens file (`--tokens FILE`), a JSON array ' +
        '`[{ "name": "app", "token": "<at least 16 characters>", "scopes": [{ "prefix": "app/", "access": "write" }] }]`. `access` is `read`, `write` or `admin`; ' +
        'admin implies write implies read; a scope covers every key starting with its prefix (`""` covers all). Listing and watching need the requested prefix inside one scope; ' +
        '`/metrics` needs admin. No or a bad token: `401`; outside the token\'s scopes: `403`. `/healthz`, `/readyz` and `/openapi.json` are public.',
      '',
      '**The web console** is served at `/ui/` for a browser (`GET /` and `GET /ui` redirect there); its HTML, script and stylesheet are not operations of this API and are not listed here.',
      '',
      '**Limits.** Keys ≤ 1024 UTF-8 bytes; values ≤ 1 MiB encoded (`413 ERR_TOO_LARGE`); bodies ≤ 2 MiB (`413 ERR_PAYLOAD_TOO_LARGE`); JSON nesting ≤ 512; list pages ≤ 1000; ' +
        'txn ≤ 1000 ops; headers must arrive within 10 s and the whole request within 30 s. See `GET /v1/info` for the values of a running server.',
    ].join('\n'),
    license: { name: 'MIT', identifier: 'MIT' },
  },
  servers: [{ url: '/' }],
  security: [{ bearer: [] }],
  tags: [
    { name: 'keys', description: 'Read, write, patch, delete and list keys; a key\'s history. Every write is a compare-and-swap on the revision in `If-Match`.' },
    { name: 'transactions', description: 'Atomic batches of checks and writes over many keys, committed with one revision.' },
    { name: 'watch', description: 'Every change, in revision order, as Server-Sent Events; resumable with `Last-Event-ID`.' },
    { name: 'operations', description: 'Liveness, readiness, metrics, server info and this document.' },
  ],
  paths: {
    '/v1/kv/{key}': {
      parameters: [keyParam],
      get: {
        tags: ['keys'],
        operationId: 'getKey',
        summary: 'Read a key: the body is the stored JSON value itself',
        parameters: [
          { ...ifNoneMatch, description: '`304 Not Modified` when the current ETag matches (weak comparison), or `*` and the key exists.' },
          { ...ifMatch, description: '`412` unless the key is live at one of these revisions (strong comparison).' },
        ],
        responses: {
          '200': { description: 'The stored value', headers: { ...entryHeaders, 'Revkit-Writer': { description: 'Writer token of this revision, when one was given.', schema: { type: 'string' } } }, content: { 'application/json': { schema: {} } } },
          '304': { description: 'Not modified (If-None-Match matched)', headers: entryHeaders },
          '400': ref('BadRequest'),
          '401': ref('Unauthorized'),
          '403': ref('Forbidden'),
          '404': problemResponse('No live value. For a deleted key the body carries `deleted: true`, `revision` and `currentEtag` (the tombstone revision, usable in If-Match).'),
          '412': ref('PreconditionFailed'),
          '503': ref('Unavailable'),
        },
      },
      put: {
        tags: ['keys'],
        operationId: 'putKey',
        summary: 'Write a key (create, update or overwrite)',
        parameters: [ifMatch, ifNoneMatch, writerHeader, { name: 'ttlMs', in: 'query', required: false, description: 'Expire the value after this many milliseconds.', schema: { type: 'integer', minimum: 1 } }],
        requestBody: { required: true, description: 'The JSON value to store.', content: { 'application/json': { schema: {} } } },
        responses: {
          '200': { description: 'Updated', headers: etagHeader, content: { 'application/json': { schema: { $ref: '#/components/schemas/EntryMeta' } } } },
          '201': { description: 'Created (a new incarnation of the key)', headers: etagHeader, content: { 'application/json': { schema: { $ref: '#/components/schemas/EntryMeta' } } } },
          '400': ref('BadRequest'),
          '401': ref('Unauthorized'),
          '403': ref('Forbidden'),
          '412': ref('PreconditionFailed'),
          '413': ref('TooLarge'),
          '415': ref('UnsupportedMediaType'),
          '422': ref('Invalid'),
          '428': ref('PreconditionRequired'),
          '501': ref('Unsupported'),
          '503': ref('Unavailable'),
        },
      },
      delete: {
        tags: ['keys'],
        operationId: 'deleteKey',
        summary: 'Delete a key (writes a tombstone whose revision guards later writes)',
        parameters: [ifMatch, ifNoneMatch, writerHeader],
        responses: {
          '200': { description: 'Deleted', headers: etagHeader, content: { 'application/json': { schema: { $ref: '#/components/schemas/Deleted' } } } },
          '400': ref('BadRequest'),
          '401': ref('Unauthorized'),
          '403': ref('Forbidden'),
          '404': problemResponse('Nothing to delete'),
          '412': ref('PreconditionFailed'),
          '428': ref('PreconditionRequired'),
          '503': ref('Unavailable'),
        },
      },
      patch: {
        tags: ['keys'],
        operationId: 'patchKey',
        summary: 'Apply a JSON Merge Patch (RFC 7396) server-side',
        description:
          'Without preconditions the patch runs in the server\'s read-modify-write loop (re-read and re-apply on conflict, so no update is lost); with If-Match it applies only at that revision. ' +
          'The merged value is validated before anything is written. A patch that changes nothing writes nothing. `--require-preconditions` does not apply: PATCH is a compare-and-swap loop. ' +
          'The body must be sent as `application/merge-patch+json`: any other Content-Type, `application/json` included (a JSON document is not a patch), is 415 with `Accept-Patch: application/merge-patch+json`, before the body is read.',
        parameters: [ifMatch, ifNoneMatch, writerHeader],
        requestBody: { required: true, content: { 'application/merge-patch+json': { schema: {} } } },
        responses: {
          '200': { description: 'The value after the patch', headers: entryHeaders, content: { 'application/json': { schema: {} } } },
          '400': ref('BadRequest'),
          '401': ref('Unauthorized'),
          '403': ref('Forbidden'),
          '409': problemResponse('The update loop gave up on conflicts (ERR_RETRY_EXHAUSTED)'),
          '412': ref('PreconditionFailed'),
          '413': ref('TooLarge'),
          '415': {
            ...problemResponse('Not sent as a JSON Merge Patch: a Content-Type other than application/merge-patch+json, application/json included (ERR_UNSUPPORTED_MEDIA_TYPE)'),
            headers: { 'Accept-Patch': { description: 'The one media type PATCH takes', schema: { type: 'string', enum: ['application/merge-patch+json'] } } },
          },
          '422': ref('Invalid'),
          '503': ref('Unavailable'),
        },
      },
    },
    '/v1/kv/{key}/history': {
      parameters: [keyParam],
      get: {
        tags: ['keys'],
        operationId: 'keyHistory',
        summary: 'Past revisions of a key, newest first, deletions included',
        parameters: [{ name: 'limit', in: 'query', required: false, schema: { type: 'integer', minimum: 1 } }],
        responses: {
          '200': { description: 'History', content: { 'application/json': { schema: { $ref: '#/components/schemas/History' } } } },
          '400': ref('BadRequest'),
          '401': ref('Unauthorized'),
          '403': ref('Forbidden'),
          '501': ref('Unsupported'),
          '503': ref('Unavailable'),
        },
      },
    },
    '/v1/kv': {
      get: {
        tags: ['keys'],
        operationId: 'listKeys',
        summary: 'Live entries in key order (UTF-8 byte order), paginated',
        parameters: [
          { name: 'prefix', in: 'query', required: false, schema: { type: 'string' } },
          { name: 'limit', in: 'query', required: false, description: 'Page size; clamped to the server limit (1000).', schema: { type: 'integer', minimum: 1 } },
          { name: 'after', in: 'query', required: false, description: 'The `cursor` of the previous page.', schema: { type: 'string' } },
        ],
        responses: {
          '200': { description: 'A page', content: { 'application/json': { schema: { $ref: '#/components/schemas/Page' } } } },
          '400': ref('BadRequest'),
          '401': ref('Unauthorized'),
          '403': ref('Forbidden'),
          '503': ref('Unavailable'),
        },
      },
    },
    '/v1/txn': {
      post: {
        tags: ['transactions'],
        operationId: 'commitTransaction',
        summary: 'Atomic batch: all checks pass and all writes apply together with one revision, or nothing applies',
        requestBody: { required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/Transaction' } } } },
        responses: {
          '200': { description: 'Committed', headers: etagHeader, content: { 'application/json': { schema: { type: 'object', required: ['revision'], properties: { revision: { type: 'integer' } } } } } },
          '400': ref('BadRequest'),
          '401': ref('Unauthorized'),
          '403': ref('Forbidden'),
          '409': problemResponse('A check failed: `checks` lists every failed check with its current revision and `currentEtag`'),
          '413': ref('TooLarge'),
          '415': ref('UnsupportedMediaType'),
          '422': ref('Invalid'),
          '428': ref('PreconditionRequired'),
          '501': ref('Unsupported'),
          '503': ref('Unavailable'),
        },
      },
    },
    '/v1/watch': {
      get: {
        tags: ['watch'],
        operationId: 'watch',
        summary: 'Changes as Server-Sent Events',
        description:
          'Each change is an event `put` or `delete` whose data is JSON (`WatchEvent`) and whose `id` is `<revision>.<index>`: the events of one atomic commit share a revision ' +
          'and are numbered within it, so reconnecting with `Last-Event-ID` (which EventSource does by itself) resumes exactly after the last event received, also in the middle of a commit. ' +
          'If the changes after `fromRevision` are no longer kept, the stream sends `event: error` with a problem body (`ERR_HISTORY_GONE`, `oldestRevision`) and ends. ' +
          'Comment lines keep idle streams open.',
        parameters: [
          { name: 'prefix', in: 'query', required: false, schema: { type: 'string' } },
          { name: 'key', in: 'query', required: false, description: 'Watch one key (instead of a prefix).', schema: { type: 'string' } },
          { name: 'fromRevision', in: 'query', required: false, description: 'Deliver every change after this revision; omitted: changes from now on.', schema: { type: 'integer', minimum: 0 } },
          { name: 'Last-Event-ID', in: 'header', required: false, description: 'Resume after this event id (`<revision>.<index>`), or after this whole revision (overrides fromRevision).', schema: { type: 'string' } },
          {
            name: 'since', in: 'query', required: false,
            description: 'Without fromRevision: start "from now" as of this moment of the server\'s clock (`<run>;<ms>`, from a `Revkit-Clock` response header), not as of the request\'s arrival — ' +
              'the changes committed after it are delivered (and a few from up to a moment before). A run other than the server\'s current one is 503 with `Retry-After: 0`: read the clock again.',
            schema: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,32};[0-9]{1,15}(\\.[0-9]{1,6})?$' },
          },
        ],
        responses: {
          '200': {
            description: 'An event stream',
            content: {
              'text/event-stream': {
                // contentSchema: what the data of each event is.
                schema: { type: 'string', description: 'Server-Sent Events; the `data` of each `put` / `delete` event is a `WatchEvent` as JSON.', contentMediaType: 'text/event-stream', contentSchema: { $ref: '#/components/schemas/WatchEvent' } },
              },
            },
          },
          '400': ref('BadRequest'),
          '401': ref('Unauthorized'),
          '403': ref('Forbidden'),
          '501': ref('Unsupported'),
        },
      },
    },
    '/v1/info': {
      get: {
        tags: ['operations'],
        operationId: 'info',
        summary: 'Backend, capabilities and limits of this server, the store\'s replication state, and the caller\'s scopes',
        responses: {
          '200': { description: 'Info', content: { 'application/json': { schema: { $ref: '#/components/schemas/Info' } } } },
          '401': ref('Unauthorized'),
        },
      },
    },
    '/v1/admin/accept-loss': {
      post: {
        tags: ['operations'],
        operationId: 'acceptLoss',
        summary: 'Accept a detected loss of acknowledged writes (admin on every key)',
        description: 'After a failover to a replica that missed acknowledged writes, every operation answers 503 ERR_DATA_LOST until an operator accepts the loss here. '
          + 'Answers what was accepted (the `lost` of the replication state before, null when nothing was lost) and the replication state after. 501 for a store with nothing to accept (memory, SQLite, the file).',
        responses: {
          '200': {
            description: 'Accepted',
            content: { 'application/json': { schema: { type: 'object', properties: { accepted: { oneOf: [{ $ref: '#/components/schemas/Loss' }, { type: 'null' }] }, replication: { $ref: '#/components/schemas/Replication' } } } } },
          },
          '401': ref('Unauthorized'),
          '403': ref('Forbidden'),
          '501': ref('Unsupported'),
          '503': ref('Unavailable'),
        },
      },
    },
    '/healthz': {
      get: {
        tags: ['operations'], operationId: 'healthz', summary: 'The process is up', security: [],
        responses: { '200': { description: 'Up', content: { 'application/json': { schema: { type: 'object', properties: { status: { type: 'string' } } } } } } },
      },
    },
    '/readyz': {
      get: {
        tags: ['operations'], operationId: 'readyz', summary: 'The store is reachable and reports no unaccepted loss of acknowledged writes', security: [],
        description: '503 ERR_DATA_LOST (with `details` and `replication`) while the store reports a loss an operator has not accepted (POST /v1/admin/accept-loss).',
        responses: {
          '200': {
            description: 'Ready',
            content: { 'application/json': { schema: { type: 'object', properties: { status: { type: 'string' }, backend: { type: 'string' }, serving: { type: ['string', 'null'], description: 'The member of a replicated store that serves this server.' }, replication: { $ref: '#/components/schemas/Replication' } } } } },
          },
          '503': ref('Unavailable'),
        },
      },
    },
    '/metrics': {
      get: {
        tags: ['operations'],
        operationId: 'metrics',
        summary: 'Prometheus text: requests by route and status, latency histogram, conflicts, retries, open watch streams, memory',
        responses: {
          '200': { description: 'Metrics', content: { 'text/plain': { schema: { type: 'string' } } } },
          '401': ref('Unauthorized'),
          '403': ref('Forbidden'),
        },
      },
    },
    '/openapi.json': {
      get: {
        tags: ['operations'], operationId: 'openapi', summary: 'This document', security: [],
        responses: { '200': { description: 'OpenAPI 3.1', content: { 'application/json': { schema: { type: 'object' } } } } },
      },
    },
  },
  components: {
    securitySchemes: {
      bearer: { type: 'http', scheme: 'bearer', description: 'A token from --admin-token or the tokens file.' },
    },
    responses: {
      BadRequest: problemResponse('Malformed request: bad JSON (ERR_BAD_REQUEST), bad key (ERR_INVALID_KEY), bad parameter or header (ERR_BAD_REQUEST, ERR_INVALID_ARGUMENT)'),
      Unauthorized: problemResponse('No bearer token, or not a valid one (ERR_UNAUTHORIZED)'),
      Forbidden: problemResponse('The token has no access to this key or prefix (ERR_FORBIDDEN)'),
      PreconditionFailed: problemResponse('If-Match / If-None-Match failed (ERR_CONFLICT); `currentEtag` names the current ETag (null when the key was never written)'),
      PreconditionRequired: problemResponse('The server requires conditional writes (ERR_PRECONDITION_REQUIRED)'),
      TooLarge: problemResponse('The value (ERR_TOO_LARGE) or the body (ERR_PAYLOAD_TOO_LARGE) is over the limit'),
      UnsupportedMediaType: problemResponse('Content-Type not accepted (ERR_UNSUPPORTED_MEDIA_TYPE)'),
      Invalid: problemResponse('The value failed validation (ERR_VALIDATION); nothing was written'),
      Unsupported: problemResponse('The backend cannot do this (ERR_UNSUPPORTED)'),
      Misdirected: problemResponse('A Host header the server does not answer for (ERR_MISDIRECTED_REQUEST): the DNS-rebinding guard, before anything else, on every route'),
      Unavailable: problemResponse('The store is unavailable or the server is shutting down (ERR_BACKEND, ERR_UNAVAILABLE, ERR_CLOSED), a write\'s outcome cannot be established (ERR_OUTCOME_UNKNOWN; with `dataLost` {detail, details} when the store reported a loss to it), or the store lost acknowledged writes and nobody accepted the loss yet (ERR_DATA_LOST, with `details`)'),
    },
    schemas: {
      Problem: {
        type: 'object',
        required: ['type', 'title', 'status', 'detail', 'code'],
        properties: {
          type: { type: 'string', format: 'uri-reference' },
          title: { type: 'string' },
          status: { type: 'integer' },
          detail: { type: 'string' },
          code: { type: 'string', examples: ['ERR_CONFLICT'] },
          key: { type: 'string' },
          currentEtag: { type: ['string', 'null'], description: 'On 412 and 409 conflicts, and on 404 of a deleted key.' },
          checks: {
            type: 'array',
            items: {
              type: 'object',
              properties: {
                key: { type: 'string' },
                expected: { type: ['integer', 'string', 'null'] },
                actual: { type: ['integer', 'null'] },
                currentEtag: { type: ['string', 'null'] },
              },
            },
          },
          issues: { type: 'array', items: { type: 'object', properties: { message: { type: 'string' }, path: { type: 'array', items: { type: 'string' } } } } },
          limit: { type: 'integer' },
        },
        additionalProperties: true,
      },
      EntryMeta: {
        type: 'object',
        required: ['key', 'revision', 'createdRevision', 'updatedAt'],
        properties: {
          key: { type: 'string' },
          revision: { type: 'integer' },
          createdRevision: { type: 'integer' },
          updatedAt: { type: 'integer' },
          expiresAt: { type: 'integer' },
          writer: { type: 'string' },
        },
      },
      Entry: { allOf: [{ $ref: '#/components/schemas/EntryMeta' }, { type: 'object', required: ['value'], properties: { value: {} } }] },
      Deleted: {
        type: 'object',
        required: ['key', 'revision', 'deleted'],
        properties: { key: { type: 'string' }, revision: { type: 'integer' }, deleted: { const: true }, writer: { type: 'string' } },
      },
      Page: {
        type: 'object',
        required: ['entries'],
        properties: { entries: { type: 'array', items: { $ref: '#/components/schemas/Entry' } }, cursor: { type: 'string', description: 'Absent on the last page.' } },
      },
      History: {
        type: 'object',
        required: ['key', 'records'],
        properties: { key: { type: 'string' }, records: { type: 'array', items: { oneOf: [{ $ref: '#/components/schemas/Entry' }, { $ref: '#/components/schemas/Deleted' }] } } },
      },
      Transaction: {
        type: 'object',
        required: ['ops'],
        properties: {
          ops: {
            type: 'array',
            maxItems: 1000,
            items: {
              oneOf: [
                { type: 'object', required: ['op', 'key', 'revision'], properties: { op: { const: 'check' }, key: { type: 'string' }, revision: { type: ['integer', 'null'], description: 'null: the key must have no live value' } } },
                { type: 'object', required: ['op', 'key', 'value'], properties: { op: { const: 'set' }, key: { type: 'string' }, value: {}, ttlMs: { type: 'integer', minimum: 1 } } },
                { type: 'object', required: ['op', 'key'], properties: { op: { const: 'delete' }, key: { type: 'string' } } },
              ],
            },
          },
        },
      },
      WatchEvent: {
        oneOf: [
          { allOf: [{ $ref: '#/components/schemas/Entry' }, { type: 'object', required: ['type'], properties: { type: { const: 'put' } } }] },
          { type: 'object', required: ['type', 'key', 'revision'], properties: { type: { const: 'delete' }, key: { type: 'string' }, revision: { type: 'integer' } } },
        ],
      },
      Info: {
        type: 'object',
        properties: {
          backend: { type: 'string' },
          capabilities: { type: 'object', additionalProperties: true },
          requirePreconditions: { type: 'boolean' },
          limits: { type: 'object', additionalProperties: { type: 'integer' } },
          combinableUpdates: { type: 'boolean', description: 'Every value this server refuses can be told from its limits and JSON alone (no validate hook, a store it opened, no backend limit of its own): clients may combine concurrent update()s of one key' },
          principal: { type: 'object', properties: { name: { type: 'string' }, scopes: { type: 'array', items: { type: 'object', properties: { prefix: { type: 'string' }, access: { enum: ['read', 'write', 'admin'] } } } } } },
          replication: { $ref: '#/components/schemas/Replication' },
        },
      },
      Replication: {
        type: ['object', 'null'],
        description: 'The replication state the store reports; null for a store without replication (memory, SQLite, the file, one server).',
        required: ['serving', 'members', 'durability', 'note', 'failovers'],
        properties: {
          serving: { type: ['string', 'null'], description: 'host:port of the member serving writes now; null while none does' },
          members: { type: 'array', items: { type: 'object', required: ['address', 'role'], properties: { address: { type: 'string' }, role: { type: 'string' }, state: { type: 'string' } } } },
          durability: { type: 'string', description: 'What an acknowledged write has survived; "replicated" only when the server waits for a replica' },
          note: { type: 'string' },
          failovers: { type: 'integer' },
          lost: { $ref: '#/components/schemas/Loss' },
        },
      },
      Loss: {
        type: 'object',
        required: ['message'],
        description: 'A detected loss of acknowledged writes: revisions after `after` up to `upTo` (as far as known).',
        properties: { after: { type: 'integer' }, upTo: { type: 'integer' }, detectedAt: { type: 'string' }, message: { type: 'string' } },
      },
    },
  },
} as const;

// The Host check (421) runs before any route, on every one: each operation says so.
for (const item of Object.values(openApiDocument.paths) as unknown as Array<Record<string, { responses?: Record<string, unknown> }>>) {
  for (const op of Object.values(item)) {
    if (typeof op === 'object' && op !== null && op.responses !== undefined) op.responses['421'] = ref('Misdirected');
  }
}
