/*
 * test_transfer.c - copying a protocol into node states (lua/ltransfer.c).
 *
 * Each test runs a script in a 'from' state that returns a protocol,
 * copies it into one or more 'to' states as the global P, and runs Lua
 * assertions there.  Failures are checked for their message and for
 * leaving both stacks as they were.  Set CS_BENCH=1 to print the time of
 * copying a 30-function protocol into 1000 states, with and without the
 * dump cache (nothing asserts a time).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lualib.h>

#include "ltransfer.h"

static lua_State *newstate(void)
{
    lua_State *L = luaL_newstate();

    assert_non_null(L);
    luaL_openlibs(L);
    return L;
}

/* Run 'src' in L; fail the test with Lua's message on error. */
static void run(lua_State *L, const char *src)
{
    if (luaL_loadbuffer(L, src, strlen(src), "=test") != LUA_OK
        || lua_pcall(L, 0, 0, 0) != LUA_OK) {
        fail_msg("%s", lua_tostring(L, -1));
    }
}

/* Run the script 'src' (chunk "@proto.lua") in 'from': its result, the
 * protocol, is left on from's stack. */
static void load_proto(lua_State *from, const char *src)
{
    if (luaL_loadbuffer(from, src, strlen(src), "@proto.lua") != LUA_OK
        || lua_pcall(from, 0, 1, 0) != LUA_OK) {
        fail_msg("%s", lua_tostring(from, -1));
    }
}

/* Copy the value on top of 'from' into 'to' as the global P. */
static void copy_ok(lua_State *from, lua_State *to)
{
    int ftop = lua_gettop(from), ttop = lua_gettop(to);

    if (!lcs_transfer(from, -1, to, "Vote")) {
        fail_msg("transfer failed: %s", lua_tostring(from, -1));
    }
    assert_int_equal(lua_gettop(from), ftop);
    assert_int_equal(lua_gettop(to), ttop + 1);
    lua_setglobal(to, "P");
}

/* Copy expecting failure; check both stacks and that the message holds
 * each of the NULL-terminated strings. */
static void copy_fails(lua_State *from, lua_State *to, ...)
{
    int ftop = lua_gettop(from), ttop = lua_gettop(to);
    const char *msg, *want;
    va_list ap;

    assert_int_equal(lcs_transfer(from, -1, to, "Vote"), 0);
    assert_int_equal(lua_gettop(from), ftop + 1);
    assert_int_equal(lua_gettop(to), ttop);
    assert_int_equal(lua_type(from, -1), LUA_TSTRING);
    msg = lua_tostring(from, -1);
    va_start(ap, to);
    while ((want = va_arg(ap, const char *)) != NULL) {
        if (strstr(msg, want) == NULL) {
            fail_msg("message \"%s\" lacks \"%s\"", msg, want);
        }
    }
    va_end(ap);
    lua_pop(from, 1);
}

static void test_scalars_keep_their_subtype(void **state)
{
    lua_State *from = newstate(), *to = newstate();

    (void)state;
    load_proto(from, "return { i = 3, f = 3.0, s = 'a\\0b', yes = true,"
                     " no = false, [2.5] = 'k', [10] = 'ten' }");
    copy_ok(from, to);
    run(to, "assert(math.type(P.i) == 'integer' and P.i == 3)\n"
            "assert(math.type(P.f) == 'float' and P.f == 3.0)\n"
            "assert(P.s == 'a\\0b' and #P.s == 3)\n"
            "assert(P.yes == true and P.no == false)\n"
            "assert(P[2.5] == 'k' and P[10] == 'ten')");
    lua_close(from);
    lua_close(to);
}

static void test_upvalue_numbers_tables_functions_work(void **state)
{
    lua_State *from = newstate(), *to = newstate();

    (void)state;
    load_proto(from,
        "local N = 5\n"
        "local T = { a = 2, list = {10, 20} }\n"
        "local function helper(x) return x * N end\n"
        "local Vote = {}\n"
        "function Vote.f() return helper(T.a) + T.list[2] end\n"
        "return Vote");
    copy_ok(from, to);
    run(to, "assert(P.f() == 30)");
    lua_close(from);
    lua_close(to);
}

