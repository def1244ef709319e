-- consensus.host: what the consensus-lua executable does with its
-- command line.  Returns a function(argv) -> exit status.
--
-- It parses the host options, answers --help and --version, loads SCRIPT,
-- sets the global 'arg' as lua.c would (arg[0] the script, arg[1..] the
-- script's own arguments), runs it, and returns the worst status of the
-- runs the script made.  Errors propagate to the C host, which prints them.

local consensus = require "consensus"
local cli = require "consensus.cli"

local ipairs, loadfile, print, require = ipairs, loadfile, print, require
local table_unpack, format = table.unpack, string.format
local version = _VERSION
local G = _G

local _ENV = nil

return function(argv)
  local opts, script, rest = cli.parse_host(argv)
  if opts.version then
    print(format("consensus-lua %s (%s; %s)", consensus._VERSION, version, consensus._BUILD))
    return 0
  end
  if opts.help and not script then
    print(cli.help())
    return 0
  end
  if not script then
    cli.usage_error("no SCRIPT given (try: consensus-lua scripts/pbft_like.lua, or --help)")
  end
  -- Modes that run the script several times, in other processes.
  if opts.sweep then
    return require("consensus.sweep").main(opts, script, rest, argv)
  end
  if opts.check_determinism then
    return require("consensus.selfcheck").main(opts, script, rest, argv)
  end
  local chunk, err = loadfile(script)
  if not chunk then
    -- "cannot open x" for a missing file, or a syntax error with its line
    cli.usage_error(err)
  end
  consensus._state.hosted = { opts = opts, script = script, args = rest, argv = argv }
  local arg = { [0] = script }
  for i, a in ipairs(rest) do arg[i] = a end
  G.arg = arg
  chunk(table_unpack(rest))
  if consensus._state.opts == nil then
    -- The script never read its options: reject any it was given.
    consensus.options()
  end
  return consensus.status()
end
