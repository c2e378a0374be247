/**
 * The Lua side of the Redis backend. Every write (put, delete, atomic
 * commit, the sweeper's expiry) is one script: Redis runs a script to the
 * end before any other command, so the condition check, the revision drawn
 * from the store-wide counter, the record, its history and the change-log
 * entry are one step — no WATCH, no lock, nothing a shared connection can
 * break. Reads are scripts too, so that they check the incarnation marker.
 *
 * Every key a script touches is passed in KEYS and carries the store's hash
 * tag, so a store lives in one cluster slot and every script is legal on a
 * Redis Cluster.
 *
 * A record is one string: `rev,createdRev,updatedAt,expiresAt,deleted,writerLength:`
 * then the writer token, then the value bytes (expiresAt 0: none). The same
 * string is the current record (hash `rec`), a history item (list `h:<key>`)
 * and a change-log entry (stream `log`, id `<revision>-<n>`).
 */
import { createHash } from 'node:crypto';
import { ACCEPT_LOSS, LINEAGE } from './lineage.js';

// KEYS[1] meta hash (inc: incarnation marker, rev: counter, trimmed: change log floor; with loss detection
// also lineage, gaps, lost, failovers: see guard()).
const PRELUDE = `
local meta = KEYS[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
${LINEAGE}
-- The marker this store opened with must still be there, and the counter must not have gone
-- below a revision this process already saw: otherwise the server lost data. seenArg is the
-- highest revision this process saw, with loss detection on followed by L and the highest gap base
-- this process was told of (lineage()).
local function guard(inc, seenArg)
  local digits, detect, told = string.match(seenArg, '^(%d+)(L?)(%d*)$')
  local seen = tonumber(digits)
  local m = redis.call('HMGET', meta, 'inc', 'rev')
  if m[1] ~= inc then return {'LOST', m[1] or ''} end
  if detect == 'L' then return lineage(seen, tonumber(m[2] or '0'), tonumber(told)) end
  if tonumber(m[2] or '0') < seen then return {'ROLLBACK', m[2] or '0'} end
  return nil
end
local function parse(p)
  if not p then return nil end
  local rev, crev, at, exp, del = string.match(p, '^(%d+),(%d+),(%d+),(%d+),(%d),')
  return { rev = tonumber(rev), crev = tonumber(crev), at = tonumber(at), exp = tonumber(exp), del = del == '1' }
end
local function live(r, now)
  return r ~= nil and not r.del and (r.exp == 0 or r.exp > now)
end
local function pack(rev, crev, at, exp, del, writer, value)
  return string.format('%d,%d,%d,%d,%d,%d:', rev, crev, at, exp, del, #writer) .. writer .. value
end
`;

// Writers also get KEYS[2] rec hash, [3] live-key sorted set, [4] expiry sorted set, [5] change-log stream.
const WRITE_PRELUDE = `${PRELUDE}
-- cur: the record replaced (nil: none); the key and expiry sets are touched only when they change.
local function commit(key, cur, hist, packed, rev, seq, alive, exp, depth)
  redis.call('HSET', KEYS[2], key, packed)
  redis.call('LPUSH', hist, packed)
  redis.call('LTRIM', hist, 0, depth - 1)
  local was = cur ~= nil and not cur.del
  if alive and not was then redis.call('ZADD', KEYS[3], 0, key) end
  if was and not alive then redis.call('ZREM', KEYS[3], key) end
  if exp > 0 then redis.call('ZADD', KEYS[4], exp, key) elseif was and cur.exp > 0 then redis.call('ZREM', KEYS[4], key) end
  redis.call('XADD', KEYS[5], string.format('%d-%d', rev, seq), 'k', key, 'r', packed)
end
-- Trim whole revisions off the change log now and then, and remember the floor for watch(), and the
-- server time of the newest entry trimmed (trimmedAt: a watch "from now" may start at the floor only
-- if that revision was written before the moment watch() was called).
-- Retention counts revisions handed out: a gap (a jump of the counter after a failover, lineage.ts)
-- holds none, so the window reaches below it by its size.
local function trim(rev, retention)
  if rev % 64 == 0 and rev > retention + 1 then
    local below = rev - retention
    local gaps = parse_gaps(redis.call('HGET', meta, 'gaps'))
    for i = #gaps, 1, -1 do
      if gaps[i][2] >= below then below = below - (gaps[i][2] - gaps[i][1]) end
    end
    if below <= 1 then return end
    local last = redis.call('XREVRANGE', KEYS[5], string.format('%d-18446744073709551615', below - 1), '-', 'COUNT', 1)
    redis.call('XTRIM', KEYS[5], 'MINID', string.format('%d', below))
    redis.call('HSET', meta, 'trimmed', string.format('%d', below - 1))
    if last[1] then redis.call('HSET', meta, 'trimmedAt', string.format('%d', parse(last[1][2][4]).at)) end
  end
end
local function draw()
  return redis.call('HINCRBY', meta, 'rev', 1)
end
-- mode: '' none, 'absent', 'rev' (live or tombstone; 0: never written), 'liverev' (ifValue: the live revision compared)
local function fails(cur, mode, want, now)
  if mode == 'absent' then return live(cur, now) end
  if mode == 'rev' then
    if cur == nil then return want ~= 0 end
    return cur.rev ~= want
  end
  if mode == 'liverev' or mode == 'own' then return (not live(cur, now)) or cur.rev ~= want end
  return false
end
-- The writer token of a packed record (pack()).
local function writer_of(p)
  local len, at = string.match(p, '^%d+,%d+,%d+,%d+,%d,(%d+):()')
  return string.sub(p, at, at + tonumber(len) - 1)
end
`;