static void test_shared_upvalue_stays_shared(void **state)
{
    lua_State *from = newstate(), *to = newstate();

    (void)state;
    load_proto(from,
        "local count = 0\n"
        "function add_ten() count = count + 10 end\n"
        "local P = {}\n"
        "function P.inc() count = count + 1 end\n"
        "P.nested = { get = function() return count end }\n"
        "function P.ten() add_ten() end\n"
        "return P");
    copy_ok(from, to);
    run(to, "P.inc(); P.inc(); assert(P.nested.get() == 2)\n"
            "P.ten(); assert(P.nested.get() == 12)\n"
            "add_ten(); assert(P.nested.get() == 22)");
    lua_close(from);
    lua_close(to);
}

static void test_recursion_cycles_and_identity(void **state)
{
    lua_State *from = newstate(), *to = newstate();

    (void)state;
    load_proto(from,
        "local function fact(n) if n <= 1 then return 1 end\n"
        "  return n * fact(n - 1) end\n"
        "local shared = { x = 1 }\n"
        "local P = { fact = fact, a = shared, b = shared }\n"
        "P.self = P\n"
        "P.also = fact\n"
        "return P");
    copy_ok(from, to);
    run(to, "assert(P.fact(5) == 120)\n"
            "assert(P.self == P and P.a == P.b and P.also == P.fact)");
    lua_close(from);
    lua_close(to);
}

static void test_metatable_is_copied(void **state)
{
    lua_State *from = newstate(), *to = newstate();

    (void)state;
    load_proto(from,
        "local Class = {}\n"
        "Class.__index = Class\n"
        "function Class.hello(o) return 'hi ' .. o.name end\n"
        "local P = { obj = setmetatable({ name = 'n1' }, Class) }\n"
        "return P");
    copy_ok(from, to);
    run(to, "assert(P.obj:hello() == 'hi n1')\n"
            "assert(getmetatable(P.obj).__index == getmetatable(P.obj))");
    lua_close(from);
    lua_close(to);
}

static void test_global_helpers_are_reachable(void **state)
{
    lua_State *from = newstate(), *to = newstate();

    (void)state;
    load_proto(from,
        "function helper(x) return x + 1 end\n"
        "N = 10\n"
        "Shared = {}\n"
        "local P = { shared = Shared }\n"
        "function P.f(x) return helper(x) + N end\n"
        "return P");
    copy_ok(from, to);
    run(to, "assert(P.f(1) == 12)\n"
            "assert(type(helper) == 'function' and N == 10)\n"
            "assert(P.shared == Shared and arg == nil)");
    lua_close(from);
    lua_close(to);
}

static void test_uncopyable_global_is_skipped(void **state)
{
    lua_State *from = newstate(), *to = newstate();

    (void)state;
    load_proto(from,
        "bad = io.stdout\n"
        "bad_table = { ok = 1, co = coroutine.create(print) }\n"
        "good = { 1, 2 }\n"
        "function helper() return bad end\n"
        "local P = {}\n"
        "function P.f() return helper(), bad_table, good[2] end\n"
        "return P");
    copy_ok(from, to);
    run(to, "local a, b, c = P.f()\n"
            "assert(a == nil and b == nil and c == 2)");
    lua_close(from);
    lua_close(to);
}

static void test_library_values_map_by_name(void **state)
{
    lua_State *from = newstate(), *to = newstate();
    const char *mod = "package.loaded.consensus = { version = '0.1',"
                      " id = function() return 'mine' end }";

    (void)state;
    run(from, mod);
    run(to, mod);
    run(to, "package.loaded.consensus.id = function() return 'node' end\n"
            "math.random = function() return 42 end");
    load_proto(from,
        "local insert = table.insert\n"
        "local random = math.random\n"
        "local consensus = require 'consensus'\n"
        "local P = {}\n"
        "function P.get() return insert end\n"
        "function P.r() return random() end\n"
        "function P.m() return consensus end\n"
        "function P.id() return consensus.id() end\n"
        "return P");
    copy_ok(from, to);
    lua_getglobal(to, "P");
    lua_getfield(to, -1, "get");
    lua_call(to, 0, 1);
    lua_getglobal(to, "table");
    lua_getfield(to, -1, "insert");
    assert_true(lua_rawequal(to, -1, -3));
    lua_pop(to, 4);
    run(to, "assert(P.r() == 42)\n"
            "assert(P.m() == package.loaded.consensus)\n"
            "assert(P.id() == 'node')");
    lua_close(from);
    lua_close(to);
}

