/*
 * fuzz_transfer.c - libFuzzer target for copying values between states
 * (lcs_transfer, lcs_transfer_cached).
 *
 * Each input builds a value in a 'from' state with the standard
 * libraries, then copies it into one or two 'to' states.  The copy must
 * succeed or fail with a message, never crash, hang, leak or raise
 * outside a protected call, and the stacks must follow the contract:
 * on success 'from' unchanged and one value more on 'to'; on failure one
 * string more on 'from' and 'to' unchanged.  When the value is plain
 * data (it encodes as a message), the copy must encode to the same
 * canonical bytes.  A violation aborts.
 *
 * Input layout:
 *   byte 0  mode: bit 0-1 == 0: the rest is Lua source (a chunk whose
 *           first result is copied), else a program for the generator
 *           below; bit 2-3: what 'to' has (0 all standard libraries,
 *           1 a node state's: no io, os, debug; 2 base only; 3 nothing);
 *           bit 4: copy twice with a dump cache (two 'to' states);
 *           bit 5: cap to's memory tightly; bit 6: cap from's memory at
 *           its use before the copy; bit 7: name the root NULL
 *   byte 1  the memory slack of those caps (in units of 256 bytes for
 *           'to', 64 for 'from')
 *   byte 2  the pool slot copied (generator mode)
 *   rest    Lua source, or generator operations
 *
 * The generator keeps a pool of NSLOT values in 'from' and reads
 * operations of a few bytes each: scalars, tables, fields, metatables,
 * closures from a fixed set of factories (shared and joined upvalues,
 * recursion, an _ENV upvalue, library values reached through globals),
 * library values (modules, their functions, userdata, threads, C
 * closures outside package.loaded), user globals, modules registered in
 * package.loaded, wide and deep tables and closure chains (past the
 * transfer's nesting limit).  It reaches the transfer's interesting
 * cases far more often than random source text, most of which does not
 * parse.  Source mode covers the rest.
 *
 * Safety: fuzzed source runs in 'from' with the dangerous functions
 * (files, processes, binary chunks, hooks, the registry) replaced by a
 * stub that raises, a memory cap, and a count hook that makes every
 * instruction past the budget raise, so pcall cannot swallow it.  'to'
 * gets the same stubs and hook: a copied __gc runs there at lua_close,
 * and a library function copied by path must not reach the real os.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lcodec.h"
#include "lconsensus.h"
#include "ltransfer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NSLOT 16
#define BUDGET 200000           /* VM instructions per state */
#define HOOK_EVERY 1000
#define MEM_CAP ((size_t)64 << 20)

/* Per-state data, reached through the allocator's ud. */
typedef struct box {
    size_t used, limit;
    long ticks;
} box;

/* ------------------------------------------------------------ states */

static void *fz_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    box *b = ud;
    size_t old = ptr != NULL ? osize : 0;
    void *p;

    if (nsize == 0) {
        free(ptr);
        b->used -= old;
        return NULL;
    }
    if (nsize > old && b->used + (nsize - old) > b->limit)
        return NULL;
    if ((p = realloc(ptr, nsize)) != NULL)
        b->used = b->used - old + nsize;
    return p;
}

static int panic(lua_State *L)
{
    fprintf(stderr, "fuzz_transfer: unprotected Lua error: %s\n",
            lua_tostring(L, -1) ? lua_tostring(L, -1) : "(not a string)");
    abort();
    return 0;
}

static void count_hook(lua_State *L, lua_Debug *ar)
{
    box *b;

    (void)ar;
    lua_getallocf(L, (void **)&b);
    b->ticks += HOOK_EVERY;
    if (b->ticks > BUDGET) {
        /* From now on every instruction of this thread raises. */
        lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
        luaL_error(L, "fuzz: instruction budget exceeded");
    }
}

static int stub(lua_State *L)
{
    return luaL_error(L, "fuzz: function disabled");
}

/* load(chunk [, name [, mode [, env]]]) for text chunks only: binary
 * chunks are not safe on arbitrary bytes. */
static int load_text(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    const char *name = luaL_optstring(L, 2, s);

    if (luaL_loadbufferx(L, s, len, name, "t") != LUA_OK) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    if (!lua_isnone(L, 4)) {
        lua_pushvalue(L, 4);
        if (lua_setupvalue(L, -2, 1) == NULL)
            lua_pop(L, 1);
    }
    return 1;
}