/**
 * KEYS meta rec keys ttl log hist; ARGV inc seen key mode want value ttlMs writer depth retention own.
 * Mode 'own': the key holds the live write of revision `want` by writer token `own` (an update() that did
 * not read, core/own-writes.ts).
 */
const PUT = `${WRITE_PRELUDE}
local g = guard(ARGV[1], ARGV[2]) if g then return g end
local key, now = ARGV[3], now_ms()
local raw = redis.call('HGET', KEYS[2], key)
local cur = parse(raw)
if fails(cur, ARGV[4], tonumber(ARGV[5]), now) or (ARGV[4] == 'own' and writer_of(raw) ~= ARGV[11]) then return {'CONFLICT', cur and cur.rev or -1} end
local rev = draw()
local crev = rev
if live(cur, now) then crev = cur.crev end
local ttl = tonumber(ARGV[7])
local exp = 0
if ttl > 0 then exp = now + ttl end
commit(key, cur, KEYS[6], pack(rev, crev, now, exp, 0, ARGV[8], ARGV[6]), rev, 0, true, exp, tonumber(ARGV[9]))
trim(rev, tonumber(ARGV[10]))
return {'OK', rev, crev, now, exp}
`;

/** KEYS meta rec keys ttl log hist; ARGV inc seen key mode want writer depth retention */
const DELETE = `${WRITE_PRELUDE}
local g = guard(ARGV[1], ARGV[2]) if g then return g end
local key, now = ARGV[3], now_ms()
local cur = parse(redis.call('HGET', KEYS[2], key))
if fails(cur, ARGV[4], tonumber(ARGV[5]), now) then return {'CONFLICT', cur and cur.rev or -1} end
if not live(cur, now) then return {'NOOP'} end
local rev = draw()
commit(key, cur, KEYS[6], pack(rev, 0, now, 0, 1, ARGV[6], ''), rev, 0, false, 0, tonumber(ARGV[7]))
trim(rev, tonumber(ARGV[8]))
return {'OK', rev}
`;

/**
 * KEYS meta rec keys ttl log, then one history list per op;
 * ARGV inc seen depth retention count, then per op: type (c|s|d) key arg ttlMs
 * (check: wanted revision, '' for "no live value"; set: the value).
 */
const ATOMIC = `${WRITE_PRELUDE}
local g = guard(ARGV[1], ARGV[2]) if g then return g end
local depth, retention, n, now = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), now_ms()
local failed = {}
for i = 1, n do
  local b = 5 + (i - 1) * 4
  if ARGV[b + 1] == 'c' then
    local cur = parse(redis.call('HGET', KEYS[2], ARGV[b + 2]))
    local want = ARGV[b + 3]
    local bad
    if want == '' then bad = live(cur, now) else bad = fails(cur, 'rev', tonumber(want), now) end
    if bad then
      table.insert(failed, ARGV[b + 2])
      table.insert(failed, want)
      table.insert(failed, cur and cur.rev or -1)
    end
  end
end
if #failed > 0 then return {'CONFLICT', failed} end
-- A commit that writes nothing (checks only, deletes of absent keys) draws no revision: it answers with
-- the highest revision its keys were found at, or the head when none was ever written; both have committed.
local writes, seen = false, 0
for i = 1, n do
  local b = 5 + (i - 1) * 4
  local cur = parse(redis.call('HGET', KEYS[2], ARGV[b + 2]))
  if cur ~= nil and cur.rev > seen then seen = cur.rev end
  if ARGV[b + 1] == 's' or (ARGV[b + 1] == 'd' and live(cur, now)) then writes = true end
end
if not writes then
  if seen == 0 then seen = tonumber(redis.call('HGET', meta, 'rev') or '0') end
  return {'OK', seen}
end
local rev, seq = draw(), 0
for i = 1, n do
  local b = 5 + (i - 1) * 4
  local op, key = ARGV[b + 1], ARGV[b + 2]
  if op ~= 'c' then
    local cur = parse(redis.call('HGET', KEYS[2], key))
    if op == 's' then
      local crev = rev
      if live(cur, now) then crev = cur.crev end
      local ttl = tonumber(ARGV[b + 4])
      local exp = 0
      if ttl > 0 then exp = now + ttl end
      commit(key, cur, KEYS[5 + i], pack(rev, crev, now, exp, 0, '', ARGV[b + 3]), rev, seq, true, exp, depth)
      seq = seq + 1
    elseif live(cur, now) then
      commit(key, cur, KEYS[5 + i], pack(rev, 0, now, 0, 1, '', ''), rev, seq, false, 0, depth)
      seq = seq + 1
    end
  end
end
trim(rev, retention)
return {'OK', rev}
`;

