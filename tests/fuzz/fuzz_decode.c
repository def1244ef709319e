/*
 * fuzz_decode.c - libFuzzer target for the message decoder (lcs_decode).
 *
 * Every input is decoded in a fresh lua_State.  lcs_decode must never
 * crash, hang or leak, and must leave the stack as it found it on
 * failure (one value more on success).  When the bytes decode, the value
 * is encoded again, plain and canonical, and each encoding must decode;
 * the canonical encoding must be a fixed point: decoding it and encoding
 * that canonically gives the same bytes, and so does the canonical
 * encoding of the plain re-encoding's decoded value.  A positional
 * message (first byte LCS_T_ARGS) is also decoded the way a node
 * delivers it, lcs_args_head then lcs_decode_args through a string cache:
 * that must succeed exactly when lcs_decode does, and the values it
 * pushes, packed as {type =, n =, ...}, must equal lcs_decode's value.
 * A violation aborts, so libFuzzer records the input.
 *
 * Build: cmake -DCS_FUZZ=ON with clang (tests/fuzz/README.md).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lcodec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const uint8_t *p, size_t n)
{
    size_t i;

    fprintf(stderr, "fuzz_decode: %s\n  bytes (%zu):", what, n);
    for (i = 0; i < n && i < 256; i++)
        fprintf(stderr, " %02x", p[i]);
    fprintf(stderr, "%s\n", n > 256 ? " ..." : "");
    abort();
}

static int panic(lua_State *L)
{
    fprintf(stderr, "fuzz_decode: unprotected Lua error: %s\n",
            lua_tostring(L, -1) ? lua_tostring(L, -1) : "(not a string)");
    abort();
    return 0;
}

/* Protected: [value, wbuf, canonical] -> the encoding as a string. */
static int encode_call(lua_State *L)
{
    lcs_wbuf *b = lua_touserdata(L, 2);

    lcs_encode(L, 1, b, 0, lua_toboolean(L, 3), "fuzz");
    lua_pushlstring(L, (const char *)b->p, b->len);
    return 1;
}

/* Encode the value on top of L; push the encoding (a string).  A failure
 * to encode a value that decoded is a bug (the two disagree on what a
 * message is). */
static void encode_top(lua_State *L, lcs_wbuf *b, int canonical,
                       const uint8_t *in, size_t n)
{
    int v = lua_gettop(L);

    lua_pushcfunction(L, encode_call);
    lua_pushvalue(L, v);
    lua_pushlightuserdata(L, b);
    lua_pushboolean(L, canonical);
    if (lua_pcall(L, 3, 1, 0) != LUA_OK) {
        fprintf(stderr, "fuzz_decode: encode failed: %s\n",
                lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
        die("a decoded value does not encode", in, n);
    }
}

/* Decode the string on top of L (replacing it with the value). */
static void decode_top(lua_State *L, const char *what, const uint8_t *in,
                       size_t n)
{
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    int top = lua_gettop(L);

    if (!lcs_decode(L, s, len))
        die(what, in, n);
    if (lua_gettop(L) != top + 1)
        die("lcs_decode returned 1 without exactly one value", in, n);
    lua_remove(L, -2);
}

static int same_top2(lua_State *L)
{
    size_t n1, n2;
    const char *a = lua_tolstring(L, -2, &n1), *b = lua_tolstring(L, -1, &n2);

    return n1 == n2 && memcmp(a, b, n1) == 0;
}

/* Decode data as a node delivers a positional message: through
 * lcs_args_head and lcs_decode_args (twice, the second time from the
 * string cache the first filled), packing the values into the table form
 * at the top of the stack.  Returns whether that worked; on failure the
 * stack is as it was. */
static int decode_as_node(lua_State *L, const uint8_t *data, size_t size)
{
    lcs_strcache sc;
    const char *type;
    size_t tlen, body;
    int k, i, top = lua_gettop(L), round;

    memset(&sc, 0, sizeof sc);
    lua_createtable(L, LCS_SCACHE, 0);
    sc.idx = lua_gettop(L);
    for (round = 0; round < 2; round++) {
        lua_settop(L, sc.idx);
        if ((k = lcs_args_head(data, size, &type, &tlen, &body)) < 0) {
            lua_settop(L, top);
            return 0;
        }
        if (!lcs_decode_args(L, data, size, body, k, &sc)) {
            if (lua_gettop(L) != sc.idx)
                die("lcs_decode_args failed but changed the stack", data,
                    size);
            lua_settop(L, top);
            return 0;
        }
        if (lua_gettop(L) != sc.idx + k)
            die("lcs_decode_args pushed the wrong number of values", data,
                size);
    }
    lua_createtable(L, k, 2); /* [.., cache, v1..vk, t] */
    for (i = 1; i <= k; i++) {
        lua_pushvalue(L, sc.idx + i);
        lua_rawseti(L, -2, i);
    }
    lcs_push_cached(L, &sc, type, tlen);
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, k);
    lua_setfield(L, -2, "n");
    lua_replace(L, sc.idx);
    lua_settop(L, sc.idx);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = luaL_newstate();
    lcs_wbuf b = {0};
    int top, as_node;

    if (L == NULL)
        return 0;
    lua_atpanic(L, panic);
    lua_pushliteral(L, "sentinel");         /* a non-empty stack */
    top = lua_gettop(L);
    as_node = lcs_is_args(data, size) && decode_as_node(L, data, size);
    if (!lcs_decode(L, data, size)) {
        if (lua_gettop(L) != top + as_node)
            die("lcs_decode failed but changed the stack", data, size);
        if (as_node)
            die("a node decodes a message lcs_decode refuses", data, size);
        goto out;
    }
    if (lua_gettop(L) != top + 1 + as_node)
        die("lcs_decode returned 1 without exactly one value", data, size);
    if (lcs_is_args(data, size)) {
        if (!as_node)
            die("lcs_decode takes a message a node refuses", data, size);
        /* [s, t, v]: the two must agree */
        lua_pushvalue(L, -2);
        encode_top(L, &b, 1, data, size);   /* [s, t, v, t, ct] */
        lua_remove(L, -2);
        lua_pushvalue(L, -2);
        encode_top(L, &b, 1, data, size);   /* [s, t, v, ct, cv] */
        lua_remove(L, -2);
        if (!same_top2(L))
            die("a node's values differ from lcs_decode's", data, size);
        lua_pop(L, 2);
        lua_remove(L, -2);                  /* [s, v] */
    }
    /* [s, v] */
    encode_top(L, &b, 1, data, size);       /* [s, v, c1] */
    lua_pushvalue(L, -1);
    decode_top(L, "canonical re-encoding does not decode", data, size);
    encode_top(L, &b, 1, data, size);       /* [s, v, c1, v1, c2] */
    lua_remove(L, -2);
    if (!same_top2(L))
        die("canonical encoding is not a fixed point", data, size);
    lua_pop(L, 1);                          /* [s, v, c1] */
    lua_pushvalue(L, -2);
    encode_top(L, &b, 0, data, size);       /* [s, v, c1, v, e0] */
    lua_remove(L, -2);
    decode_top(L, "plain re-encoding does not decode", data, size);
    encode_top(L, &b, 1, data, size);       /* [s, v, c1, v0, c0] */
    lua_remove(L, -2);
    if (!same_top2(L))
        die("plain re-encoding decodes to a different value", data, size);
out:
    lcs_wbuf_free(&b);
    lua_close(L);
    return 0;
}
