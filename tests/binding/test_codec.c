/*
 * test_codec.c - the message codec (lua/lcodec.c) through its C API.
 *
 * Values are built by small Lua chunks in one lua_State, encoded there,
 * decoded in another lua_State and compared across the two states.  Error
 * cases run lcs_encode under lua_pcall and check the whole message.  The
 * decoder is fed every truncation of valid encodings, hand-made lies and
 * a few thousand random or mutated byte strings from a fixed-seed PRNG.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "lcodec.h"

#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------------- helpers */

static lua_State *new_state(void)
{
    lua_State *L = luaL_newstate();

    assert_non_null(L);
    luaL_openlibs(L);
    return L;
}

/* Push the single result of 'chunk'. */
static void eval(lua_State *L, const char *chunk)
{
    if (luaL_loadstring(L, chunk) != LUA_OK
        || lua_pcall(L, 0, 1, 0) != LUA_OK)
        fail_msg("chunk failed: %s", lua_tostring(L, -1));
}

typedef struct encreq {
    lcs_wbuf *b;
    size_t max;
    int canonical;
} encreq;

static int l_encode(lua_State *L)
{
    encreq *r = lua_touserdata(L, lua_upvalueindex(1));

    lcs_encode(L, 1, r->b, r->max, r->canonical, "msg");
    lua_pushinteger(L, lua_gettop(L));  /* to check the stack is intact */
    return 1;
}

/* Encode the value on top of L (left there) into 'b', protected.  Returns
 * NULL on success, else the error message (in a static buffer). */
static const char *try_encode(lua_State *L, lcs_wbuf *b, size_t max,
                              int canonical)
{
    static char msg[512];
    encreq r = { b, max, canonical };

    lua_pushlightuserdata(L, &r);
    lua_pushcclosure(L, l_encode, 1);
    lua_pushvalue(L, -2);
    if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
        assert_int_equal(lua_tointeger(L, -1), 1);
        lua_pop(L, 1);
        return NULL;
    }
    snprintf(msg, sizeof msg, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return msg;
}

/* Encode 'chunk''s value in L and return the error message (NULL: ok). */
static const char *encode_error(lua_State *L, const char *chunk, size_t max,
                                int canonical)
{
    lcs_wbuf b = { 0 };
    const char *err;

    eval(L, chunk);
    err = try_encode(L, &b, max, canonical);
    lua_pop(L, 1);
    lcs_wbuf_free(&b);
    return err;
}

/* Copy the scalar at a[ia] onto the top of b. */
static void push_copy(lua_State *a, int ia, lua_State *b)
{
    size_t n;
    const char *s;

    switch (lua_type(a, ia)) {
    case LUA_TBOOLEAN:
        lua_pushboolean(b, lua_toboolean(a, ia));
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(a, ia))
            lua_pushinteger(b, lua_tointeger(a, ia));
        else
            lua_pushnumber(b, lua_tonumber(a, ia));
        break;
    case LUA_TSTRING:
        s = lua_tolstring(a, ia, &n);
        lua_pushlstring(b, s, n);
        break;
    default:
        fail_msg("unexpected key type %s", luaL_typename(a, ia));
    }
}

static int count_keys(lua_State *L, int idx)
{
    int n = 0;

    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        n++;
    }
    return n;
}

/* Whether a[ia] (in one state) equals b[ib] (in another): same types and
 * number subtypes, floats bit for bit (so nan equals nan and -0.0 differs
 * from 0.0), tables key by key, no metatable on b's side. */
