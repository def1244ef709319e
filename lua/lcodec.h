/*
 * lcodec.h - message codec of the binding: a Lua value <-> bytes.
 *
 * A message is plain data (nil, booleans, numbers, strings and tables of
 * those).  It is encoded once, in the sender's lua_State, into a byte
 * string that crosses threads inside a cs_msg, and decoded in each
 * receiver's lua_State.  The wire format is described in lcodec.c.
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
 * "type" of an encoded top-level table (type_off == 0: there is none);
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
 * table with a string field "type", set *type and *len to it (pointing
 * into b->p, valid until b changes) and return 1; else return 0.  O(1):
 * lcs_encode records the position in b->type_off/type_len as it writes
 * the field. */
int lcs_encoded_type(const lcs_wbuf *b, const char **type, size_t *len);

/* Push the value encoded in data[0..len).  Never crashes or loops on
 * arbitrary bytes (it is fuzzed): on malformed input (including trailing
 * bytes, or tables nested deeper than 64) it pushes nothing and returns 0;
 * on success pushes one value and returns 1.  May raise only a Lua memory
 * error.  Memory used is bounded by a small multiple of 'len'. */
int lcs_decode(lua_State *L, const void *data, size_t len);

/* Set fields "encode" (value [, canonical]) -> string and "decode"
 * (string) -> value (raises "decode: malformed message" on bad bytes) in
 * the table at the top of the stack.  encode raises the errors above with
 * what = "value"; its limit is 16 MiB.  The encode buffer is kept in a
 * userdata upvalue, so repeated calls reuse it. */
void lcs_open_codec(lua_State *L);

#endif