/** The sweeper: an expired entry becomes a tombstone with a new revision. KEYS as PUT; ARGV inc seen key depth retention */
const EXPIRE = `${WRITE_PRELUDE}
local g = guard(ARGV[1], ARGV[2]) if g then return g end
local key, now = ARGV[3], now_ms()
local cur = parse(redis.call('HGET', KEYS[2], key))
if cur == nil or cur.del or cur.exp == 0 then
  redis.call('ZREM', KEYS[4], key)
  return {'NOOP'}
end
if cur.exp > now then return {'NOOP'} end
local rev = draw()
commit(key, cur, KEYS[6], pack(rev, 0, now, 0, 1, '', ''), rev, 0, false, 0, tonumber(ARGV[4]))
trim(rev, tonumber(ARGV[5]))
return {'OK', rev}
`;

/** KEYS meta rec; ARGV inc seen key → {'OK', record or nil, now} */
const READ = `${PRELUDE}
local g = guard(ARGV[1], ARGV[2]) if g then return g end
return {'OK', redis.call('HGET', KEYS[2], ARGV[3]) or false, now_ms()}
`;

/** KEYS meta rec keys; ARGV inc seen min max limit → {'OK', {key, record, ...}, more} */
const LIST = `${PRELUDE}
local g = guard(ARGV[1], ARGV[2]) if g then return g end
local now, limit, out, found, start = now_ms(), tonumber(ARGV[5]), {}, 0, ARGV[3]
while true do
  local batch = redis.call('ZRANGE', KEYS[3], start, ARGV[4], 'BYLEX', 'LIMIT', 0, 256)
  if #batch == 0 then break end
  for _, k in ipairs(batch) do
    local p = redis.call('HGET', KEYS[2], k)
    if live(parse(p), now) then
      if found == limit then return {'OK', out, 1} end
      found = found + 1
      table.insert(out, k)
      table.insert(out, p)
    end
  end
  start = '(' .. batch[#batch]
end
return {'OK', out, 0}
`;

/** KEYS meta hist; ARGV inc seen limit → {'OK', {record, ...}} newest first */
const HISTORY = `${PRELUDE}
local g = guard(ARGV[1], ARGV[2]) if g then return g end
return {'OK', redis.call('LRANGE', KEYS[2], 0, tonumber(ARGV[3]) - 1)}
`;

/**
 * KEYS meta log; ARGV inc seen afterId count → {'OK', trimmed, head, entries} (XRANGE form), or
 * {'WATCHLOST', gap base, position, now}: the watch's position (the revision it last delivered or
 * started from) lies in a recorded gap (lineage.ts) — it delivered changes this master lacks, and
 * must not go on silently in the new history, whether or not the loss was accepted.
 */
const CHANGES = `${PRELUDE}
local g = guard(ARGV[1], ARGV[2]) if g then return g end
local pos = tonumber(string.match(ARGV[3], '^(%d+)'))
for _, gap in ipairs(parse_gaps(redis.call('HGET', meta, 'gaps'))) do
  if pos > gap[1] and pos <= gap[2] then return {'WATCHLOST', gap[1], pos, now_ms()} end
end
local m = redis.call('HMGET', meta, 'trimmed', 'rev')
return {'OK', tonumber(m[1] or '0'), tonumber(m[2] or '0'), redis.call('XRANGE', KEYS[2], '(' .. ARGV[3], '+', 'COUNT', tonumber(ARGV[4]))}
`;

/**
 * KEYS meta; ARGV inc seen → {'OK', head revision, server time (ms)}: a script commits whole, so every
 * revision up to the head has; a write that runs after this script is stamped at this time or later.
 */
const HEAD = `${PRELUDE}
local g = guard(ARGV[1], ARGV[2]) if g then return g end
return {'OK', tonumber(redis.call('HGET', meta, 'rev') or '0'), now_ms()}
`;