static int same(lua_State *a, int ia, lua_State *b, int ib)
{
    size_t na, nb;
    const char *sa, *sb;
    double fa, fb;
    int ok = 1;

    ia = lua_absindex(a, ia);
    ib = lua_absindex(b, ib);
    if (lua_type(a, ia) != lua_type(b, ib))
        return 0;
    switch (lua_type(a, ia)) {
    case LUA_TNIL:
        return 1;
    case LUA_TBOOLEAN:
        return lua_toboolean(a, ia) == lua_toboolean(b, ib);
    case LUA_TNUMBER:
        if (lua_isinteger(a, ia) != lua_isinteger(b, ib))
            return 0;
        if (lua_isinteger(a, ia))
            return lua_tointeger(a, ia) == lua_tointeger(b, ib);
        fa = lua_tonumber(a, ia);
        fb = lua_tonumber(b, ib);
        return memcmp(&fa, &fb, sizeof fa) == 0;
    case LUA_TSTRING:
        sa = lua_tolstring(a, ia, &na);
        sb = lua_tolstring(b, ib, &nb);
        return na == nb && memcmp(sa, sb, na) == 0;
    case LUA_TTABLE:
        if (lua_getmetatable(b, ib)) {
            lua_pop(b, 1);
            return 0;
        }
        if (count_keys(a, ia) != count_keys(b, ib))
            return 0;
        lua_pushnil(a);
        while (ok && lua_next(a, ia)) {         /* a: [.., k, v] */
            push_copy(a, -2, b);
            lua_rawget(b, ib);                  /* b: [.., v] */
            ok = same(a, -1, b, -1);
            lua_pop(a, 1);
            lua_pop(b, 1);
        }
        if (!ok)
            lua_pop(a, 1);                      /* the key lua_next left */
        return ok;
    default:
        return 0;
    }
}

/* Encode 'chunk''s value in 'a', decode it in 'b', check both equal; the
 * decoded value is left on b's stack, the original popped from a's. */
static void roundtrip(lua_State *a, lua_State *b, const char *chunk,
                      int canonical)
{
    lcs_wbuf buf = { 0 };
    const char *err;

    eval(a, chunk);
    if ((err = try_encode(a, &buf, 0, canonical)) != NULL)
        fail_msg("%s: %s", chunk, err);
    if (lcs_decode(b, buf.p, buf.len) != 1)
        fail_msg("%s: does not decode", chunk);
    if (!same(a, -1, b, -1))
        fail_msg("%s: differs after the round trip", chunk);
    lua_pop(a, 1);
    lcs_wbuf_free(&buf);
}

/* xorshift64*: a fixed-seed stream for the fuzz tests. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

/* ------------------------------------------------------- round trips */

static const char *const scalars[] = {
    "return nil", "return false", "return true",
    "return 0", "return 1", "return 127", "return 128", "return -1",
    "return -32", "return -33", "return 300", "return -300",
    "return 2^31 // 1", "return math.maxinteger", "return math.mininteger",
    "return math.mininteger + 1",
    "return 0.0", "return -0.0", "return 1.0", "return 0.1", "return 1/0",
    "return -1/0", "return 0/0", "return -(0/0)", "return 2^63",
    "return 1e308", "return 5e-324", "return -2.5",
    "return ''", "return 'a'", "return 'a\\0b'", "return '\\0'",
    "return string.rep('x', 63)", "return string.rep('y', 64)",
    "return string.rep('z', 127)", "return string.rep('\\0\\255', 70000)",
};

static void test_roundtrip_scalars_across_states(void **state)
{
    lua_State *a = new_state(), *b = new_state();
    size_t i;

    (void)state;
    for (i = 0; i < sizeof scalars / sizeof *scalars; i++) {
        roundtrip(a, b, scalars[i], 0);
        roundtrip(a, b, scalars[i], 1);
        lua_pop(b, 2);
    }
    assert_int_equal(lua_gettop(a), 0);
    lua_close(a);
    lua_close(b);
}

static const char *const tables[] = {
    "return {}",
    "return {1, nil, 3}",
    "return {nil, nil, 3}",
    "return {type = 'VOTE', round = 3, value = 42, yes = true}",
    "return {[1.5] = 'f', [true] = 't', [false] = 'f', [-7] = 'n',"
    " [0] = 'z', [math.maxinteger] = 'max', [math.mininteger] = 'min',"
    " ['two words'] = {}, ['a\\0b'] = 1, [''] = 2, [2^70] = 3,"
    " list = {1, 2, {3, {4, {}}}}, [1] = 'one', [2] = 'two', [4] = 'four'}",
    "local t = {} for i = 1, 1000 do t[i] = i * 1.5 end return t",
    "local t = {} for i = 1, 300 do t['k' .. i] = i end return t",
    "local t = {} for i = 1, 20000 do t[-i] = {i} end return t",
    "local t = {1, 2, 3, 4} t[2] = nil t[9] = 9 return t",
    "local s = {1, 2} return {a = s, b = s, c = {s, s}}",
    "return setmetatable({x = 1}, {__index = function() return 1 end})",
    "local t = {} for i = 1, 63 do t = {t, i} end return t",
};

