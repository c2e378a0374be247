/**
 * Detecting acknowledged writes lost in a failover (DESIGN §6: revisions are
 * never reused), in Lua, spliced into every script's guard (scripts.ts).
 *
 * Redis replicates asynchronously: a replica promoted by Sentinel may lack the
 * newest writes of the master it replaces — writes whose revisions were told
 * to callers. Its counter is then behind, and without care the next writes
 * would be handed those revisions again, by processes that never saw them.
 *
 * The serving master's replication id (`master_replid`, INFO replication)
 * names the history it serves: a replica shares its master's id, a promotion
 * (or a restart) gives a new one. The store's meta hash records the id its
 * counter last ran under (`lineage`). The first script that finds another id
 * jumps the counter by GAP, atomically, and records the range (base = counter
 * found, start = base + GAP] in `gaps`: no revision of that range is ever
 * handed out on the new lineage, so any revision a process saw there came
 * from writes the new master lacks. A process whose highest seen revision
 * lies in a gap (and above what an operator accepted) latches the store LOST
 * in the meta (`lost` = after:upTo:detectedAt): every process then gets
 * DataLostError until acceptLoss() — each process that comes by while it is
 * latched raises upTo to what it saw, so the report covers every acknowledged
 * revision of the processes that call. A process that saw revisions of a gap
 * gets one DataLostError of its own even if the loss was accepted before it
 * came by (it passes the highest gap base it was told of), so none of them
 * goes on silently. A restart that does not change the id
 * and lost writes (appendfsync everysec) shows as the counter behind what the
 * process saw: the same jump and latch, as far as that process knows.
 */

/** How far the counter jumps on a new lineage: more than a master's replicas can ever lag behind it. */
export const GAP = 1_000_000_000;
/** Gaps kept in the meta hash (the oldest are forgotten). */
export const GAPS_KEPT = 64;

/** Lua: lineage(seen, rev, told) → nil (go on) or {'DATALOST', after, upTo, detectedAt}. Needs meta and now_ms(). */
export const LINEAGE = `
local GAP = ${GAP}
local function parse_gaps(text)
  local gaps = {}
  for b, s, a in string.gmatch(text or '', '(%d+):(%d+):(%d+)') do
    table.insert(gaps, {tonumber(b), tonumber(s), tonumber(a)})
  end
  return gaps
end
local function format_gaps(gaps)
  local parts = {}
  for i = math.max(1, #gaps - ${GAPS_KEPT - 1}), #gaps do
    local g = gaps[i]
    table.insert(parts, string.format('%d:%d:%d', g[1], g[2], g[3]))
  end
  return table.concat(parts, ';')
end
-- (base, start]: never handed out from now on; accepted starts at base (nothing accepted yet).
local function open_gap(gaps, base, seen)
  local start = base + GAP
  if start < seen then start = seen + GAP end
  table.insert(gaps, {base, start, base})
  redis.call('HSET', meta, 'rev', string.format('%d', start), 'gaps', format_gaps(gaps))
  redis.call('HINCRBY', meta, 'failovers', 1)
  return start
end
local function lineage(seen, rev, told)
  local id = string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)')
  local m = redis.call('HMGET', meta, 'lineage', 'gaps', 'lost')
  local gaps = parse_gaps(m[2])
  if m[1] ~= id then
    -- A store that never recorded a lineage starts one; any other change may have lost writes.
    if m[1] then rev = open_gap(gaps, rev, 0) end
    redis.call('HSET', meta, 'lineage', id)
  end
  if rev < seen then rev = open_gap(gaps, rev, seen) end
  if m[3] then
    local after, upTo, at = string.match(m[3], '^(%d+):(%d+):(%d+)$')
    after, upTo = tonumber(after), tonumber(upTo)
    for _, g in ipairs(gaps) do
      if g[1] == after and seen > upTo and seen <= g[2] then
        upTo = seen
        redis.call('HSET', meta, 'lost', string.format('%d:%d:%s', after, upTo, at))
      end
    end
    return {'DATALOST', after, upTo, tonumber(at)}
  end
  -- A process that saw revisions of a gap is told once, even when an operator accepted that loss
  -- before it came by (told: the highest gap base it was told of); above what was accepted, the
  -- store is latched for every process.
  for _, g in ipairs(gaps) do
    if seen > g[1] and seen <= g[2] and g[1] > told then
      local at = now_ms()
      if seen > g[3] then redis.call('HSET', meta, 'lost', string.format('%d:%d:%d', g[1], seen, at)) end
      return {'DATALOST', g[1], seen, at}
    end
  end
  return nil
end
`;

/**
 * KEYS meta; ARGV inc floor → {'OK', after, upTo} or {'OK'} (nothing latched), or {'LOST', marker}.
 * An operator accepts the latched loss: its range counts as accepted in its gap (a process whose
 * highest revision lies there goes on), the latch goes. floor: the counter is raised to it at least
 * (a process that saw revisions the server no longer counts to, without loss detection).
 */
export const ACCEPT_LOSS = `
local meta = KEYS[1]
local m = redis.call('HMGET', meta, 'inc', 'lost', 'gaps', 'rev')
if m[1] ~= ARGV[1] then return {'LOST', m[1] or ''} end
local floor = tonumber(ARGV[2])
if tonumber(m[4] or '0') < floor then redis.call('HSET', meta, 'rev', string.format('%d', floor)) end
if not m[2] then return {'OK'} end
local after, upTo = string.match(m[2], '^(%d+):(%d+):')
after, upTo = tonumber(after), tonumber(upTo)
local parts = {}
for b, s, a in string.gmatch(m[3] or '', '(%d+):(%d+):(%d+)') do
  b, s, a = tonumber(b), tonumber(s), tonumber(a)
  if b == after and upTo > a then a = upTo end
  table.insert(parts, string.format('%d:%d:%d', b, s, a))
end
redis.call('HSET', meta, 'gaps', table.concat(parts, ';'))
redis.call('HDEL', meta, 'lost')
return {'OK', after, upTo}
`;
