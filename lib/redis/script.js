'use strict'
// The one Lua script behind a Redis-backed gate. Every state change of a gate
// is a call of this script (EVALSHA, EVAL on NOSCRIPT), so every change is
// atomic on the server, and time is the server's (TIME), never a client's.
//
// Keys (all hash-tagged `{name}`, so a gate lives in one Cluster slot):
//   KEYS[1] meta    HASH permits (-1 = unlimited), used, token, seq, epoch, grace
//   KEYS[2] queue   ZSET of waiting tickets: score -priority, member
//                   "<seq, 16 digits> <n> <ticket>", so ZRANGE order is
//                   priority first, then the order in which Redis saw them
//   KEYS[3] qidx    HASH ticket -> its queue member (O(1) cancel)
//   KEYS[4] grants  HASH ticket -> "<n> <token>": granted, not yet claimed
//                   by its client (a retried acquire finds its grant here)
//   KEYS[5] held    HASH client -> permits held; client#r -> last release seq
//   KEYS[6] leases  ZSET process -> lease expiry (server ms)
//   KEYS[7] clients HASH client -> 1: the clients with tickets or permits,
//                   so that a process's clients are found without a scan;
//                   "x<ms>" once reaped with its process's lease, until the
//                   client's next call, which is told so (flag 'l')
//
// A client id is "<process>.<stake id>" (one per Semaphore or limiter; the
// stake of its fleet gate, src/core/gate.h), a ticket "<client>.<seq>". One
// lease per process: every thread of it shares it. A grant to a waiter is
// PUBLISHed on "sluice:{name}:w:<process>" as "<ticket> <token>" (or
// "<ticket> !" when lowering permits made the request impossible).
//
// ARGV: 1 op, 2 client, 3 leaseMillis, 4 epoch the client knows (or ''),
//       5 "<permits the client holds>[:<release seq>]" (re-registered after
//         the gate was lost; the release seq is the last release those
//         permits already account for, so a retried release is not applied
//         to them again),
//       6 highest token the client saw, 7 tickets the client claims
//       (space-separated), 8 permits to create the gate with (or ''),
//       9.. per op.
// Reply: { status, a, b, permits, used, pending, epoch, flags } as strings;
//        flags: 'l' the client was reaped with its process's lapsed lease
//               since its last call (what it held and its tickets are gone),
//               'e' the gate was re-created (Redis lost it).
const LUA = `
local meta, queue, qidx, grants, held, leases, clients =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local op, c = ARGV[1], ARGV[2]
local leaseMs = tonumber(ARGV[3])
local knownEpoch = ARGV[4]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nowUs = tonumber(t[1]) * 1000000 + tonumber(t[2])
local flags = ''
local function fmt(x) return string.format('%.0f', x) end
local function owner(ticket) return string.match(ticket, '^(.*)%.[^.]*$') end
local function proc(client) return string.match(client, '^([^.]*)') end
-- "sluice:{name}:meta" -> "sluice:{name}:w:<process>"
local function channel(client) return string.sub(meta, 1, -5) .. 'w:' .. proc(client) end
local p = proc(c)
-- The process's lease runs to now + leaseMs, or later if it already does:
-- threads and objects of one process may ask for different leases, and the
-- lead renews at its own pace; a shorter lease asked for by any of them must
-- not cut the lease the lead keeps alive.
local function extend()
  local cur = tonumber(redis.call('ZSCORE', leases, p) or '0')
  if now + leaseMs > cur then redis.call('ZADD', leases, now + leaseMs, p) end
end

-- The gate: create it when missing (a new gate, or one Redis lost). Its
-- counters are read once here and written once at the end.
local m = redis.call('HMGET', meta, 'permits', 'used', 'token', 'epoch', 'grace')
if not m[1] then
  if ARGV[8] == '' then return { 'nogate', '', '', '', '', '', '', '' } end
  local grace = 0
  -- A client that knew an earlier epoch: Redis lost the gate (a restart
  -- without persistence, a failover). Grant nothing for one lease, so that
  -- every live holder re-registers what it holds first.
  if knownEpoch ~= '' then grace = now + leaseMs end
  -- Tokens start at the server's time in microseconds: above any token the
  -- lost gate gave, unless it gave more than one per microsecond.
  m = { ARGV[8], '0', fmt(math.max(nowUs, (tonumber(ARGV[6]) or 0) + 1)), fmt(nowUs), tostring(grace) }
  redis.call('HSET', meta, 'permits', m[1], 'used', 0, 'token', m[3], 'seq', 0, 'epoch', m[4],
    'grace', grace)
end
local permits = tonumber(m[1])
local used = tonumber(m[2])
local token = tonumber(m[3])
local epoch = m[4]
local grace = tonumber(m[5] or '0')
if tonumber(ARGV[6]) and tonumber(ARGV[6]) > token then token = tonumber(ARGV[6]) end

local function fits(n) return permits < 0 or used + n <= permits end

-- A grant: the permits are the client's, the record waits for its claim.
local function take(ticket, n)
  local client = owner(ticket)
  used = used + n
  redis.call('HINCRBY', held, client, n)
  redis.call('HSET', clients, client, 1)
  token = token + 1
  redis.call('HSET', grants, ticket, n .. ' ' .. fmt(token))
  return client
end

local function grant(member, skip)
  local n, ticket = string.match(member, '^%d+ (%d+) (.*)$')
  local client = take(ticket, tonumber(n))
  redis.call('ZREM', queue, member)
  redis.call('HDEL', qidx, ticket)
  if ticket ~= skip then redis.call('PUBLISH', channel(client), ticket .. ' ' .. fmt(token)) end
end

local function dispatch(skip)
  if now < grace then return end
  while true do
    local head = redis.call('ZRANGE', queue, 0, 0)[1]
    if not head then break end
    local n = tonumber(string.match(head, '^%d+ (%d+) '))
    if not fits(n) then break end
    grant(head, skip)
  end
end

-- Everything the clients in dead (client -> true) have in the gate goes:
-- their permits, their waiters, their unclaimed grants. One pass over the
-- queue and the grants for all of them.
-- With mark set, each client is marked reaped, to be told on its next call.
local function reap(dead, mark)
  local any = false
  for client in pairs(dead) do
    any = true
    local h = tonumber(redis.call('HGET', held, client) or '0')
    used = used - h
    redis.call('HDEL', held, client, client .. '#r')
    if mark then redis.call('HSET', clients, client, 'x' .. fmt(now)) else redis.call('HDEL', clients, client) end
  end
  if not any then return end
  local items = redis.call('HGETALL', qidx)
  for i = 1, #items, 2 do
    if dead[owner(items[i])] then
      redis.call('ZREM', queue, items[i + 1])
      redis.call('HDEL', qidx, items[i])
    end
  end
  items = redis.call('HGETALL', grants)
  for i = 1, #items, 2 do
    if dead[owner(items[i])] then redis.call('HDEL', grants, items[i]) end
  end
end

-- The clients of process q (with anything in the gate), as client -> true,
-- those for which keep(client) is false; and how many of q's clients are
-- marked reaped. Marks nobody came back for in a day (or 100 leases) go.
local function clientsOf(q, keep)
  local out, marked, items = {}, 0, redis.call('HGETALL', clients)
  local stale = now - math.max(86400000, 100 * leaseMs)
  for i = 1, #items, 2 do
    local client, v = items[i], items[i + 1]
    if string.sub(v, 1, 1) == 'x' then
      if tonumber(string.sub(v, 2)) < stale then redis.call('HDEL', clients, client)
      elseif proc(client) == q then marked = marked + 1 end
    elseif proc(client) == q and not keep(client) then
      out[client] = true
    end
  end
  return out, marked
end

-- Re-created gate: this client puts back what it holds (SET, not add, so a
-- resent command cannot count it twice).
if knownEpoch ~= '' and knownEpoch ~= epoch then
  flags = flags .. 'e'
  local mineS, rs = string.match(ARGV[5], '^(%d*):?(%d*)$')
  local mine = tonumber(mineS or '') or 0
  local before = tonumber(redis.call('HGET', held, c) or '0')
  if mine ~= before then
    used = used + mine - before
    if mine > 0 then redis.call('HSET', held, c, mine) else redis.call('HDEL', held, c) end
  end
  if rs and rs ~= '' then redis.call('HSET', held, c .. '#r', rs) end
  if mine > 0 then redis.call('HSET', clients, c, 1) end
  if mine > 0 or op ~= 'open' then extend() end
end

-- Lapsed leases (of processes), this client's own included.
local lapsed = redis.call('ZRANGEBYSCORE', leases, '-inf', '(' .. now)
local freed = false
for _, q in ipairs(lapsed) do
  reap(clientsOf(q, function() return false end), true)
  redis.call('ZREM', leases, q)
  freed = true
end
-- This client was reaped (just now, or by an earlier call of anyone): it is
-- told once.
local mark = redis.call('HGET', clients, c)
if mark and string.sub(mark, 1, 1) == 'x' then
  flags = flags .. 'l'
  redis.call('HDEL', clients, c)
end

-- Claimed grants: the client has them, the records can go.
if ARGV[7] ~= '' then
  local prefix, mine = c .. '.', {}
  for ticket in string.gmatch(ARGV[7], '%S+') do
    if string.sub(ticket, 1, #prefix) == prefix then mine[#mine + 1] = ticket end
  end
  if #mine > 0 then redis.call('HDEL', grants, unpack(mine)) end
end

if op ~= 'open' and op ~= 'close' and op ~= 'state' then extend() end

local status, a, b = 'ok', '', ''

if op == 'open' then
  if ARGV[9] ~= '' and tonumber(ARGV[9]) ~= permits then
    status, a = 'mismatch', fmt(permits)
  end
elseif op == 'acquire' then
  local ticket, n, prio, try = ARGV[9], tonumber(ARGV[10]), tonumber(ARGV[11]), ARGV[12] == '1'
  local g = redis.call('HGET', grants, ticket)
  if g then
    status, b = 'granted', string.match(g, ' (%d+)$')
  elseif redis.call('HEXISTS', qidx, ticket) == 1 then
    status = 'queued'
  elseif permits >= 0 and n > permits and permits > 0 then
    status, a = 'toolarge', fmt(permits)
  elseif redis.call('EXISTS', queue) == 0 and fits(n) and now >= grace then
    -- Nobody waits and it fits: granted without queueing.
    take(ticket, n)
    status, b = 'granted', fmt(token)
  elseif try then
    status = 'busy'
  else
    local seq = redis.call('HINCRBY', meta, 'seq', 1)
    local member = string.format('%016.0f', seq) .. ' ' .. n .. ' ' .. ticket
    redis.call('ZADD', queue, -prio, member)
    redis.call('HSET', qidx, ticket, member)
    redis.call('HSET', clients, c, 1)
    local before = token
    dispatch(ticket)
    freed = false
    if token > before and redis.call('HEXISTS', qidx, ticket) == 0 then
      status, b = 'granted', string.match(redis.call('HGET', grants, ticket), ' (%d+)$')
    else
      status = 'queued'
    end
  end
elseif op == 'cancel' then
  local ticket = ARGV[9]
  local member = redis.call('HGET', qidx, ticket)
  local g = redis.call('HGET', grants, ticket)
  if member then
    redis.call('ZREM', queue, member)
    redis.call('HDEL', qidx, ticket)
    status = 'removed'
    freed = true
  elseif g and owner(ticket) == c then
    local n = tonumber(string.match(g, '^(%d+) '))
    redis.call('HDEL', grants, ticket)
    used = used - n
    if redis.call('HINCRBY', held, c, -n) <= 0 then redis.call('HDEL', held, c) end
    status = 'released'
    freed = true
  else
    status = 'unknown'
  end
elseif op == 'release' then
  local n, rseq = tonumber(ARGV[9]), tonumber(ARGV[10])
  local hr = redis.call('HMGET', held, c, c .. '#r')
  local h, last = tonumber(hr[1] or '0'), tonumber(hr[2] or '0')
  if rseq <= last then
    status = 'dup'
  else
    if h < n then
      status, a = 'short', fmt(h)
      n = h
    end
    used = used - n
    if h - n > 0 then
      redis.call('HSET', held, c, h - n, c .. '#r', rseq)
    else
      redis.call('HDEL', held, c)
      redis.call('HSET', held, c .. '#r', rseq)
    end
    freed = true
  end
elseif op == 'renew' then
  -- The safety sweep: the state of the tickets the client still waits for.
  local out = {}
  for i = 9, #ARGV do
    local g = redis.call('HGET', grants, ARGV[i])
    if g then
      out[#out + 1] = ARGV[i] .. ' ' .. string.match(g, ' (%d+)$')
    elseif redis.call('HEXISTS', qidx, ARGV[i]) == 0 then
      out[#out + 1] = ARGV[i] .. ' -'
    end
  end
  a = table.concat(out, ',')
  freed = true
elseif op == 'lease' then
  -- The lead of a process renews its lease (above), and reaps the clients of
  -- its process that are gone: a client id below ARGV[9] (every stake opened
  -- since has a higher id) that is not among the open stakes, ARGV[10..]
  -- (a Semaphore collected, or a worker thread that ended, without close()).
  local below, open = tonumber(ARGV[9]), {}
  for i = 10, #ARGV do open[ARGV[i]] = true end
  local dead, marked = clientsOf(p, function(client)
    local id = string.match(client, '%.(%d+)$')
    return id == nil or tonumber(id) >= below or open[id]
  end)
  local n = 0
  for _ in pairs(dead) do n = n + 1 end
  reap(dead, false)
  -- a: the clients reaped as gone; b: the clients of the process reaped
  -- with a lapsed lease and not told yet (the lead tells its process).
  a, b = tostring(n), tostring(marked)
  freed = n > 0
elseif op == 'permits' then
  permits = tonumber(ARGV[9])
  redis.call('HSET', meta, 'permits', ARGV[9])
  -- Requests that can never fit any more are refused (0 pauses instead).
  if permits > 0 then
    local members = redis.call('ZRANGE', queue, 0, -1)
    for _, member in ipairs(members) do
      local n, ticket = string.match(member, '^%d+ (%d+) (.*)$')
      if tonumber(n) > permits then
        redis.call('ZREM', queue, member)
        redis.call('HDEL', qidx, ticket)
        redis.call('PUBLISH', channel(owner(ticket)), ticket .. ' !')
      end
    end
  end
  freed = true
elseif op == 'close' then
  reap({ [c] = true }, false)
  -- The process's last client here: its lease goes too.
  local rest = clientsOf(p, function() return false end)
  if next(rest) == nil then redis.call('ZREM', leases, p) end
  freed = true
end

if freed then dispatch('') end
redis.call('HSET', meta, 'used', used, 'token', fmt(token))
return { status, a, b, fmt(permits), fmt(used), tostring(redis.call('ZCARD', queue)), epoch, flags }
`

module.exports = { LUA }