static void test_roundtrip_tables_across_states(void **state)
{
    lua_State *a = new_state(), *b = new_state();
    size_t i;

    (void)state;
    for (i = 0; i < sizeof tables / sizeof *tables; i++) {
        roundtrip(a, b, tables[i], 0);
        roundtrip(a, b, tables[i], 1);
        lua_pop(b, 2);
    }
    lua_close(a);
    lua_close(b);
}

static void test_array_hole_and_subtypes_survive(void **state)
{
    lua_State *a = new_state(), *b = new_state();

    (void)state;
    roundtrip(a, b, "return {1, nil, 3, 1.0, -0.0}", 0);
    assert_int_equal(lua_rawgeti(b, -1, 1), LUA_TNUMBER);
    assert_true(lua_isinteger(b, -1));
    assert_int_equal(lua_rawgeti(b, -2, 2), LUA_TNIL);
    assert_int_equal(lua_rawgeti(b, -3, 3), LUA_TNUMBER);
    assert_int_equal(lua_tointeger(b, -1), 3);
    assert_int_equal(lua_rawgeti(b, -4, 4), LUA_TNUMBER);
    assert_false(lua_isinteger(b, -1));
    assert_int_equal(lua_rawgeti(b, -5, 5), LUA_TNUMBER);
    assert_true(signbit(lua_tonumber(b, -1)));
    lua_close(a);
    lua_close(b);
}

static void test_shared_table_is_copied_each_time(void **state)
{
    lua_State *a = new_state(), *b = new_state();

    (void)state;
    roundtrip(a, b, "local s = {1} return {x = s, y = s}", 0);
    lua_getfield(b, -1, "x");
    lua_getfield(b, -2, "y");
    assert_true(lua_istable(b, -1));
    assert_true(lua_topointer(b, -1) != lua_topointer(b, -2));
    lua_close(a);
    lua_close(b);
}

/* ----------------------------------------------------------- canonical */

/* The same contents built in opposite orders, with keys added and
 * removed, so that pairs() order and rawlen differ. */
static const char *const order_a =
    "local t = {} for i = 1, 200 do t['k' .. i] = i end "
    "for i = 1, 50 do t[i] = i end t[52] = 52 "
    "t[1.5] = 'f' t[true] = 1 t[false] = 0 t[-3] = 'n' "
    "t.sub = {z = 1, a = 2, [3] = 3, [1] = 1} return t";
static const char *const order_b =
    "local t = {sub = {[1] = 1, [3] = 3, a = 2, z = 1}} "
    "for i = 1, 500 do t['tmp' .. i] = i end "
    "t[-3] = 'n' t[false] = 0 t[true] = 1 t[1.5] = 'f' t[52] = 52 "
    "for i = 50, 1, -1 do t[i] = i end "
    "for i = 200, 1, -1 do t['k' .. i] = i end "
    "for i = 1, 500 do t['tmp' .. i] = nil end return t";

static void test_canonical_bytes_equal_for_any_insertion_order(void **state)
{
    lua_State *a = new_state(), *b = new_state();
    lcs_wbuf ba = { 0 }, bb = { 0 };

    (void)state;
    eval(a, order_a);
    eval(b, order_b);
    assert_null(try_encode(a, &ba, 0, 1));
    assert_null(try_encode(b, &bb, 0, 1));
    assert_int_equal(ba.len, bb.len);
    assert_memory_equal(ba.p, bb.p, ba.len);
    /* and it decodes to the same contents */
    assert_int_equal(lcs_decode(b, ba.p, ba.len), 1);
    assert_true(same(a, -1, b, -1));
    lcs_wbuf_free(&ba);
    lcs_wbuf_free(&bb);
    lua_close(a);
    lua_close(b);
}

static void test_canonical_order_is_kind_then_value(void **state)
{
    static const unsigned char want[] = {
        0xc6, 0x00, 0x08,
        0xc1, 0x07,                     /* [false] = 7 */
        0xc2, 0x04,                     /* [true] = 4 */
        0xff, 0x06,                     /* [-1] = 6 */
        0xc3, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 0x05,      /* [1.5] = 5 */
        0x0a, 0x03,                     /* [10] = 3 */
        0x81, 'a', 0x02,                /* a = 2 */
        0x82, 'a', 'a', 0x08,           /* aa = 8 */
        0x81, 'b', 0x01,                /* b = 1 */
    };
    lua_State *L = new_state();
    lcs_wbuf b = { 0 };

    (void)state;
    eval(L, "return {b = 1, a = 2, [10] = 3, [true] = 4, [1.5] = 5,"
            " [-1] = 6, [false] = 7, aa = 8}");
    assert_null(try_encode(L, &b, 0, 1));
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.p, want, sizeof want);
    lcs_wbuf_free(&b);
    lua_close(L);
}