/* Replace t[name] (if t is a table) by f, at path "lib.name". */
static void replace(lua_State *L, const char *lib, const char *name,
                    lua_CFunction f)
{
    if (lua_getglobal(L, lib) == LUA_TTABLE) {
        lua_pushcfunction(L, f);
        lua_setfield(L, -2, name);
    }
    lua_pop(L, 1);
}

static const char *const denied[][2] = {
    {"_G", "dofile"}, {"_G", "loadfile"},
    {"io", "open"}, {"io", "popen"}, {"io", "lines"}, {"io", "input"},
    {"io", "output"}, {"io", "read"}, {"io", "write"}, {"io", "close"},
    {"io", "tmpfile"},
    {"os", "execute"}, {"os", "exit"}, {"os", "remove"}, {"os", "rename"},
    {"os", "tmpname"}, {"os", "getenv"}, {"os", "setlocale"},
    {"package", "loadlib"},
    {"debug", "sethook"}, {"debug", "debug"}, {"debug", "getregistry"},
    {"debug", "setcstacklimit"},
    /* patterns can backtrack for ever inside one C call */
    {"string", "find"}, {"string", "match"}, {"string", "gmatch"},
    {"string", "gsub"},
};

/* Open the libraries 'kind' says (see the header), sandboxed.  'to' is 0
 * for 'from', 1 for a 'to' state, 2 for one that loads consensus (done
 * only when 'from' has, since compiling its Lua half costs). */
static void open_sandboxed(lua_State *L, int kind, int to)
{
    size_t i;

    if (kind == 3)
        return;
    if (kind == 2) {
        luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
        lua_pop(L, 1);
    } else {
        luaL_openlibs(L);
    }
    for (i = 0; i < sizeof denied / sizeof denied[0]; i++)
        replace(L, denied[i][0], denied[i][1], stub);
    replace(L, "_G", "load", load_text);
    if (lua_getglobal(L, "package") == LUA_TTABLE) {
        lua_pushliteral(L, "");
        lua_setfield(L, -2, "path");
        lua_pushliteral(L, "");
        lua_setfield(L, -2, "cpath");
    }
    lua_pop(L, 1);
    /* The consensus module as node states have it (no simulations to
     * start): preloaded in 'from' (a script may require it) and loaded
     * in 'to' (a node state has it). */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_consensus);
    lua_setfield(L, -2, "consensus");
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, LCS_NODE_KEY);
    if (to == 2) {
        luaL_requiref(L, "consensus", luaopen_consensus, 0);
        lua_pop(L, 1);
    }
    if (kind == 1) {                /* as lnode.c: no io, os, debug */
        static const char *const gone[] = {"io", "os", "debug"};

        luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
        for (i = 0; i < 3; i++) {
            lua_pushnil(L);
            lua_setfield(L, -2, gone[i]);
            lua_pushnil(L);
            lua_setglobal(L, gone[i]);
        }
        lua_pop(L, 1);
    }
}

/* Protected: open the libraries.  [kind, to] */
static int open_call(lua_State *L)
{
    int kind = (int)lua_tointeger(L, 1), to = (int)lua_tointeger(L, 2);

    lua_settop(L, 0);
    open_sandboxed(L, kind, to);
    return 0;
}

static lua_State *new_state(box *b, int kind, int to)
{
    lua_State *L;

    memset(b, 0, sizeof *b);
    b->limit = MEM_CAP;
    if ((L = lua_newstate(fz_alloc, b)) == NULL)
        return NULL;
    lua_atpanic(L, panic);
    lua_pushcfunction(L, open_call);
    lua_pushinteger(L, kind);
    lua_pushinteger(L, to);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        lua_close(L);
        return NULL;
    }
    lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
    return L;
}

/* --------------------------------------------------------- generator */

typedef struct rd {
    const uint8_t *p, *end;
    unsigned work;              /* elements the bulk operations may add */
} rd;

/* Take up to 'n' from the bulk budget: an input repeating the wide and
 * deep operations would otherwise spend most of the time building. */
static unsigned take(rd *r, unsigned n)
{
    if (n > r->work)
        n = r->work;
    r->work -= n;
    return n;
}

static unsigned byte(rd *r)
{
    return r->p < r->end ? *r->p++ : 0;
}

/* Closure factories: each takes (a, b) from the pool and returns one
 * value. */
