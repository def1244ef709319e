/*
 * lcodec.h - message codec of the binding: a Lua value <-> bytes.
 *
 * A message is plain data (nil, booleans, numbers, strings and tables of
 * those).  It is encoded once, in the sender's lua_State, into a byte
 * string that crosses threads inside a cs_msg, and decoded in each
 * receiver's lua_State.  A positional message (node:post) is a type and a
 * list of values, decoded straight onto the stack.  The wire format is
 * described in lcodec.c.
 */
#ifndef LCODEC_H
#define LCODEC_H

#include <lua.h>
#include <stddef.h>

/* A growable byte buffer owned by C (not by the Lua stack), so encoding
 * allocates nothing in Lua.  The owner frees it with lcs_wbuf_free.
 * Initialize it to all zeros ("lcs_wbuf b = {0};").  After a successful
 * lcs_encode, p[0..len) is the encoding; 'cap' is the allocated size.
 * 'type_off'/'type_len' locate, inside p, the bytes of the string field
 * "type" of an encoded top-level table, or the type of a positional
 * message (type_off == 0: there is none);
 * read them with lcs_encoded_type. */
typedef struct lcs_wbuf {
    unsigned char *p;
    size_t len, cap;
    size_t type_off, type_len;
} lcs_wbuf;

/* Release b's memory and reset it to empty; b stays usable.  NULL is ok. */
void lcs_wbuf_free(lcs_wbuf *b);

/* Encode the value at 'idx' into 'b' (b->len reset to 0 first).  Raises a
 * Lua error (luaL_error) if the value cannot be sent; the message names the
 * field path, starting from 'what' (e.g. "msg"): "msg.votes[3].sig: cannot
 * send a function", "msg.peer: cannot send a userdata", "msg.a.b: cyclic
 * table", "msg: nesting deeper than 64", "msg: message too large (70000
 * bytes, limit 65536)", "msg: table key must be a string, number or
 * boolean (got table)".  A table reachable twice without a cycle is fine
 * (it is copied twice).  'max' is the byte limit (0 = none); encoding
 * gives up early, with "message too large (more than N bytes, ...)", once
 * the output passes twice the limit (a table shared many times over can
 * expand exponentially).  With 'canonical' nonzero, table entries are
 * written in a sorted order so that equal tables give equal bytes in any
 * process (used for decided values; Lua's pairs() order differs between
 * processes); the keys are sorted on the Lua stack, so a canonical table
 * holds at most about a million keys.  Tables are read raw: metatables
 * are neither sent nor consulted, and no Lua code runs.  On error b's
 * memory is still owned by b; nothing leaks.  Returns b->len. */
size_t lcs_encode(lua_State *L, int idx, lcs_wbuf *b, size_t max, int canonical,
                  const char *what);

/* If the value last encoded into b (by a successful lcs_encode) is a
 * table with a string field "type", or b holds a positional message
 * (lcs_encode_args), set *type and *len to it (pointing
 * into b->p, valid until b changes) and return 1; else return 0.  O(1):
 * lcs_encode records the position in b->type_off/type_len as it writes
 * the field. */
int lcs_encoded_type(const lcs_wbuf *b, const char **type, size_t *len);

/* Push the value encoded in data[0..len).  A positional message decodes
 * to the table {type = T, n = k, a1, ..., ak}.  Never crashes or loops on
 * arbitrary bytes (it is fuzzed): on malformed input (including trailing
 * bytes, or tables nested deeper than 64) it pushes nothing and returns 0;
 * on success pushes one value and returns 1.  May raise only a Lua memory
 * error.  Memory used is bounded by a small multiple of 'len'. */
int lcs_decode(lua_State *L, const void *data, size_t len);

/* Positional messages (node:post).  The first byte of such a message is
 * LCS_T_ARGS; its type is a string of 1..LCS_MAX_TYPE bytes and it
 * carries at most LCS_MAX_ARGS values. */
#define LCS_T_ARGS 0xc7
#define LCS_MAX_TYPE 63
#define LCS_MAX_ARGS 255

/* A direct-mapped cache of the short strings a decoder pushed last (see
 * lcodec.c).  The owner keeps a Lua table with LCS_SCACHE array slots at
 * stack index (or upvalue pseudo-index) 'idx' while decoding, and zeroes
 * 'len' whenever that table is replaced (a fresh state).  Only strings of
 * 1..LCS_SCACHE_LEN bytes are cached. */
#define LCS_SCACHE 64 /* a power of two */
#define LCS_SCACHE_LEN 16

typedef struct lcs_strcache {
    int idx;
    unsigned char len[LCS_SCACHE];
    char s[LCS_SCACHE][LCS_SCACHE_LEN];
} lcs_strcache;

/* Push the string s[0..n), through the cache 'sc' when it is short (sc
 * may be NULL).  May raise a Lua memory error. */
void lcs_push_cached(lua_State *L, lcs_strcache *sc, const char *s, size_t n);

/* Whether data[0..len) is a positional message (cheap: one byte). */
static inline int lcs_is_args(const void *data, size_t len)
{
    return len > 0 && *(const unsigned char *)data == LCS_T_ARGS;
}

/* Encode a positional message into 'b' (b->len reset first): the type
 * type[0..tlen) and the k values at stack indices first..first+k-1 (any
 * value lcs_encode accepts; nil included).  Raises like lcs_encode, the
 * path naming the argument as in the receive fallback form: "msg[2].cb:
 * cannot send a function", "msg: message too large (..)"; also "msg: a
 * message type of 1..63 bytes" and "msg: too many arguments (300, at most
 * 255)" ('what' replaces "msg").  Sets b->type_off/type_len, so
 * lcs_encoded_type finds the type.  Returns b->len. */
size_t lcs_encode_args(lua_State *L, const char *type, size_t tlen, int first,
                       int k, lcs_wbuf *b, size_t max, const char *what);

/* The header of a positional message: if data[0..len) starts like one,
 * set *type and *tlen to its type (pointing into data) and *body to the
 * offset of its first value, and return the number of values
 * (0..LCS_MAX_ARGS); else return -1.  Reads only the header:
 * lcs_decode_args checks the rest. */
int lcs_args_head(const void *data, size_t len, const char **type, size_t *tlen,
                  size_t *body);

/* Push the k values of the positional message data[0..len) whose body
 * starts at 'body' (from lcs_args_head), without building a table.
 * Returns 1, or 0 with the stack unchanged when the body is malformed
 * (trailing bytes included).  May raise only a Lua memory error. */
int lcs_decode_args(lua_State *L, const void *data, size_t len, size_t body,
                    int k, lcs_strcache *sc);

/* lcs_decode through the string cache 'sc' (NULL: none). */
int lcs_decode_cached(lua_State *L, const void *data, size_t len,
                      lcs_strcache *sc);

/* Set fields "encode" (value [, canonical]) -> string and "decode"
 * (string) -> value (raises "decode: malformed message" on bad bytes) in
 * the table at the top of the stack.  encode raises the errors above with
 * what = "value"; its limit is 16 MiB.  The encode buffer is kept in a
 * userdata upvalue, so repeated calls reuse it. */
void lcs_open_codec(lua_State *L);

#endif