static void test_vote_message_is_32_bytes(void **state)
{
    lua_State *L = new_state();
    lcs_wbuf b = { 0 };

    (void)state;
    eval(L, "return {type = 'VOTE', round = 3, value = 42, yes = true}");
    assert_null(try_encode(L, &b, 0, 0));
    assert_int_equal(b.len, 32);
    lcs_wbuf_free(&b);
    lua_close(L);
}

/* ---------------------------------------------------------------- type */

static void expect_type(lua_State *L, const char *chunk, int canonical,
                        const char *want)
{
    lcs_wbuf b = { 0 };
    const char *type;
    size_t len;

    eval(L, chunk);
    assert_null(try_encode(L, &b, 0, canonical));
    lua_pop(L, 1);
    if (want == NULL) {
        assert_int_equal(lcs_encoded_type(&b, &type, &len), 0);
    } else {
        assert_int_equal(lcs_encoded_type(&b, &type, &len), 1);
        assert_int_equal(len, strlen(want));
        assert_memory_equal(type, want, len);
    }
    lcs_wbuf_free(&b);
}

static void test_encoded_type_found_in_both_modes(void **state)
{
    lua_State *L = new_state();
    int c;

    (void)state;
    for (c = 0; c <= 1; c++) {
        expect_type(L, "return {type = 'VOTE', round = 3}", c, "VOTE");
        expect_type(L, "return {type = ''}", c, "");
        expect_type(L, "return {a = 1, z = {1, 2}, type = 'PREPARE',"
                       " b = 'x', [1] = 1}", c, "PREPARE");
        /* more than 127 pairs: the pairs move when nrec is patched */
        expect_type(L, "local t = {type = 'BIG'} for i = 1, 300 do "
                       "t['k' .. i] = {i} end return t", c, "BIG");
        expect_type(L, "return {type = 5}", c, NULL);
        expect_type(L, "return 'VOTE'", c, NULL);
        expect_type(L, "return {inner = {type = 'X'}}", c, NULL);
        expect_type(L, "return {}", c, NULL);
    }
    lua_close(L);
}

static void test_encoded_type_reset_by_next_encode(void **state)
{
    lua_State *L = new_state();
    lcs_wbuf b = { 0 };
    const char *type;
    size_t len;

    (void)state;
    eval(L, "return {type = 'VOTE'}");
    assert_null(try_encode(L, &b, 0, 0));
    assert_int_equal(lcs_encoded_type(&b, &type, &len), 1);
    eval(L, "return {kind = 'VOTE'}");
    assert_null(try_encode(L, &b, 0, 0));
    assert_int_equal(lcs_encoded_type(&b, &type, &len), 0);
    lcs_wbuf_free(&b);
    lua_close(L);
}

/* -------------------------------------------------------------- errors */

typedef struct errcase {
    const char *chunk;
    size_t max;
    const char *msg;
} errcase;

static const errcase errors[] = {
    { "return {votes = {{}, {}, {sig = function() end}}}", 0,
      "msg.votes[3].sig: cannot send a function" },
    { "return {peer = io.stdout}", 0, "msg.peer: cannot send a userdata" },
    { "local t = {a = {}} t.a.b = t return t", 0, "msg.a.b: cyclic table" },
    { "local t = {} t[1] = t return t", 0, "msg[1]: cyclic table" },
    { "local t = {} for i = 1, 65 do t = {t} end return t", 0,
      "msg: nesting deeper than 64" },
    { "return string.rep('x', 69996)", 65536,
      "msg: message too large (70000 bytes, limit 65536)" },
    { "return {[{}] = 1}", 0,
      "msg: table key must be a string, number or boolean (got table)" },
    { "return {a = {[print] = 1}}", 0,
      "msg.a: table key must be a string, number or boolean (got function)" },
    { "return print", 0, "msg: cannot send a function" },
    { "return {['two words'] = {[1.5] = {[true] = {[-2] = {co ="
      " coroutine.create(print)}}}}}", 0,
      "msg[\"two words\"][1.5][true][-2].co: cannot send a thread" },
    { "return {['a\"\\n'] = print}", 0,
      "msg[\"a??\"]: cannot send a function" },
    { "return {_x9 = {[string.rep('k ', 25)] = print}}", 0,
      "msg._x9[\"k k k k k k k k k k k k k k k k k k k k ...\"]: "
      "cannot send a function" },
    { "return {1, 2, {x = 1, y = {print}}}", 0,
      "msg[3].y[1]: cannot send a function" },
    /* a table shared 2^60 times over must not be expanded to the end */
    { "local t = {} for i = 1, 60 do t = {t, t} end return t", 65536,
      "msg: message too large (more than 131072 bytes, limit 65536)" },
};

