/*
 * lconsensus.c - luaopen_consensus, the module's entry point.
 *
 * The module table is built here in C: the codec (encode, decode),
 * sorted_pairs, and, in a main state, the raw simulation constructor
 * (_sim).  The pure-Lua parts (the .lua files of lua/consensus) are compiled into the
 * binary and registered in package.preload, so `require "consensus"` works
 * from the stock interpreter with nothing but consensus.so on LUA_CPATH.
 * In a main state, consensus.api then adds the friendly API (sim, options,
 * the report) to the same table.  In a node state it does not: a node has
 * no business starting simulations.
 *
 * No C globals: every state loads its own copy of the module.
 */
#include "lconsensus.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef CS_BUILD_INFO
#define CS_BUILD_INFO "unknown build"
#endif

struct lcs_embedded {
    const char *name, *src;
    size_t len;
};
extern const struct lcs_embedded lcs_embedded[];

void lcs_fmt_ms(char *buf, size_t size, cs_time t)
{
    snprintf(buf, size, "%lld.%03lld", (long long)(t / 1000),
             (long long)((t < 0 ? -t : t) % 1000));
}

/* ------------------------------------------------------- sorted_pairs */

/* Order of keys: numbers (numerically), then strings (bytewise), then
 * booleans (false first), then anything else in a stable but arbitrary
 * order.  Returns <0, 0, >0. */
static int type_rank(lua_State *L, int i)
{
    switch (lua_type(L, i)) {
    case LUA_TNUMBER:
        return 0;
    case LUA_TSTRING:
        return 1;
    case LUA_TBOOLEAN:
        return 2;
    default:
        return 3;
    }
}

static int key_less(lua_State *L)
{
    int ra = type_rank(L, 1), rb = type_rank(L, 2);

    if (ra != rb) {
        lua_pushboolean(L, ra < rb);
    } else if (ra == 0 || ra == 1) {
        lua_pushboolean(L, lua_compare(L, 1, 2, LUA_OPLT));
    } else if (ra == 2) {
        lua_pushboolean(L, !lua_toboolean(L, 1) && lua_toboolean(L, 2));
    } else {
        lua_pushboolean(L, 0);
    }
    return 1;
}

static int sorted_next(lua_State *L)
{
    lua_Integer i = lua_tointeger(L, lua_upvalueindex(2)) + 1;

    lua_pushinteger(L, i);
    lua_replace(L, lua_upvalueindex(2));
    if (lua_rawgeti(L, lua_upvalueindex(1), i) == LUA_TNIL) {
        return 1;
    }
    lua_pushvalue(L, -1);
    lua_gettable(L, 1); /* t[k], honouring __index */
    return 2;
}

int lcs_sorted_pairs(lua_State *L)
{
    lua_Integer n = 0;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_newtable(L); /* [t, keys] */
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_rawseti(L, 2, ++n);
    }
    /* table.sort(keys, key_less) */
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "table");
    lua_getfield(L, -1, "sort");
    lua_pushvalue(L, 2);
    lua_pushcfunction(L, key_less);
    lua_call(L, 2, 0);
    lua_pop(L, 2);
    lua_pushvalue(L, 2);
    lua_pushinteger(L, 0);
    lua_pushcclosure(L, sorted_next, 2);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

/* consensus._choose(seed, n, k): k distinct node ids in [0, n), chosen by
 * the seed alone (its own stream), sorted. */
static int l_choose(lua_State *L)
{
    lua_Integer seed = luaL_checkinteger(L, 1);
    lua_Integer n = luaL_checkinteger(L, 2), k = luaL_checkinteger(L, 3);
    lua_Integer i, j, out = 0;
    cs_rng r;

    luaL_argcheck(L, n >= 0 && n <= 100000000, 2, "bad node count");
    luaL_argcheck(L, k >= 0 && k <= n, 3, "bad count");
    cs_rng_init(&r, (uint64_t)seed, UINT64_C(0xfa017));
    /* Selection sampling (Knuth's algorithm S): ids come out in order. */
    lua_createtable(L, (int)k, 0);
    for (i = 0, j = 0; i < n && j < k; i++) {
        if ((lua_Integer)cs_rng_below(&r, (uint64_t)(n - i)) < k - j) {
            lua_pushinteger(L, i);
            lua_rawseti(L, -2, ++out);
            j++;
        }
    }
    return 1;
}

static int l_ncpu(lua_State *L)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    lua_pushinteger(L, n > 0 ? n : 1);
    return 1;
}

/* ------------------------------------------------------------- opening */

/* package.preload loader of one embedded module (upvalue 1: its index):
 * the source is compiled only when a state requires it, so node states,
 * which rarely do, pay nothing for the modules they never use. */
static int load_embedded(lua_State *L)
{
    const struct lcs_embedded *e =
        &lcs_embedded[lua_tointeger(L, lua_upvalueindex(1))];
    char chunk[128];

    snprintf(chunk, sizeof chunk, "=[consensus] %s", e->name);
    if (luaL_loadbuffer(L, e->src, e->len, chunk) != LUA_OK) {
        return lua_error(L); /* a broken build; say so loudly */
    }
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static void preload_embedded(lua_State *L)
{
    lua_Integer i;

    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    for (i = 0; lcs_embedded[i].name != NULL; i++) {
        if (lua_getfield(L, -1, lcs_embedded[i].name) == LUA_TNIL) {
            lua_pushinteger(L, i);
            lua_pushcclosure(L, load_embedded, 1);
            lua_setfield(L, -3, lcs_embedded[i].name);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

LCS_EXPORT int luaopen_consensus(lua_State *L)
{
    int in_node;

    lua_getfield(L, LUA_REGISTRYINDEX, LCS_NODE_KEY);
    in_node = !lua_isnil(L, -1);
    lua_pop(L, 1);

    lua_createtable(L, 0, 16);
    lua_pushliteral(L, CS_VERSION);
    lua_setfield(L, -2, "_VERSION");
    lua_pushliteral(L, CS_BUILD_INFO);
    lua_setfield(L, -2, "_BUILD");
    lcs_open_codec(L);
    lua_pushcfunction(L, lcs_sorted_pairs);
    lua_setfield(L, -2, "sorted_pairs");
    preload_embedded(L);
    if (!in_node) {
        lcs_open_sim(L);
        lua_pushcfunction(L, l_choose);
        lua_setfield(L, -2, "_choose");
        lua_pushcfunction(L, l_ncpu);
        lua_setfield(L, -2, "_ncpu");
        /* Register the table before the Lua half runs, so that a
         * `require "consensus"` inside it finds this table. */
        luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
        lua_pushvalue(L, -2);
        lua_setfield(L, -2, "consensus");
        lua_pop(L, 1);
        lua_getglobal(L, "require");
        lua_pushliteral(L, "consensus.api");
        lua_call(L, 1, 1);
        lua_pushvalue(L, -2);
        lua_call(L, 1, 0); /* api(M) fills in M */
    }
    return 1;
}
