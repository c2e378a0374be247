/**
 * How many connections the tests open to the machine's PostgreSQL, bounded on
 * purpose (issue 22: `npm test` on a fresh machine failed 10 tests with
 * "53300 too many clients": test files run side by side, each store opened a
 * pool of 10, and PostgreSQL allows 100).
 *
 * The budget: the machine's server has max_connections = 100 (PostgreSQL's
 * default; `SHOW max_connections`), 3 of them reserved for superusers, so 97
 * for the tests, psql sessions and whoever else uses it. scripts/test.mjs runs
 * the main pass (vitest.config.ts, maxWorkers = 2) and the fault pass (one file
 * at a time) side by side: at most 3 test files at once, 2 of the main pass
 * and 1 fault file. A pg pool opens a
 * connection only when a call finds none idle, and never more than its size,
 * so a store holds at most its poolSize connections, and a file at most
 * (stores open at once) × (pool size) + its admin pools and raw clients.
 *
 * The postgres-*.test.ts files give their stores TEST_POOL_SIZE (4) and close
 * them after each test (not at the end of the file):
 *   postgres.test.ts       multi-process: 4 worker processes + 1 checker,
 *                          4 each = 20; the conformance tests' stores are
 *                          closed after each; dropping tables afterwards:
 *                          admin pool of 4 (measured peak of the file: 17)
 *   postgres-specifics     ≤ 4 stores × 4 + admin pool 4 = 20; 6 processes
 *                          migrating at once × 4 = 24 (measured peak with
 *                          postgres-batch beside it: 24)
 *   postgres-batch         ≤ 3 stores × 4 + admin pool 2 = 14
 *   postgres-late-landing  a store (default pool, 5) + 2 clients + admin pool 2 = 9
 *   postgres-idle-transaction, postgres-connection-errors: private servers only
 * Files that leave the pool size to the library get DEFAULT_POOL_SIZE (5):
 *   checkpoints-multiprocess  8 advancer processes + 1 verifier, pools of 2, + admin 2 = 20
 *   check-watch (postgres)    1 probe + 3 workers × 2 stores (one for watches) × 5 = 35
 *                             (measured peak: 16)
 *   server-late-landing       2 servers × 5 + 2 clients + admin 2 = 14
 *   the rest                  one or two stores at a time: ≤ 10 (read, not measured)
 * Fault files (test/faults), on the shared server:
 *   exactly-once-kill (postgres)  4 worker processes × 5 + the test's store 5 + admin 2 = 27
 *   ha                            3 servers × 5 + the check's store 5 + admin 1 = 21
 *   the others                    private servers, or one store at a time: ≤ 10
 * Worst three at once: 35 + 24 (check-watch, postgres-specifics) + 27 = 86 ≤ 97;
 * measured peaks with both passes running: 34 (quiet), 49 (beside a review's
 * runs) — where pools of 10 and the old checkpoints pools allowed 92 + 70 = 162
 * for two files (measured: postgres.test's multi-process test held about 41
 * connections with pools of 10, 21 with 5, 17 with TEST_POOL_SIZE).
 * Raising TEST_POOL_SIZE, maxWorkers, running more passes side by side, or the
 * number of processes a test spawns needs this sum redone.
 */
export const TEST_POOL_SIZE = 4;

export const PG_URL = process.env.REVKIT_PG_URL ?? `postgres://${process.env.PGUSER ?? 'root'}@127.0.0.1:5432/test`;