static void test_encode_errors_name_the_path(void **state)
{
    lua_State *L = new_state();
    const char *err;
    size_t i;
    int c;

    (void)state;
    for (c = 0; c <= 1; c++) {
        for (i = 0; i < sizeof errors / sizeof *errors; i++) {
            err = encode_error(L, errors[i].chunk, errors[i].max, c);
            if (err == NULL || strcmp(err, errors[i].msg) != 0)
                fail_msg("%s (canonical %d)\n got  %s\n want %s",
                         errors[i].chunk, c, err ? err : "(no error)",
                         errors[i].msg);
        }
    }
    assert_int_equal(lua_gettop(L), 0);
    lua_close(L);
}

static void test_limits_are_inclusive(void **state)
{
    lua_State *L = new_state();

    (void)state;
    /* 70000 bytes exactly fit a 70000-byte limit */
    assert_null(encode_error(L, "return string.rep('x', 69996)", 70000, 0));
    assert_non_null(encode_error(L, "return string.rep('x', 69996)", 69999,
                                 0));
    /* 64 nested tables are fine */
    assert_null(encode_error(L, "local t = {} for i = 1, 63 do t = {t} end "
                                "return t", 0, 0));
    /* a DAG is fine when it is small */
    assert_null(encode_error(L, "local t = {} for i = 1, 10 do t = {t, t} "
                                "end return t", 65536, 1));
    lua_close(L);
}

static void test_buffer_reusable_after_error(void **state)
{
    lua_State *L = new_state(), *R = new_state();
    lcs_wbuf b = { 0 };

    (void)state;
    eval(L, "local t = {} for i = 1, 1000 do t[i] = 'x' .. i end "
            "t[1001] = print return t");
    assert_non_null(try_encode(L, &b, 0, 0));
    assert_true(b.cap > 0);             /* still owned by b */
    eval(L, "return {ok = true}");
    assert_null(try_encode(L, &b, 0, 0));
    assert_int_equal(lcs_decode(R, b.p, b.len), 1);
    assert_true(same(L, -1, R, -1));
    lcs_wbuf_free(&b);
    lcs_wbuf_free(&b);                  /* twice is harmless */
    lcs_wbuf_free(NULL);
    lua_close(L);
    lua_close(R);
}

/* ------------------------------------------------------------ decoding */

static void check_truncations(lua_State *a, lua_State *b, const char *chunk,
                              int canonical)
{
    lcs_wbuf buf = { 0 };
    size_t n;

    eval(a, chunk);
    assert_null(try_encode(a, &buf, 0, canonical));
    lua_pop(a, 1);
    for (n = 0; n < buf.len; n++) {
        assert_int_equal(lcs_decode(b, buf.p, n), 0);
        assert_int_equal(lua_gettop(b), 0);
    }
    assert_int_equal(lcs_decode(b, buf.p, buf.len), 1);
    lua_pop(b, 1);
    lcs_wbuf_free(&buf);
}

static void test_decode_every_truncation_fails(void **state)
{
    lua_State *a = new_state(), *b = new_state();
    size_t i;

    (void)state;
    for (i = 0; i < sizeof tables / sizeof *tables; i++) {
        if (i == 5 || i == 7)
            continue;                   /* large: covered by the others */
        check_truncations(a, b, tables[i], 0);
        check_truncations(a, b, tables[i], 1);
    }
    check_truncations(a, b, "return {-1e300, 2^40 // 1, {x = {'\\0'}}}", 0);
    lua_close(a);
    lua_close(b);
}

static void decode_any(lua_State *L, const unsigned char *p, size_t n)
{
    int r = lcs_decode(L, p, n);

    assert_true(r == 0 || r == 1);
    assert_int_equal(lua_gettop(L), r);
    lua_settop(L, 0);
}

