/*
 * fuzz_decode.c - libFuzzer target for the message decoder (lcs_decode).
 *
 * Every input is decoded in a fresh lua_State.  lcs_decode must never
 * crash, hang or leak, and must leave the stack as it found it on
 * failure (one value more on success).  When the bytes decode, the value
 * is encoded again, plain and canonical, and each encoding must decode;
 * the canonical encoding must be a fixed point: decoding it and encoding
 * that canonically gives the same bytes, and so does the canonical
 * encoding of the plain re-encoding's decoded value.  A violation
 * aborts, so libFuzzer records the input.
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = luaL_newstate();
    lcs_wbuf b = {0};
    int top;

    if (L == NULL)
        return 0;
    lua_atpanic(L, panic);
    lua_pushliteral(L, "sentinel");         /* a non-empty stack */
    top = lua_gettop(L);
    if (!lcs_decode(L, data, size)) {
        if (lua_gettop(L) != top)
            die("lcs_decode failed but changed the stack", data, size);
        goto out;
    }
    if (lua_gettop(L) != top + 1)
        die("lcs_decode returned 1 without exactly one value", data, size);
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
