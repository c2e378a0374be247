// Bench target for revkit/sqlite with synchronous=NORMAL (contract: bench/targets/README.md).
import { sqliteTarget } from '../lib/sqlite-target.mjs';

const t = sqliteTarget('normal');
export const { name, crossProcess, available, freshUrl, rawLoop, logLoop, version, cleanup } = t;