static void test_decode_random_bytes_never_crashes(void **state)
{
    static const unsigned char tags[] = {
        0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0x81, 0xff, 0x05
    };
    lua_State *L = new_state(), *a = new_state();
    unsigned char buf[64];
    lcs_wbuf enc = { 0 };
    uint64_t s = 0x9e3779b97f4a7c15ULL;
    size_t n, i, k;

    (void)state;
    for (k = 0; k < 4000; k++) {        /* uniform bytes */
        n = rng_next(&s) % sizeof buf;
        for (i = 0; i < n; i++)
            buf[i] = (unsigned char)rng_next(&s);
        decode_any(L, buf, n);
    }
    for (k = 0; k < 4000; k++) {        /* mostly tags and small counts */
        n = rng_next(&s) % sizeof buf;
        for (i = 0; i < n; i++) {
            uint64_t r = rng_next(&s);
            buf[i] = r & 1 ? tags[(r >> 1) % sizeof tags]
                           : (unsigned char)(r >> 8) % 4;
        }
        decode_any(L, buf, n);
    }
    eval(a, tables[4]);
    assert_null(try_encode(a, &enc, 0, 0));
    for (k = 0; k < 4000; k++) {        /* a valid message, mutated */
        unsigned char *m = malloc(enc.len);
        assert_non_null(m);
        memcpy(m, enc.p, enc.len);
        for (i = 0; i < 1 + rng_next(&s) % 3; i++)
            m[rng_next(&s) % enc.len] = (unsigned char)rng_next(&s);
        decode_any(L, m, enc.len - rng_next(&s) % 2);
        free(m);
    }
    lcs_wbuf_free(&enc);
    lua_close(a);
    lua_close(L);
}

/* 'depth' tables {t} around a nil. */
static unsigned char *nested(size_t depth, size_t *len)
{
    unsigned char *p = malloc(depth * 3 + 1);
    size_t i;

    assert_non_null(p);
    for (i = 0; i < depth; i++) {
        p[3 * i] = 0xc6;
        p[3 * i + 1] = 1;
        p[3 * i + 2] = 0;
    }
    p[3 * depth] = 0xc0;
    *len = depth * 3 + 1;
    return p;
}

static void test_decode_nesting_is_bounded(void **state)
{
    lua_State *L = new_state();
    unsigned char *p;
    size_t len;

    (void)state;
    p = nested(64, &len);
    assert_int_equal(lcs_decode(L, p, len), 1);
    lua_pop(L, 1);
    free(p);
    p = nested(65, &len);
    assert_int_equal(lcs_decode(L, p, len), 0);
    free(p);
    p = nested(200000, &len);
    assert_int_equal(lcs_decode(L, p, len), 0);
    free(p);
    assert_int_equal(lua_gettop(L), 0);
    lua_close(L);
}

typedef struct bytecase {
    const char *name;
    unsigned char p[24];
    size_t len;
    int ok;
} bytecase;

static const bytecase bytecases[] = {
    { "empty", { 0 }, 0, 0 },
    { "trailing byte", { 0x01, 0x01 }, 2, 0 },
    { "unused tag", { 0xc7 }, 1, 0 },
    { "unused tag 0xdf", { 0xdf }, 1, 0 },
    { "nil key", { 0xc6, 0, 1, 0xc0, 0x01 }, 5, 0 },
    { "nan key", { 0xc6, 0, 1, 0xc3, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f, 1 },
      13, 0 },
    { "table key", { 0xc6, 0, 1, 0xc6, 0, 0, 0x01 }, 7, 0 },
    { "string key", { 0xc6, 0, 1, 0x81, 'a', 0x01 }, 6, 1 },
    { "nil value in pairs", { 0xc6, 0, 1, 0x81, 'a', 0xc0 }, 6, 1 },
    { "huge narr", { 0xc6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f,
                     0 }, 10, 0 },
    { "narr past the end", { 0xc6, 5, 0, 1, 2 }, 5, 0 },
    { "nrec past the end", { 0xc6, 0, 2, 0x81, 'a', 1 }, 6, 0 },
    { "inner table too big for its parent", { 0xc6, 2, 0, 0xc6, 2, 0, 1,
      1 }, 8, 0 },
    { "string past the end", { 0xc5, 0x80, 0x94, 0xeb, 0xdc, 0x03, 'x' },
      7, 0 },
    { "fixstr past the end", { 0x85, 'a', 'b' }, 3, 0 },
    { "short float", { 0xc3, 0, 0, 0 }, 4, 0 },
    { "varint of 11 bytes", { 0xc4, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
      0x80, 0x80, 0x80, 0x00 }, 12, 0 },
    { "varint over 64 bits", { 0xc4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
      0xff, 0xff, 0xff, 0x02 }, 11, 0 },
    { "largest varint", { 0xc4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
      0xff, 0xff, 0x01 }, 11, 1 },
    { "overlong but in range", { 0xc4, 0x82, 0x00 }, 3, 1 },
};

