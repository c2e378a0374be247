import { Agent, request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, parseTokens, type RevkitServer } from '../src/server/index.js';

// The server remembers the principal of the Authorization header a connection last
// presented (Authenticator.authenticateOn). On one keep-alive connection that switches
// headers — as a proxy pooling many clients' requests does — every request must still
// get exactly the rights of the header it carries.
const tokens = parseTokens([
  { name: 'reader', token: 'conn-reader-token-aaaaaaaa', scopes: [{ prefix: 'app/', access: 'read' }] },
  { name: 'writer', token: 'conn-writer-token-bbbbbbbb', scopes: [{ prefix: 'app/', access: 'write' }] },
]);
const [READER, WRITER] = tokens.map((t) => t.token);

describe('authentication on a reused connection', () => {
  let server: RevkitServer;
  let base: URL;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });

  beforeAll(async () => {
    server = await createServer({ store: 'memory:', tokens });
    base = new URL(await server.listen());
  });
  afterAll(async () => {
    agent.destroy();
    await server.close();
  });

  /** A PUT on the one pooled connection: its status and whether the socket was reused. */
  function put(authorization: string | undefined): Promise<{ status: number; reused: boolean }> {
    return new Promise((resolve, reject) => {
      const req = request(new URL('/v1/kv/app%2Fx', base), {
        method: 'PUT', agent, headers: { 'content-type': 'application/json', ...(authorization === undefined ? {} : { authorization }) },
      }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode as number, reused: req.reusedSocket }));
      });
      req.on('error', reject);
      req.end('1');
    });
  }

  it('each request gets the rights of the header it carries, whatever the connection carried before', async () => {
    const sequence: Array<[string | undefined, number]> = [
      [`Bearer ${WRITER}`, 201],
      [`Bearer ${WRITER}`, 200],
      [`Bearer ${READER}`, 403],
      [`Bearer ${READER}`, 403],
      [`Bearer ${WRITER}`, 200],
      [`Bearer ${WRITER}x`, 401], // same prefix, one character longer
      [`Bearer ${WRITER.slice(0, -1)}x`, 401], // same length, last character differs
      [undefined, 401],
      [`bearer ${WRITER}`, 200], // the scheme is case-insensitive: a different header, the same token
      [`Bearer ${WRITER}`, 200],
    ];
    const seen: Array<[string | undefined, number]> = [];
    let reused = 0;
    for (const [authorization] of sequence) {
      const r = await put(authorization);
      seen.push([authorization, r.status]);
      if (r.reused) reused++;
    }
    expect(seen).toEqual(sequence);
    // one connection served them all (a 401 does not close it), so the remembered header was in play
    expect(reused).toBe(sequence.length - 1);
  });
});
