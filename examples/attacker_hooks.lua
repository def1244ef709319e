-- attacker_hooks.lua: an attacker written as hooks, for --attacker FILE.
--
--   consensus-lua scripts/majority_vote.lua --attacker examples/attacker_hooks.lua \
--       --nodes 5 --byzantine 4
--   consensus-lua scripts/pbft_like.lua --attacker examples/attacker_hooks.lua
--
-- The file returns a table of hooks.  Every faulty node runs the scenario's
-- own protocol, wrapped with them by attackers.wrap (docs/attackers.md): the
-- protocol's code runs as if the node were honest, and the hooks decide what
-- really goes out, what comes in, and what its timers do.
--
-- The hooks are copied into each faulty node, like a protocol: keep them to
-- plain data and functions.  State in an upvalue table (here 'mine') is
-- per node.  Inside a hook, 'node' is the node itself: its send and
-- broadcast go straight to the network, not through 'outgoing'.

local mine = { last = nil }     -- the last message this node sent

local hooks = {}

-- Once per message the protocol sends, per destination ('msg' is our own
-- copy: change it freely).  Return it, nil to drop it, or a list of
-- messages to send instead.
function hooks.outgoing(node, to, msg)
  if type(msg) ~= "table" or to == node.id then return msg end
  -- A split vote: a 'yes' field is flipped toward even ids only.
  if type(msg.yes) == "boolean" and to % 2 == 0 then
    msg.yes = not msg.yes
  end
  mine.last = msg
  -- The highest id gets every message twice.
  if to == node.n - 1 then return { msg, msg } end
  return msg
end

-- Once per message delivered to this node: return it (changed or not) for
-- the protocol to handle, or nil to ignore it.  This one does not listen
-- to node 1.
function hooks.incoming(node, msg, from)
  if from == 1 and node.id ~= 1 then return nil end
  return msg
end

-- Replaces start: honest() runs the protocol's start.  Then a private
-- timer: names starting with "__attack" are the attacker's, and the
-- protocol's timer handler never sees them.
function hooks.start(node, honest)
  honest()
  node:set_timer("__attack_tick", 25)
end

-- Replaces timer, for every timer: honest() runs the protocol's handler.
-- Every 25 ms, for 100 ms, the last message sent goes again to a random
-- peer (a small replay attack).
function hooks.timer(node, name, honest)
  if name ~= "__attack_tick" then return honest() end
  if mine.last ~= nil and node.n > 1 then
    local to = node:random(0, node.n - 2)
    if to >= node.id then to = to + 1 end      -- never itself
    node:send(to, mine.last)
  end
  if node.now < 100 then node:set_timer("__attack_tick", 25) end
end

return hooks