static void test_decode_rejects_malformed_input(void **state)
{
    lua_State *L = new_state();
    size_t i;
    int r;

    (void)state;
    for (i = 0; i < sizeof bytecases / sizeof *bytecases; i++) {
        r = lcs_decode(L, bytecases[i].p, bytecases[i].len);
        if (r != bytecases[i].ok)
            fail_msg("%s: got %d", bytecases[i].name, r);
        assert_int_equal(lua_gettop(L), r);
        lua_settop(L, 0);
    }
    /* the largest varint is math.mininteger */
    assert_int_equal(lcs_decode(L, bytecases[18].p, bytecases[18].len), 1);
    assert_true(lua_tointeger(L, -1) == LUA_MININTEGER);
    lua_close(L);
}

/* ----------------------------------------------------- Lua functions */

static void test_lua_encode_decode_functions(void **state)
{
    static const char chunk[] =
        "local s = codec.encode({type = 'VOTE', round = 3, v = {1, nil, 3}})\n"
        "assert(type(s) == 'string')\n"
        "local t = codec.decode(s)\n"
        "assert(t.type == 'VOTE' and t.round == 3 and t.v[3] == 3)\n"
        "assert(t.v[2] == nil and math.type(t.round) == 'integer')\n"
        "assert(codec.encode({b = 1, a = 2}, true)"
        " == codec.encode({a = 2, b = 1}, true))\n"
        "assert(codec.decode(codec.encode(nil)) == nil)\n"
        "local ok, err = pcall(codec.encode, {f = print})\n"
        "assert(not ok and err == 'value.f: cannot send a function', err)\n"
        "ok, err = pcall(codec.decode, '\\xc7')\n"
        "assert(not ok and err == 'decode: malformed message', err)\n"
        "ok, err = pcall(codec.encode)\n"
        "assert(not ok and err:find('bad argument #1'), err)\n"
        "ok, err = pcall(codec.encode, string.rep('x', 16 * 1024 * 1024))\n"
        "assert(not ok and err == 'value: message too large (16777221"
        " bytes, limit 16777216)', err)\n"
        "local big = codec.encode(string.rep('y', 2 * 1024 * 1024))\n"
        "assert(#codec.decode(big) == 2 * 1024 * 1024)\n"
        "assert(codec.decode(codec.encode('after')) == 'after')\n";
    lua_State *L = new_state();

    (void)state;
    lua_newtable(L);
    lcs_open_codec(L);
    assert_int_equal(lua_gettop(L), 1);
    lua_setglobal(L, "codec");
    if (luaL_dostring(L, chunk) != LUA_OK)
        fail_msg("%s", lua_tostring(L, -1));
    lua_close(L);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_scalars_across_states),
        cmocka_unit_test(test_roundtrip_tables_across_states),
        cmocka_unit_test(test_array_hole_and_subtypes_survive),
        cmocka_unit_test(test_shared_table_is_copied_each_time),
        cmocka_unit_test(test_canonical_bytes_equal_for_any_insertion_order),
        cmocka_unit_test(test_canonical_order_is_kind_then_value),
        cmocka_unit_test(test_vote_message_is_32_bytes),
        cmocka_unit_test(test_encoded_type_found_in_both_modes),
        cmocka_unit_test(test_encoded_type_reset_by_next_encode),
        cmocka_unit_test(test_encode_errors_name_the_path),
        cmocka_unit_test(test_limits_are_inclusive),
        cmocka_unit_test(test_buffer_reusable_after_error),
        cmocka_unit_test(test_decode_every_truncation_fails),
        cmocka_unit_test(test_decode_random_bytes_never_crashes),
        cmocka_unit_test(test_decode_nesting_is_bounded),
        cmocka_unit_test(test_decode_rejects_malformed_input),
        cmocka_unit_test(test_lua_encode_decode_functions),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
