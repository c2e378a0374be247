// What every private-cluster launcher of test/support/clusters/ needs: free
// loopback ports and polling for a state with a deadline (never a fixed sleep).
import net from 'node:net';

export const HOST = '127.0.0.1';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A port free on 127.0.0.1 right now. */
export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, HOST, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Polls `probe` every 50 ms until it returns a truthy value; throws `<label>: timed out waiting for <what>` after `timeoutMs`. */
export async function until(label, what, probe, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${label}: timed out waiting for ${what}${last ? ` (last error: ${last.message})` : ''}`);
    await sleep(50);
  }
}
