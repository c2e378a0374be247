// Bench target for revkit/sqlite with synchronous=FULL (contract: bench/targets/README.md).
import { sqliteTarget } from '../lib/sqlite-target.mjs';

const t = sqliteTarget('full');
export const { name, crossProcess, available, freshUrl, rawLoop, logLoop, version, cleanup } = t;