static const char *const factories[] = {
    /* plain upvalues */
    "local a, b = ... return function() return a, b end",
    /* two closures sharing an upvalue, one returned through the other */
    "local a, b = ... local function g() return a end "
    "local function h() a = b return g end return h",
    /* recursion: the function is its own upvalue */
    "local a = ... local function rec(n) if n > 0 then return rec(n - 1) "
    "end return a end return rec",
    /* library values and user globals through _ENV */
    "return function() return print, math.floor, string, io, os.time, "
    "package.loaded, x_global, _G end",
    "local a, b = ... return function() local t = { a, b } return t end",
    /* metatable with functions */
    "local a, b = ... return setmetatable({}, { __index = function() "
    "return a end, __call = function() return b end, __gc = function() "
    "end })",
    /* nested closures */
    "local a, b = ... local x <const> = 5 local function inner() "
    "return a, x end return function() return inner, b end",
    /* no upvalue at all */
    "return function() return 1 end",
    /* an _ENV upvalue that is not the globals */
    "local a, b = ... local _ENV = a return function() return y, b end",
    /* two closures sharing one upvalue, in a table */
    "local a, b = ... local function g() return a end "
    "local function h(v) a = v end return { g, h, b }",
    /* a coroutine-made closure (a thread value as upvalue) */
    "local a = ... local co = coroutine.create(function() return a end) "
    "return function() return co end",
    /* a C closure outside package.loaded */
    "local a = ... local it = coroutine.wrap(print) "
    "return function() return it, a end",
};
#define NFACT (sizeof factories / sizeof factories[0])

/* Library values and values that cannot be copied. */
static const char *const libvals[] = {
    "return print", "return math", "return math.floor", "return string",
    "return string.format", "return io", "return io.open",
    "return io.stdout", "return os", "return os.time",
    "return coroutine.create(print)", "return _G", "return package",
    "return package.loaded", "return table.concat", "return utf8",
    "return debug", "return debug.getinfo", "return require",
    "return coroutine.running()", "return coroutine.wrap(print)",
    "return (utf8.codes('x'))", "return require 'consensus'",
    "return require('consensus').encode",
    "return setmetatable({}, { __index = string })",
    "return getmetatable('')",
};
#define NLIB (sizeof libvals / sizeof libvals[0])

static const double floats[] = {
    0.5, -0.0, 1.0, 1e300, -1e-300, 9007199254740992.0,
    9223372036854775808.0, 3.14159
};

/* Slot for byte 'c'. */
#define SLOT(c) ((int)((c) % NSLOT) + 1)

/* Push the value of pool slot c.  Pool at index 'pool'. */
static int get(lua_State *L, int pool, unsigned c)
{
    return lua_rawgeti(L, pool, SLOT(c));
}

static void set(lua_State *L, int pool, unsigned c)
{
    lua_rawseti(L, pool, SLOT(c));
}

/* Whether the value on top can be a table key for rawset. */
static int good_key(lua_State *L)
{
    int t = lua_type(L, -1);

    if (t == LUA_TNIL)
        return 0;
    return !(t == LUA_TNUMBER && !lua_isinteger(L, -1)
             && isnan(lua_tonumber(L, -1)));
}

/* The chunks, compiled once per input (compiling them for every
 * operation made the target ten times slower): CHUNKS[k] for k < NFACT
 * is factories[k], then the libvals, then CHAIN. */
#define CHUNKS 2                /* gen_call's stack slot for them */
#define CHAIN ((int)(NFACT + NLIB))

static const char chain_src[] = "local a = ... return function() return a end";

/* Run chunk 'k' with (a, b) from the pool; its first result (or nil) is
 * left on top. */
static void run_chunk(lua_State *L, int pool, int k, unsigned a, unsigned b)
{
    lua_rawgeti(L, CHUNKS, k + 1);
    get(L, pool, a);
    get(L, pool, b);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
        lua_pop(L, 1);
        lua_pushnil(L);
    }
}