/**
 * The start of a watch "from now" and its first page. KEYS meta log;
 * ARGV inc seen head known since before count → {'OK', trimmed, head, entries, start}
 * (entries as CHANGES, after start), or {'GONE', trimmed, trimmedAt (-1: not kept)}.
 *
 * start is the highest revision at or below `head` that was written before
 * `since` (server ms: the moment watch() was called less a margin) or that
 * the watching process had seen (`known`): the change log is walked back
 * from `head` to the first entry that is either (every entry of a commit has
 * its revision and time, and scripts run one at a time, so times do not
 * decrease along the log but where the server's clock stepped back). Should
 * the log run out first — the reach-back window reaches into trimmed
 * history — its floor is the start, provided every trimmed revision was
 * written before watch() was called: the floor is at or below `known`, or its
 * newest trimmed entry was stamped before `before` (server ms: the moment
 * watch() was called by a tight bound, no margin; revisions are drawn in
 * commit order, so the older trimmed ones were written earlier still). The
 * part of the window that is gone was a courtesy, not owed. Otherwise
 * changes the watch owes may be gone: GONE.
 */
const START = `${PRELUDE}
local g = guard(ARGV[1], ARGV[2]) if g then return g end
local head, known, since, before, count = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local m = redis.call('HMGET', meta, 'trimmed', 'rev', 'trimmedAt')
local trimmed = tonumber(m[1] or '0')
local start = nil
local top = string.format('%d-18446744073709551615', head)
while start == nil do
  local batch = redis.call('XREVRANGE', KEYS[2], top, '-', 'COUNT', 256)
  if #batch == 0 then break end
  for _, e in ipairs(batch) do
    local r = parse(e[2][4])
    if r.rev <= known or r.at < since then
      start = math.max(r.rev, known)
      break
    end
  end
  top = '(' .. batch[#batch][1]
end
if start == nil then
  if known >= trimmed then start = known
  elseif m[3] and tonumber(m[3]) < before then start = trimmed
  else return {'GONE', trimmed, tonumber(m[3] or '-1')} end
end
local page = redis.call('XRANGE', KEYS[2], string.format('(%d-18446744073709551615', start), '+', 'COUNT', count)
return {'OK', trimmed, tonumber(m[2] or '0'), page, start}
`;

/**
 * KEYS meta; ARGV marker → the marker in force. Creates it on a store that has
 * none; a store that had one keeps it, so every process agrees on it.
 */
const OPEN = `
redis.call('HSETNX', KEYS[1], 'inc', ARGV[1])
return redis.call('HGET', KEYS[1], 'inc')
`;

/**
 * KEYS meta log; ARGV inc seen after base key writer count → {'FOUND', packed} | {'ABSENT'} | {'MORE', last id}
 * | {'UNKNOWN'}: the change of `key` by `writer` in up to `count` entries of the log after `after`, compared
 * here so that only a match leaves the server (find-write.ts). UNKNOWN: the log was trimmed above `base`, or
 * `after` lies in a gap a failover left (lineage.ts).
 */
const FIND_WRITE = `${WRITE_PRELUDE}
local g = guard(ARGV[1], ARGV[2]) if g then return g end
local pos = tonumber(string.match(ARGV[3], '^(%d+)'))
for _, gap in ipairs(parse_gaps(redis.call('HGET', meta, 'gaps'))) do
  if pos > gap[1] and pos <= gap[2] then return {'UNKNOWN'} end
end
if tonumber(redis.call('HGET', meta, 'trimmed') or '0') > tonumber(ARGV[4]) then return {'UNKNOWN'} end
local count = tonumber(ARGV[7])
local page = redis.call('XRANGE', KEYS[2], '(' .. ARGV[3], '+', 'COUNT', count)
for _, e in ipairs(page) do
  local f = e[2]
  if f[2] == ARGV[5] and writer_of(f[4]) == ARGV[6] then return {'FOUND', f[4]} end
end
if #page < count then return {'ABSENT'} end
return {'MORE', page[#page][1]}
`;

export interface Script {
  readonly name: string;
  readonly lua: string;
  readonly sha: string;
}

function script(name: string, lua: string): Script {
  return { name, lua, sha: createHash('sha1').update(lua).digest('hex') };
}

export const SCRIPTS = {
  put: script('put', PUT),
  delete: script('delete', DELETE),
  atomic: script('atomic', ATOMIC),
  expire: script('expire', EXPIRE),
  read: script('read', READ),
  list: script('list', LIST),
  history: script('history', HISTORY),
  changes: script('changes', CHANGES),
  findWrite: script('findWrite', FIND_WRITE),
  head: script('head', HEAD),
  start: script('start', START),
  open: script('open', OPEN),
  acceptLoss: script('acceptLoss', ACCEPT_LOSS),
};