static void test_userdata_upvalue_fails(void **state)
{
    lua_State *from = newstate(), *to = newstate();

    (void)state;
    lua_pushinteger(to, 7);            /* something below, to be kept */
    load_proto(from,
        "local out = io.stdout\n"
        "local P = {}\n"
        "function P.receive() out:write('x') end\n"
        "return P");
    copy_fails(from, to, "Vote.receive: upvalue 'out'", "userdata", NULL);
    assert_int_equal(lua_tointeger(to, -1), 7);
    lua_close(from);
    lua_close(to);
}

static void test_coroutine_field_fails_naming_it(void **state)
{
    lua_State *from = newstate(), *to = newstate();

    (void)state;
    load_proto(from, "return { helpers = { co = coroutine.create(print) } }");
    copy_fails(from, to, "Vote.helpers.co is a thread", NULL);
    lua_pop(from, 1);
    load_proto(from, "return { 1, 2, coroutine.create(print) }");
    copy_fails(from, to, "Vote[3] is a thread", NULL);
    lua_pop(from, 1);
    load_proto(from, "return { [coroutine.create(print)] = 1 }");
    copy_fails(from, to, "Vote: key is a thread", NULL);
    lua_pop(from, 1);
    load_proto(from, "return { x = setmetatable({},"
                     " { __index = io.stdout }) }");
    copy_fails(from, to, "Vote.x: metatable.__index is a userdata", NULL);
    lua_close(from);
    lua_close(to);
}

static void test_c_function_outside_libraries_fails(void **state)
{
    lua_State *from = newstate(), *to = newstate();

    (void)state;
    load_proto(from,
        "local it = ('abc'):gmatch('.')\n"
        "return { next_char = function() return it() end }");
    copy_fails(from, to, "Vote.next_char: upvalue 'it' is a C function",
               NULL);
    lua_close(from);
    lua_close(to);
}

static void test_missing_library_fails(void **state)
{
    lua_State *from = newstate(), *to = newstate();

    (void)state;
    run(to, "package.loaded.io = nil; io = nil");
    load_proto(from,
        "local open = io.open\n"
        "local P = {}\n"
        "function P.receive() return open end\n"
        "return P");
    copy_fails(from, to, "Vote.receive: upvalue 'open' is io.open, "
               "which node states do not have", NULL);
    lua_close(from);
    lua_close(to);
}

static void test_root_module_is_copied(void **state)
{
    lua_State *from = newstate(), *to = newstate();

    (void)state;
    load_proto(from,
        "local P = { n = 1 }\n"
        "P.self = P\n"
        "package.loaded.myproto = P\n"
        "return P");
    copy_ok(from, to);
    run(to, "assert(P.n == 1 and P.self == P)\n"
            "assert(package.loaded.myproto == nil)");
    lua_close(from);
    lua_close(to);
}

static void test_copies_are_isolated(void **state)
{
    lua_State *from = newstate(), *to1 = newstate(), *to2 = newstate();

    (void)state;
    load_proto(from,
        "local T = { n = 0 }\n"
        "local P = {}\n"
        "function P.bump() T.n = T.n + 1; return T.n end\n"
        "function P.peek() return T.n end\n"
        "return P");
    copy_ok(from, to1);
    copy_ok(from, to2);
    run(to1, "assert(P.bump() == 1 and P.bump() == 2)");
    run(to2, "assert(P.peek() == 0 and P.bump() == 1)");
    lua_getfield(from, -1, "peek");
    lua_call(from, 0, 1);
    assert_int_equal(lua_tointeger(from, -1), 0);
    lua_close(from);
    lua_close(to1);
    lua_close(to2);
}