/* One generator operation.  Protected (run inside gen_call). */
static void gen_op(lua_State *L, int pool, rd *r)
{
    unsigned op = byte(r), a = byte(r), b, c, i, n;
    char buf[64];

    switch (op % 20) {
    case 0:                                 /* integer */
        b = byte(r);
        c = byte(r);
        lua_pushinteger(L, (lua_Integer)((uint64_t)(int64_t)(int8_t)b
                                         << (c % 64)));
        set(L, pool, a);
        break;
    case 1:                                 /* float */
        b = byte(r);
        lua_pushnumber(L, b < 8 ? floats[b] : b == 8 ? HUGE_VAL
                          : b == 9 ? -HUGE_VAL : b == 10 ? NAN
                          : (double)b / 7.0);
        set(L, pool, a);
        break;
    case 2:                                 /* string */
        n = byte(r) % 48;
        for (i = 0; i < n; i++)
            buf[i] = (char)byte(r);
        lua_pushlstring(L, buf, n);
        set(L, pool, a);
        break;
    case 3:                                 /* boolean or nil */
        b = byte(r) % 3;
        if (b == 2)
            lua_pushnil(L);
        else
            lua_pushboolean(L, (int)b);
        set(L, pool, a);
        break;
    case 4:                                 /* new table */
        b = byte(r);
        lua_createtable(L, (int)(b & 15), (int)(b >> 4));
        set(L, pool, a);
        break;
    case 5:                                 /* P[a][P[b]] = P[c] */
        b = byte(r);
        c = byte(r);
        if (get(L, pool, a) == LUA_TTABLE) {
            get(L, pool, b);
            if (good_key(L)) {
                get(L, pool, c);
                lua_rawset(L, -3);
            } else {
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
        break;
    case 6:                                 /* P[a][i] = P[c] */
        b = byte(r);
        c = byte(r);
        if (get(L, pool, a) == LUA_TTABLE) {
            get(L, pool, c);
            lua_rawseti(L, -2, (lua_Integer)b - 8);
        }
        lua_pop(L, 1);
        break;
    case 7:                                 /* setmetatable(P[a], P[b]) */
        b = byte(r);
        if (get(L, pool, a) == LUA_TTABLE) {
            if (get(L, pool, b) == LUA_TTABLE || lua_isnil(L, -1))
                lua_setmetatable(L, -2);
            else
                lua_pop(L, 1);
        }
        lua_pop(L, 1);
        break;
    case 8:                                 /* closure from a factory */
        b = byte(r);
        c = byte(r);
        run_chunk(L, pool, (int)(byte(r) % NFACT), b, c);
        set(L, pool, a);
        break;
    case 9:                                 /* library value */
        run_chunk(L, pool, (int)(NFACT + byte(r) % NLIB), 0, 0);
        set(L, pool, a);
        break;
    case 10:                                /* user global */
        b = byte(r);
        snprintf(buf, sizeof buf, "g%u", b % 8);
        get(L, pool, a);
        lua_setglobal(L, b & 8 ? "x_global" : buf);
        break;
    case 11:                                /* alias */
        get(L, pool, byte(r));
        set(L, pool, a);
        break;
    case 12:                                /* upvalue join */
        b = byte(r);
        c = byte(r);
        get(L, pool, a);
        get(L, pool, b);
        if (lua_type(L, -2) == LUA_TFUNCTION && !lua_iscfunction(L, -2)
            && lua_type(L, -1) == LUA_TFUNCTION && !lua_iscfunction(L, -1)
            && lua_getupvalue(L, -2, (int)(c & 3) + 1) != NULL) {
            lua_pop(L, 1);
            if (lua_getupvalue(L, -1, (int)(c >> 2 & 3) + 1) != NULL) {
                lua_pop(L, 1);
                lua_upvaluejoin(L, -2, (int)(c & 3) + 1, -1,
                                (int)(c >> 2 & 3) + 1);
            }
        }
        lua_pop(L, 2);
        break;
    case 13:                                /* set an upvalue */
        b = byte(r);
        c = byte(r);
        if (get(L, pool, a) == LUA_TFUNCTION) {
            get(L, pool, b);
            if (lua_setupvalue(L, -2, (int)(c & 3) + 1) == NULL)
                lua_pop(L, 1);
        }
        lua_pop(L, 1);
        break;
    case 14:                                /* a module or its field */
        b = byte(r);
        luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
        if (b & 8) {
            /* a library path whose value in 'to' has another type */
            static const char *const mods[] = {"math", "string", "table",
                                               "os"};
            static const char *const fields[] = {"floor", "format",
                                                 "concat", "time"};

            if (lua_getfield(L, -1, mods[b % 4]) == LUA_TTABLE) {
                get(L, pool, a);
                lua_setfield(L, -2, fields[b % 4]);
            }
            lua_pop(L, 2);
            break;
        }
        get(L, pool, a);
        snprintf(buf, sizeof buf, "fuzzmod%u", b % 4);
        lua_setfield(L, -2, b & 4 ? "string" : buf);
        lua_pop(L, 1);
        break;
    case 15:                                /* a wide table */
        n = take(r, byte(r) * 4u);
        lua_createtable(L, 0, 0);
        for (i = 0; i < n; i++) {
            if (i % 3 == 0) {
                lua_pushinteger(L, (lua_Integer)i * 7);
            } else {
                snprintf(buf, sizeof buf, "k%u", i);
                lua_pushstring(L, buf);
            }
            get(L, pool, (unsigned)(a + i));
            if (lua_isnil(L, -1)) {
                lua_pop(L, 1);
                lua_pushinteger(L, (lua_Integer)i);
            }
            lua_rawset(L, -3);
        }
        set(L, pool, a);
        break;
    case 16:                                /* deep nesting of tables */
        n = byte(r);
        n = take(r, n + byte(r));           /* up to 510 */
        get(L, pool, byte(r));
        for (i = 0; i < n; i++) {
            lua_createtable(L, 1, 0);
            lua_insert(L, -2);
            lua_rawseti(L, -2, 1);
        }
        set(L, pool, a);
        break;
    case 17:                                /* a chain of closures */
        n = byte(r);
        n = take(r, n + byte(r));
        get(L, pool, byte(r));
        for (i = 0; i < n; i++) {
            lua_rawgeti(L, CHUNKS, CHAIN + 1);
            lua_insert(L, -2);
            lua_call(L, 1, 1);
        }
        set(L, pool, a);
        break;
    case 18:                                /* P[a] = getmetatable(P[b]) */
        if (get(L, pool, byte(r)) == LUA_TTABLE && lua_getmetatable(L, -1)) {
            set(L, pool, a);
        }
        lua_pop(L, 1);
        break;
    default:                                /* a userdata */
        b = byte(r);
        if (b & 4) {
            lua_pushlightuserdata(L, r);
            set(L, pool, a);
            break;
        }
        lua_newuserdatauv(L, 8, 1);
        if (b & 1) {
            luaL_newmetatable(L, b & 2 ? "fuzz.Box" : "fuzz.Other");
            lua_setmetatable(L, -2);
        }
        set(L, pool, a);
        break;
    }
}

/* Protected: run the generator.  [pool, rd] -> pool */
static int gen_call(lua_State *L)
{
    rd *r = lua_touserdata(L, 2);
    int ops = 0, k;
    const char *src;

    lua_settop(L, 1);
    lua_createtable(L, CHAIN + 1, 0);       /* [pool, chunks] */
    for (k = 0; k <= CHAIN; k++) {
        src = k < (int)NFACT ? factories[k]
              : k < CHAIN ? libvals[k - (int)NFACT] : chain_src;
        if (luaL_loadstring(L, src) != LUA_OK)
            return lua_error(L);            /* a typo above */
        lua_rawseti(L, CHUNKS, k + 1);
    }
    while (r->p < r->end && ops++ < 256) {
        luaL_checkstack(L, 8, "fuzz");
        gen_op(L, 1, r);
        lua_settop(L, CHUNKS);
    }
    lua_settop(L, 1);
    return 1;
}

/* -------------------------------------------------------------- driver */

static void bad(const char *what, const uint8_t *data, size_t size)
{
    size_t i;

    fprintf(stderr, "fuzz_transfer: %s\n  input (%zu bytes):", what, size);
    for (i = 0; i < size && i < 256; i++)
        fprintf(stderr, " %02x", data[i]);
    fprintf(stderr, "%s\n", size > 256 ? " ..." : "");
    abort();
}

/* Protected: [value, wbuf] -> nothing; the canonical encoding in wbuf. */
static int encode_call(lua_State *L)
{
    lcs_encode(L, 1, lua_touserdata(L, 2), (size_t)1 << 20, 1, "fuzz");
    return 0;
}

/* Encode the value at 'idx' of L into b; 0 if it is not plain data (or
 * too large, or memory ran out). */
static int encode_value(lua_State *L, int idx, lcs_wbuf *b)
{
    idx = lua_absindex(L, idx);
    lua_pushcfunction(L, encode_call);
    lua_pushvalue(L, idx);
    lua_pushlightuserdata(L, b);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        lua_pop(L, 1);
        return 0;
    }
    return 1;
}

/* FUZZ_VERBOSE=1 in the environment: print each copy's outcome. */
static int verbose = -1;

/* Plain data must survive the copy: same canonical encoding.  Run with
 * the memory caps lifted (an encode that runs out in one state only
 * proves nothing). */
static void check_same(lua_State *F, int idx, lua_State *T,
                       const uint8_t *data, size_t size)
{
    lcs_wbuf bf = {0}, bt = {0};
    box *fb, *tb;
    size_t flim, tlim;
    int same;

    lua_getallocf(F, (void **)&fb);
    lua_getallocf(T, (void **)&tb);
    flim = fb->limit;
    tlim = tb->limit;
    fb->limit = tb->limit = MEM_CAP;
    if (encode_value(F, idx, &bf)) {
        if (!encode_value(T, -1, &bt))
            bad("plain data copied into something that does not encode",
                data, size);
        same = bf.len == bt.len && memcmp(bf.p, bt.p, bf.len) == 0;
        if (!same)
            bad("plain data copied into different data", data, size);
        if (verbose)
            fprintf(stderr, "fuzz_transfer: same data (%zu bytes)\n", bf.len);
    }
    fb->limit = flim;
    tb->limit = tlim;
    lcs_wbuf_free(&bf);
    lcs_wbuf_free(&bt);
}

/* Copy the value at 'idx' of F into T and check the contract. */
static void copy_once(lua_State *F, int idx, lua_State *T, const char *name,
                      int cache, const uint8_t *data, size_t size)
{
    int ftop = lua_gettop(F), ttop = lua_gettop(T), ok;

    ok = cache ? lcs_transfer_cached(F, idx, T, name, cache)
               : lcs_transfer(F, idx, T, name);
    if (verbose)
        fprintf(stderr, "fuzz_transfer: %s%s\n", ok ? "copied a " : "",
                ok ? luaL_typename(T, -1) : lua_tostring(F, -1));
    if (ok) {
        if (lua_gettop(F) != ftop || lua_gettop(T) != ttop + 1)
            bad("success with wrong stacks", data, size);
        check_same(F, idx, T, data, size);
    } else {
        if (lua_gettop(T) != ttop || lua_gettop(F) != ftop + 1)
            bad("failure with wrong stacks", data, size);
        if (lua_type(F, -1) != LUA_TSTRING)
            bad("failure without a message string", data, size);
        lua_pop(F, 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned mode, tkind, slack;
    lua_State *F, *T1 = NULL, *T2 = NULL;
    box fb, tb1, tb2;
    const char *name;
    int root, cache = 0, tto;
    rd r;

    if (verbose < 0)
        verbose = getenv("FUZZ_VERBOSE") != NULL;
    if (size < 3)
        return 0;
    mode = data[0];
    slack = data[1];
    tkind = mode >> 2 & 3;
    name = mode & 0x80 ? NULL : "Proto";
    if ((F = new_state(&fb, 0, 0)) == NULL)
        return 0;
    if ((mode & 3) == 0) {
        if (luaL_loadbufferx(F, (const char *)data + 3, size - 3, "=fuzz",
                             "t") != LUA_OK
            || lua_pcall(F, 0, 1, 0) != LUA_OK) {
            goto out;                       /* not a value: nothing to do */
        }
    } else {
        r.p = data + 3;
        r.end = data + size;
        r.work = 4096;
        lua_pushcfunction(F, gen_call);
        lua_createtable(F, NSLOT, 0);
        lua_pushlightuserdata(F, &r);
        if (lua_pcall(F, 2, 1, 0) != LUA_OK)
            goto out;
        lua_rawgeti(F, -1, SLOT(data[2]));  /* [pool, value] */
    }
    root = lua_gettop(F);
    lua_getfield(F, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    tto = lua_getfield(F, -1, "consensus") != LUA_TNIL ? 2 : 1;
    lua_pop(F, 2);
    /* The copy runs no Lua code in 'from'; the hook would only stop it. */
    lua_sethook(F, NULL, 0, 0);
    if (mode & 0x10) {
        lua_newtable(F);                    /* the dump cache */
        cache = lua_gettop(F);
    }
    if ((T1 = new_state(&tb1, (int)tkind, tto)) == NULL)
        goto out;
    if (mode & 0x20)
        tb1.limit = tb1.used + 256u * slack;
    if (mode & 0x40)
        fb.limit = fb.used + 64u * slack;
    copy_once(F, root, T1, name, cache, data, size);
    if (mode & 0x10) {
        fb.limit = MEM_CAP;
        if ((T2 = new_state(&tb2, (int)tkind, tto)) == NULL)
            goto out;
        copy_once(F, root, T2, name, cache, data, size);
    }
out:
    /* Finalizers run at close, under the hook and the sandbox. */
    fb.limit = tb1.limit = tb2.limit = MEM_CAP;
    lua_sethook(F, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
    if (T2 != NULL)
        lua_close(T2);
    if (T1 != NULL)
        lua_close(T1);
    lua_close(F);
    return 0;
}
