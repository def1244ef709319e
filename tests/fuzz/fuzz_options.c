/*
 * fuzz_options.c - libFuzzer target for the command-line parser
 * (consensus.cli, embedded in the binding).
 *
 * The input is split into argv strings at NUL bytes (a final NUL ends
 * the last one, as in a C argv).  Under a message handler, the driver
 * below calls cli.parse_host(argv); a usage error (a table with a string
 * 'message' and exit = 2) or success are fine; anything else, a plain
 * string error in particular, is a bug in the parser and aborts.  On
 * success it also checks what came back (each host option has its
 * kind's type: an "int" option is an integer, a "num" one a number that
 * is not nan, --byzantine a list of integer ids), that cli.check accepts
 * the options again, and that cli.help(spec, script) returns a string;
 * then cli.parse_script runs over the script's arguments with a spec of
 * every kind (some names taken from those arguments).
 *
 * Coverage: the parser is Lua, which libFuzzer's instrumentation cannot
 * see (liblua is not instrumented), so a line hook feeds (previous line,
 * line) pairs of the Lua code into libFuzzer's extra counters.
 *
 * One Lua state serves every input: the parser keeps no state between
 * calls, and opening the module costs more than a parse.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lconsensus.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXARGS 64

/* libFuzzer reads this section as extra coverage counters. */
#define NEDGES (1u << 14)
__attribute__((used, section("__libfuzzer_extra_counters")))
static uint8_t lua_edges[NEDGES];
static uintptr_t prev_loc;

static lua_State *L;
static int driver_ref = LUA_NOREF;

/* The driver: function(argv) -> nil, or a string describing a bug. */
static const char driver_src[] =
    "local cli = require 'consensus.cli'\n"
    "local traceback, pcall, xpcall = debug.traceback, pcall, xpcall\n"
    "local type, tostring, ipairs, pairs = type, tostring, ipairs, pairs\n"
    "local mtype = math.type\n"
    "local kinds = {}\n"
    "for _, o in ipairs(cli.HOST) do kinds[o[1]] = o[3] end\n"
    "local function handler(e)\n"
    "  if type(e) == 'table' then return e end\n"
    "  return traceback(tostring(e), 2)\n"
    "end\n"
    "local function usage(e)\n"
    "  return type(e) == 'table' and type(e.message) == 'string'\n"
    "         and e.exit == 2\n"
    "end\n"
    "-- nil if every option has its kind's type, else what is wrong\n"
    "local function typed(opts, kindof)\n"
    "  for k, v in pairs(opts) do\n"
    "    local kind = kindof[k]\n"
    "    if k == 'byzantine' and type(v) == 'table' then\n"
    "      for _, id in ipairs(v) do\n"
    "        if mtype(id) ~= 'integer' then\n"
    "          return 'byzantine id ' .. tostring(id)\n"
    "        end\n"
    "      end\n"
    "    elseif kind == 'int' and mtype(v) ~= 'integer'\n"
    "        or kind == 'num' and (type(v) ~= 'number' or v ~= v)\n"
    "        or kind == 'flag' and type(v) ~= 'boolean'\n"
    "        or kind == 'string' and type(v) ~= 'string' then\n"
    "      return ('--%s (%s) = %s (%s)'):format(k, kind, tostring(v),\n"
    "                                           mtype(v) or type(v))\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local defaults = { 3, 0.5, 'text', false, true, -7 }\n"
    "return function(argv)\n"
    "  local ok, opts, script, rest = xpcall(cli.parse_host, handler, argv)\n"
    "  if not ok then\n"
    "    if usage(opts) then return nil end\n"
    "    return 'parse_host raised a non-usage error: ' .. tostring(opts)\n"
    "  end\n"
    "  if type(opts) ~= 'table' or type(rest) ~= 'table'\n"
    "      or script ~= nil and type(script) ~= 'string' then\n"
    "    return 'parse_host returned ' .. type(opts) .. ', ' .. type(script)\n"
    "  end\n"
    "  local bad = typed(opts, kinds)\n"
    "  if bad then return 'parse_host accepted ' .. bad end\n"
    "  ok, bad = xpcall(cli.check, handler, opts)\n"
    "  if not ok then\n"
    "    return 'check of parsed options raised: ' .. tostring(bad)\n"
    "  end\n"
    "  -- a script spec of every kind, some names from the arguments\n"
    "  local spec = { count = { 3, 'a count' }, rate = { 0.25 },\n"
    "                 label = { 'x', 'a label' },\n"
    "                 verbose = { false, 'talk' } }\n"
    "  local kindof = { count = 'int', rate = 'num', label = 'string',\n"
    "                   verbose = 'flag' }\n"
    "  for k, v in pairs(kinds) do kindof[k] = v end\n"
    "  for i = 1, 6 do\n"
    "    local name = rest[i] and rest[i]:gsub('[^%w_]', '')\n"
    "    if name and name ~= '' and not kinds[name] then\n"
    "      local d = defaults[i]\n"
    "      spec[name] = { d, i % 2 == 0 and 'help of ' .. name or nil }\n"
    "      kindof[name] = type(d) == 'boolean' and 'flag'\n"
    "        or mtype(d) == 'integer' and 'int'\n"
    "        or type(d) == 'number' and 'num' or 'string'\n"
    "    end\n"
    "  end\n"
    "  local ok2, h = xpcall(cli.help, handler, spec, script)\n"
    "  if not ok2 or type(h) ~= 'string' then\n"
    "    return 'help raised: ' .. tostring(h)\n"
    "  end\n"
    "  ok2, h = xpcall(cli.help, handler)\n"
    "  if not ok2 or type(h) ~= 'string' then\n"
    "    return 'help() raised: ' .. tostring(h)\n"
    "  end\n"
    "  for _, with_host in ipairs { true, false } do\n"
    "    local ok3, o = xpcall(cli.parse_script, handler, rest, spec, {},\n"
    "                          with_host)\n"
    "    if not ok3 then\n"
    "      if not usage(o) then\n"
    "        return 'parse_script raised a non-usage error: ' .. tostring(o)\n"
    "      end\n"
    "    else\n"
    "      bad = typed(o, kindof)\n"
    "      if bad then return 'parse_script accepted ' .. bad end\n"
    "    end\n"
    "  end\n"
    "  return nil\n"
    "end\n";