static void test_debug_info_is_kept(void **state)
{
    lua_State *from = newstate(), *to = newstate();

    (void)state;
    load_proto(from,
        "local P = {}\n"
        "function P.boom()\n"
        "  error('kaput')\n"
        "end\n"
        "return P");
    copy_ok(from, to);
    run(to, "local ok, err = pcall(P.boom)\n"
            "assert(not ok and err:find('proto.lua:3: kaput', 1, true), err)"
            "\nlocal tb = select(2, xpcall(P.boom, debug.traceback))\n"
            "assert(tb:find('proto.lua:3', 1, true), tb)");
    lua_close(from);
    lua_close(to);
}

static void test_deep_nesting_fails_cleanly(void **state)
{
    lua_State *from = newstate(), *to = newstate();

    (void)state;
    load_proto(from, "local t = {} for i = 1, 1000 do t = { t } end\n"
                     "return t");
    copy_fails(from, to, "nested too deeply", NULL);
    lua_close(from);
    lua_close(to);
}

/* An allocator that fails every growing request once 'left' reaches 0;
 * 'left' < 0 means no limit. */
typedef struct budget {
    long left;
} budget;

static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    budget *b = ud;

    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    if (ptr == NULL || nsize > osize) {
        if (b->left == 0) {
            return NULL;
        }
        if (b->left > 0) {
            b->left--;
        }
    }
    return realloc(ptr, nsize);
}

static void test_allocation_failure_in_to_is_a_message(void **state)
{
    lua_State *from = newstate(), *to;
    budget b = { -1 };
    long n;
    int ok = 0, ttop;

    (void)state;
    to = lua_newstate(limited_alloc, &b);
    assert_non_null(to);
    luaL_openlibs(to);
    ttop = lua_gettop(to);
    load_proto(from,
        "local count, T = 0, { 1, 2, { x = 'y' } }\n"
        "function helper(x) return x + 1 end\n"
        "local P = { data = T }\n"
        "function P.inc() count = helper(count) end\n"
        "function P.get() return count, T[3].x end\n"
        "return P");
    for (n = 0; !ok; n++) {
        int ftop = lua_gettop(from);
        b.left = n;
        ok = lcs_transfer(from, -1, to, "Vote");
        b.left = -1;
        if (!ok) {
            assert_int_equal(lua_gettop(from), ftop + 1);
            assert_int_equal(lua_gettop(to), ttop);
            assert_non_null(strstr(lua_tostring(from, -1), "Vote"));
            lua_pop(from, 1);
        }
        assert_true(n < 100000);
    }
    assert_true(n > 1);                 /* some runs did fail */
    lua_setglobal(to, "P");
    run(to, "P.inc(); P.inc(); local c, x = P.get()\n"
            "assert(c == 2 and x == 'y')");
    lua_close(from);
    lua_close(to);
}

/* A protocol of 30 functions with upvalues; left on from's stack. */
static void load_big_proto(lua_State *from)
{
    luaL_Buffer b;
    int i;

    luaL_buffinit(from, &b);
    luaL_addstring(&b, "local insert, fmt = table.insert, string.format\n"
                       "local state, log = { n = 0 }, {}\n"
                       "local P = {}\n");
    for (i = 0; i < 30; i++) {
        char line[256];
        snprintf(line, sizeof line,
                 "P.f%d = function(x)\n"
                 "  state.n = state.n + %d\n"
                 "  if x then insert(log, fmt('%%d', x)) end\n"
                 "  return state.n\n"
                 "end\n", i, i);
        luaL_addstring(&b, line);
    }
    luaL_addstring(&b, "return P");
    luaL_pushresult(&b);
    load_proto(from, lua_tostring(from, -1));
    lua_remove(from, -2);
}