static int panic(lua_State *S)
{
    fprintf(stderr, "fuzz_options: unprotected Lua error: %s\n",
            lua_tostring(S, -1) ? lua_tostring(S, -1) : "(not a string)");
    abort();
    return 0;
}

/* Feed Lua line-to-line edges to libFuzzer.  Chunk names are strings
 * interned for the life of the state, so their addresses are stable. */
static void line_hook(lua_State *S, lua_Debug *ar)
{
    uintptr_t loc;

    if (!lua_getinfo(S, "S", ar))
        return;
    loc = ((uintptr_t)ar->source * 31u) ^ ((uintptr_t)ar->currentline
                                           * 2654435761u);
    lua_edges[(loc ^ prev_loc) & (NEDGES - 1)]++;
    prev_loc = loc >> 1;
}

/* Protected setup: the module preloaded, then the driver.  -> driver */
static int setup(lua_State *S)
{
    luaL_openlibs(S);
    luaL_getsubtable(S, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(S, luaopen_consensus);
    lua_setfield(S, -2, "consensus");
    lua_pop(S, 1);
    lua_getglobal(S, "require");
    lua_pushliteral(S, "consensus");
    lua_call(S, 1, 0);
    if (luaL_loadbuffer(S, driver_src, sizeof driver_src - 1,
                        "=fuzz_options") != LUA_OK) {
        return lua_error(S);
    }
    lua_call(S, 0, 1);
    return 1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if ((L = luaL_newstate()) == NULL)
        abort();
    lua_atpanic(L, panic);
    lua_pushcfunction(L, setup);
    if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
        fprintf(stderr, "fuzz_options: setup: %s\n", lua_tostring(L, -1));
        abort();
    }
    driver_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* Protected: build argv from the input and run the driver.
 * [data (light), size] -> bug message or nil */
static int run(lua_State *S)
{
    const char *p = lua_touserdata(S, 1);
    size_t size = (size_t)lua_tointeger(S, 2), i = 0, n;
    int argc = 0;

    lua_rawgeti(S, LUA_REGISTRYINDEX, driver_ref);
    lua_createtable(S, 8, 0);
    while (i < size && argc < MAXARGS) {
        const char *z = memchr(p + i, '\0', size - i);

        n = z != NULL ? (size_t)(z - (p + i)) : size - i;
        lua_pushlstring(S, p + i, n);
        lua_rawseti(S, -2, ++argc);
        i += n + 1;
    }
    lua_sethook(S, line_hook, LUA_MASKLINE, 0);
    lua_call(S, 1, 1);
    lua_sethook(S, NULL, 0, 0);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t i;

    prev_loc = 0;
    lua_pushcfunction(L, run);
    lua_pushlightuserdata(L, (void *)data);
    lua_pushinteger(L, (lua_Integer)size);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK || !lua_isnil(L, -1)) {
        lua_sethook(L, NULL, 0, 0);
        fprintf(stderr, "fuzz_options: %s\n  argv:",
                lua_tostring(L, -1) ? lua_tostring(L, -1) : "error");
        for (i = 0; i < size; i++) {
            if (i == 0 || data[i - 1] == '\0')
                fprintf(stderr, " '");
            if (data[i] == '\0')
                fprintf(stderr, "'");
            else if (data[i] >= 0x20 && data[i] < 0x7f)
                fputc(data[i], stderr);
            else
                fprintf(stderr, "\\x%02x", data[i]);
        }
        fprintf(stderr, "%s\n", size && data[size - 1] ? "'" : "");
        abort();
    }
    lua_pop(L, 1);
    /* Free this input's garbage now: libFuzzer runs a (slow) leak check
     * after any input that leaves more mallocs than frees. */
    lua_gc(L, LUA_GCCOLLECT);
    return 0;
}