static double copy_into(lua_State *from, lua_State **tos, int n, int cache)
{
    struct timespec t0, t1;
    int i;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (i = 0; i < n; i++) {
        if (!lcs_transfer_cached(from, -2, tos[i], "Vote", cache)) {
            fail_msg("%s", lua_tostring(from, -1));
        }
        lua_setglobal(tos[i], "P");
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0.tv_sec)
           + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
}

static void test_cache_gives_the_same_copies(void **state)
{
    const char *bench = getenv("CS_BENCH");
    int n = bench != NULL && *bench ? 1000 : 20, i, k, round;
    lua_State *from = newstate(), **tos = calloc((size_t)n, sizeof *tos);
    double t[2];

    (void)state;
    assert_non_null(tos);
    load_big_proto(from);
    for (round = 0; round < 2; round++) {       /* 0: uncached, 1: cached */
        lua_newtable(from);                     /* [P, cache] */
        for (i = 0; i < n; i++) {
            tos[i] = newstate();
        }
        t[round] = copy_into(from, tos, n, round ? -1 : 0);
        for (i = 0; i < n; i++) {
            run(tos[i], "assert(P.f3(1) == 3 and P.f29() == 32)");
            lua_close(tos[i]);
        }
        k = 0;
        lua_pushnil(from);
        while (lua_next(from, -2)) {
            assert_int_equal(lua_type(from, -1), LUA_TSTRING);
            k++;
            lua_pop(from, 1);
        }
        assert_int_equal(k, round ? 30 : 0);
        lua_pop(from, 1);
    }
    /* A bad cache entry is ignored, not trusted. */
    lua_newtable(from);
    lua_getfield(from, -2, "f1");
    lua_pushboolean(from, 1);
    lua_rawset(from, -3);
    tos[0] = newstate();
    copy_into(from, tos, 1, -1);
    run(tos[0], "assert(P.f1() == 1)");
    lua_close(tos[0]);
    lua_pop(from, 1);                           /* [P] */
    /* A failing copy through the cache leaves both stacks as they were. */
    lua_newtable(from);                         /* [P, cache] */
    tos[0] = newstate();
    lua_pushinteger(tos[0], 1);
    lua_getfield(from, -2, "f0");
    lua_pushlightuserdata(from, from);
    lua_setupvalue(from, -2, 1);                /* f0's 'state': now bad */
    lua_pop(from, 1);
    assert_int_equal(lcs_transfer_cached(from, -2, tos[0], "Vote", -1), 0);
    assert_non_null(strstr(lua_tostring(from, -1), "light userdata"));
    assert_int_equal(lua_gettop(from), 3);
    assert_int_equal(lua_gettop(tos[0]), 1);
    lua_pop(from, 2);
    lua_close(tos[0]);
    if (bench != NULL && *bench) {
        printf("transfer of 30 functions into %d states: uncached %.3f s "
               "(%.1f us/state), cached %.3f s (%.1f us/state)\n", n, t[0],
               t[0] * 1e6 / n, t[1], t[1] * 1e6 / n);
    }
    free(tos);
    lua_close(from);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars_keep_their_subtype),
        cmocka_unit_test(test_upvalue_numbers_tables_functions_work),
        cmocka_unit_test(test_shared_upvalue_stays_shared),
        cmocka_unit_test(test_recursion_cycles_and_identity),
        cmocka_unit_test(test_metatable_is_copied),
        cmocka_unit_test(test_global_helpers_are_reachable),
        cmocka_unit_test(test_uncopyable_global_is_skipped),
        cmocka_unit_test(test_library_values_map_by_name),
        cmocka_unit_test(test_userdata_upvalue_fails),
        cmocka_unit_test(test_coroutine_field_fails_naming_it),
        cmocka_unit_test(test_c_function_outside_libraries_fails),
        cmocka_unit_test(test_missing_library_fails),
        cmocka_unit_test(test_root_module_is_copied),
        cmocka_unit_test(test_copies_are_isolated),
        cmocka_unit_test(test_debug_info_is_kept),
        cmocka_unit_test(test_deep_nesting_fails_cleanly),
        cmocka_unit_test(test_allocation_failure_in_to_is_a_message),
        cmocka_unit_test(test_cache_gives_the_same_copies),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
