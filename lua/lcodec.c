/*
 * lcodec.c - message codec: a Lua value <-> a compact byte string.
 *
 * Messages are plain data.  The encoder walks the value in the sender's
 * state with raw accesses only (no metamethods, no Lua code runs) and
 * writes into a C-owned growable buffer, so encoding allocates nothing in
 * Lua (only the stack may grow) and an error raised halfway leaves the
 * memory with its owner.  The decoder rebuilds the value in another state,
 * pre-sizing every table.  Both are on the hot path: one encode per send,
 * one decode per receiver.
 *
 * Wire format.  Versionless; every value starts with a tag byte; "uv" is
 * an unsigned LEB128 varint (7 bits a byte, low first, at most 10 bytes):
 *   0x00-0x7f  the integer 0..127 (the tag itself)
 *   0x80-0xbf  a string of 0..63 bytes (tag & 0x3f); the bytes follow
 *   0xc0 nil   0xc1 false   0xc2 true
 *   0xc3       a float: its 8 IEEE-754 bytes, little-endian (keeps -0.0,
 *              inf and nan; 1.0 stays a float, 1 an integer)
 *   0xc4       an integer: uv of its zigzag map (0 -1 1 -2 .. -> 0 1 2 3 ..)
 *   0xc5       a longer string: uv length, then the bytes
 *   0xc6       a table: uv narr, uv nrec, then narr values (t[1..narr],
 *              nil for a hole), then nrec pairs (key, value)
 *   0xc7       a positional message (node:post), only as the first byte
 *              of a message: its type as a string of 1..63 bytes (tag
 *              0x81-0xbf), uv k (at most LCS_MAX_ARGS), then k values.
 *              As a value (lcs_decode, consensus.decode, the receive
 *              fallback) it is the table {type = T, n = k, a1, ..., ak}.
 *   0xe0-0xff  the integer -32..-1 (the tag as a signed byte)
 * Any other tag is malformed.  {type="VOTE", round=3, value=42, yes=true}
 * takes 32 bytes, post("VOTE", 3, 42, true) 10.  narr is lua_rawlen (so
 * {1,nil,3} keeps its hole); the other keys follow in lua_next order.  The
 * encoder writes nrec as one placeholder byte and patches it when the
 * table ends, moving the pairs right in the rare case nrec > 127.
 *
 * Canonical mode takes narr as the length of the run t[1], t[2], .. of
 * non-nils (rawlen depends on insertion history) and writes the pairs
 * sorted by key: booleans (false first), then numbers by value (integers
 * and floats mixed, compared exactly), then strings bytewise.  The keys
 * are collected on the Lua stack and heap-sorted there, so a canonical
 * table is limited to about a million keys (LUAI_MAXSTACK).
 *
 * Invariants.  Tables nest at most MAXDEPTH deep (the root table is depth
 * 1), on both sides.  The encoder refuses a table already open on the
 * current path (a cycle) but copies a shared one each time it is reached.
 * The decoder never trusts a count: 'need' is the least number of bytes
 * the unread elements of all open tables still take (1 per array slot, 2
 * per pair), and a table or string that cannot fit in what is left is
 * malformed, so the total pre-sizing is bounded by the input length.  No
 * locking: each call touches one lua_State and one caller-owned buffer.
 *
 * The string cache.  Interning a string (lua_pushlstring) hashes it and
 * probes Lua's string table, and the probe stalls on memory a message
 * later has long left the cache.  A node's decoder keeps the short
 * strings it pushed last (up to LCS_SCACHE_LEN bytes; field names and
 * message types) in a direct-mapped cache: the bytes in C, the interned
 * strings in a Lua table, so a hit is a memcmp and one lua_rawgeti.
 * Entry i of the C side is valid exactly when slot i + 1 of the table
 * holds that string: the C side changes only after the table did.
 */
#include "lcodec.h"

#include <lauxlib.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(lua_Integer) == 8, "lua_Integer must be 64-bit");
_Static_assert(sizeof(lua_Number) == 8, "lua_Number must be a double");

#define MAXDEPTH 64
#define LUA_LIMIT ((size_t)16 << 20) /* encode() from Lua: 16 MiB */
#define KEEP_BUF ((size_t)1 << 20)   /* encode() frees a bigger buffer */

enum {
    T_FIXSTR = 0x80,
    T_NIL = 0xc0,
    T_FALSE,
    T_TRUE,
    T_FLOAT,
    T_INT,
    T_STR,
    T_TABLE,
    T_ARGS,
    T_NEGINT = 0xe0
};

_Static_assert(T_ARGS == LCS_T_ARGS, "lcodec.h and lcodec.c disagree");

/* One step of the path to the value being encoded: the key on the Lua
 * stack at 'idx', or the array index 'i' when idx is 0. */
typedef struct pathkey {
    int idx;
    lua_Integer i;
} pathkey;

typedef struct enc {
    lua_State *L;
    lcs_wbuf *b;
    size_t max, hard; /* hard: stop growing beyond this */
    int canonical;
    const char *what;
    int argi; /* the positional argument being encoded, or 0 */
    const void *open[MAXDEPTH + 1]; /* open[d]: the table at depth d */
    pathkey path[MAXDEPTH + 1];     /* path[d]: key taken in open[d] */
} enc;

typedef struct dec {
    lua_State *L;
    const unsigned char *p, *end;
    size_t need;      /* see the invariants above */
    lcs_strcache *sc; /* or NULL */
} dec;

/* ------------------------------------------------------------ errors */

/* Whether the key can be shown as .name (strspn also stops at a zero). */
static int is_ident(const char *s, size_t n)
{
    return n > 0 && !(s[0] >= '0' && s[0] <= '9') &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "_0123456789") == n;
}

/* Append one path step: .name, [n] or ["any string"].  A quoted key is
 * cut at 40 bytes and shows '?' for a quote, backslash or control byte:
 * the message is for people, and keys may hold any byte. */
static void add_key(luaL_Buffer *lb, lua_State *L, const pathkey *k)
{
    size_t n, i;
    const char *s;

    if (k->idx == 0 || lua_isinteger(L, k->idx)) {
        lua_pushfstring(L, "[%I]", k->idx ? lua_tointeger(L, k->idx) : k->i);
    } else if (lua_type(L, k->idx) == LUA_TNUMBER) {
        lua_pushfstring(L, "[%f]", lua_tonumber(L, k->idx));
    } else if (lua_type(L, k->idx) == LUA_TBOOLEAN) {
        lua_pushstring(L, lua_toboolean(L, k->idx) ? "[true]" : "[false]");
    } else {
        s = lua_tolstring(L, k->idx, &n); /* only strings are left */
        if (is_ident(s, n)) {
            luaL_addchar(lb, '.');
            luaL_addlstring(lb, s, n);
            return;
        }
        luaL_addstring(lb, "[\"");
        for (i = 0; i < n && i < 40; i++) {
            unsigned char c = (unsigned char)s[i];
            luaL_addchar(lb, c < 0x20 || c >= 0x7f || c == '"' || c == '\\'
                                 ? '?'
                                 : (char)c);
        }
        luaL_addstring(lb, n > 40 ? "...\"]" : "\"]");
        return;
    }
    luaL_addvalue(lb);
}

/* Raise "<what><path[1..depth]>: <reason>".  The path is built only now,
 * from the keys still on the stack, so the hot path records two words a
 * level.  Nothing is malloc'd outside the buffer, so raising is safe. */
static void fail(enc *e, int depth, const char *fmt, ...)
{
    lua_State *L = e->L;
    luaL_Buffer lb;
    va_list ap;
    int d;

    luaL_checkstack(L, 4, "encode");
    luaL_buffinit(L, &lb);
    luaL_addstring(&lb, e->what);
    if (e->argi > 0) { /* msg[2]: the path in the receive fallback form */
        lua_pushfstring(L, "[%d]", e->argi);
        luaL_addvalue(&lb);
    }
    for (d = 1; d <= depth; d++)
        add_key(&lb, L, &e->path[d]);
    luaL_pushresult(&lb); /* [.., path] */
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap); /* [.., path, reason] */
    va_end(ap);
    luaL_error(L, "%s: %s", lua_tostring(L, -2), lua_tostring(L, -1));
}

/* ----------------------------------------------------------- writing */

/* Make room for 'n' more bytes, or raise. */
static void grow(enc *e, size_t n)
{
    lcs_wbuf *b = e->b;
    size_t need = b->len + n, cap = b->cap ? b->cap : 256;
    void *p;

    /* A table shared k times over expands like 2^k: stop early rather
     * than count it all.  need exceeds the real output by < 16 bytes. */
    if (e->hard && need > e->hard)
        luaL_error(e->L,
                   "%s: message too large (more than %I bytes, "
                   "limit %I)",
                   e->what, (lua_Integer)(e->hard - 16), (lua_Integer)e->max);
    if (need < n)
        luaL_error(e->L, "%s: not enough memory", e->what);
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if ((p = realloc(b->p, cap)) == NULL)
        luaL_error(e->L, "%s: not enough memory", e->what);
    b->p = p;
    b->cap = cap;
}

static inline unsigned char *room(enc *e, size_t n)
{
    if (e->b->cap - e->b->len < n)
        grow(e, n);
    return e->b->p + e->b->len;
}

/* Write 'v' as a uv at 'q' (10 bytes available); returns its size. */
static size_t put_uv(unsigned char *q, uint64_t v)
{
    size_t n = 0;

    for (; v >= 0x80; v >>= 7)
        q[n++] = (unsigned char)(v | 0x80);
    q[n++] = (unsigned char)v;
    return n;
}

static void put_byte(enc *e, unsigned c)
{
    *room(e, 1) = (unsigned char)c;
    e->b->len++;
}

static void put_int(enc *e, lua_Integer i)
{
    unsigned char *q = room(e, 11);
    uint64_t u = (uint64_t)i;

    if (i >= -32 && i < 0x80) { /* one byte: 0x00-0x7f, 0xe0-0xff */
        q[0] = (unsigned char)(i & 0xff);
        e->b->len += 1;
    } else {
        q[0] = T_INT;
        e->b->len += 1 + put_uv(q + 1, (u << 1) ^ (0 - (u >> 63)));
    }
}

static void put_float(enc *e, double x)
{
    unsigned char *q = room(e, 9);
    uint64_t u;
    int i;

    memcpy(&u, &x, 8);
    q[0] = T_FLOAT;
    for (i = 1; i <= 8; i++, u >>= 8)
        q[i] = (unsigned char)u;
    e->b->len += 9;
}

static void put_str(enc *e, const char *s, size_t n)
{
    unsigned char *q = room(e, n + 11);
    size_t k = 1;

    if (n < 64) {
        q[0] = (unsigned char)(T_FIXSTR | n);
    } else {
        q[0] = T_STR;
        k += put_uv(q + 1, n);
    }
    memcpy(q + k, s, n);
    e->b->len += k + n;
}

/* ------------------------------------------------- canonical ordering */

/* Whether key 'a' sorts before key 'b' (stack indices, both a boolean,
 * number or string).  LUA_TBOOLEAN < LUA_TNUMBER < LUA_TSTRING already
 * gives the order of the kinds; lua_compare on two numbers is exact for
 * mixed integers and floats, and runs no metamethod. */
static int key_less(lua_State *L, int a, int b)
{
    int ta = lua_type(L, a), tb = lua_type(L, b), c;
    size_t na, nb;
    const char *sa, *sb;

    if (ta != tb)
        return ta < tb;
    if (ta == LUA_TNUMBER)
        return lua_compare(L, a, b, LUA_OPLT);
    if (ta == LUA_TBOOLEAN)
        return !lua_toboolean(L, a) && lua_toboolean(L, b);
    sa = lua_tolstring(L, a, &na);
    sb = lua_tolstring(L, b, &nb);
    c = memcmp(sa, sb, na < nb ? na : nb);
    return c < 0 || (c == 0 && na < nb);
}

/* Exchange stack slots i and j (uses one free slot). */
static void swap_slots(lua_State *L, int i, int j)
{
    lua_pushvalue(L, i);
    lua_copy(L, j, i);
    lua_replace(L, j);
}

static void sift_down(lua_State *L, int base, int root, int n)
{
    int child;

    while ((child = 2 * root + 1) < n) {
        if (child + 1 < n && key_less(L, base + child, base + child + 1))
            child++;
        if (!key_less(L, base + root, base + child))
            return;
        swap_slots(L, base + root, base + child);
        root = child;
    }
}

/* Heap sort of the 'n' keys in stack slots base..base+n-1: O(n log n)
 * and in place, and a canonical table may be a large decided log. */
static void sort_keys(lua_State *L, int base, int n)
{
    int i;

    for (i = n / 2 - 1; i >= 0; i--)
        sift_down(L, base, i, n);
    for (i = n - 1; i > 0; i--) {
        swap_slots(L, base, base + i);
        sift_down(L, base, 0, i);
    }
}

/* ---------------------------------------------------------- encoding */

static void enc_table(enc *e, int idx, int depth);

/* Encode the value of type 't' at absolute index 'idx', found in the
 * table at 'depth' (0 for the root value) under the key path[1..depth].
 * The caller passes the type it already has: API calls are the cost. */
static void enc_value(enc *e, int idx, int t, int depth)
{
    lua_State *L = e->L;
    size_t n;
    const char *s;

    switch (t) {
    case LUA_TNIL:
        put_byte(e, T_NIL);
        break;
    case LUA_TBOOLEAN:
        put_byte(e, lua_toboolean(L, idx) ? T_TRUE : T_FALSE);
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            put_int(e, lua_tointeger(L, idx));
        else
            put_float(e, lua_tonumber(L, idx));
        break;
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &n);
        put_str(e, s, n);
        break;
    case LUA_TTABLE:
        enc_table(e, idx, depth + 1);
        break;
    default:
        fail(e, depth, "cannot send a %s", luaL_typename(L, idx));
    }
}

/* Encode the pair at stack indices 'key', of type 'kt' (a boolean,
 * number or string), and 'val', of type 'vt', of the table at 'depth'. */
static void enc_pair(enc *e, int key, int kt, int val, int vt, int depth)
{
    lcs_wbuf *b = e->b;
    size_t n;
    const char *s;
    int is_type = 0;

    if (kt == LUA_TSTRING) {
        s = lua_tolstring(e->L, key, &n); /* a string: no conversion */
        put_str(e, s, n);
        is_type = depth == 1 && vt == LUA_TSTRING && n == 4 && s[0] == 't' &&
                  s[1] == 'y' && s[2] == 'p' && s[3] == 'e';
    } else {
        enc_value(e, key, kt, depth); /* cannot fail */
    }
    e->path[depth].idx = key;
    enc_value(e, val, vt, depth);
    if (is_type) { /* for lcs_encoded_type */
        b->type_len = lua_rawlen(e->L, val);
        b->type_off = b->len - b->type_len;
    }
}

/* The length of the run t[1], t[2], .. of non-nil values: unlike rawlen,
 * it depends only on the table's contents. */
static lua_Integer run_length(lua_State *L, int idx)
{
    lua_Integer n = 0;

    while (lua_rawgeti(L, idx, n + 1) != LUA_TNIL) {
        lua_pop(L, 1);
        n++;
    }
    lua_pop(L, 1);
    return n;
}

static void enc_table(enc *e, int idx, int depth)
{
    lua_State *L = e->L;
    lcs_wbuf *b = e->b;
    const void *t = lua_topointer(L, idx);
    lua_Integer narr, i;
    size_t hdr, nrec = 0, k;
    unsigned char *q, tmp[10];
    int d, key, kt, isint, base = lua_gettop(L) + 1; /* free slots */

    if (depth > MAXDEPTH)
        fail(e, 0, "nesting deeper than %d", MAXDEPTH);
    for (d = 1; d < depth; d++) { /* O(depth): paths are short */
        if (e->open[d] == t)
            fail(e, depth - 1, "cyclic table");
    }
    e->open[depth] = t;
    luaL_checkstack(L, 4, "encode");
    narr = e->canonical ? run_length(L, idx) : (lua_Integer)lua_rawlen(L, idx);
    q = room(e, 12);
    q[0] = T_TABLE;
    hdr = b->len + 1 + put_uv(q + 1, (uint64_t)narr);
    b->p[hdr] = 0; /* nrec, patched below */
    b->len = hdr + 1;
    e->path[depth].idx = 0;
    for (i = 1; i <= narr; i++) {
        kt = lua_rawgeti(L, idx, i);
        e->path[depth].i = i;
        enc_value(e, base, kt, depth);
        lua_pop(L, 1);
    }
    lua_pushnil(L);
    while (lua_next(L, idx)) { /* [.., key, value] */
        key = e->canonical ? lua_gettop(L) - 1 : base;
        kt = lua_type(L, key);
        if (kt == LUA_TNUMBER) {
            i = lua_tointegerx(L, key, &isint); /* no integral float keys */
            if (isint && i >= 1 && i <= narr) {
                lua_pop(L, 1); /* sent in the array part */
                continue;
            }
        } else if (kt != LUA_TSTRING && kt != LUA_TBOOLEAN) {
            fail(e, depth - 1,
                 "table key must be a string, number or "
                 "boolean (got %s)",
                 luaL_typename(L, key));
        }
        nrec++;
        if (e->canonical) {
            lua_pop(L, 1);
            luaL_checkstack(L, 3, "encode: canonical table too large");
            lua_pushvalue(L, key); /* keep a copy below lua_next's */
        } else {
            enc_pair(e, key, kt, key + 1, lua_type(L, key + 1), depth);
            lua_pop(L, 1);
        }
    }
    if (e->canonical) {
        sort_keys(L, base, (int)nrec);
        for (key = base; key < base + (int)nrec; key++) {
            lua_pushvalue(L, key);
            kt = lua_rawget(L, idx); /* [.., keys, value] */
            enc_pair(e, key, lua_type(L, key), base + (int)nrec, kt, depth);
            lua_pop(L, 1);
        }
        lua_settop(L, base - 1);
    }
    if (nrec < 0x80) {
        b->p[hdr] = (unsigned char)nrec;
        return;
    }
    /* rare: move the pairs right to make room for a longer uv */
    k = put_uv(tmp, nrec);
    room(e, k - 1);
    memmove(b->p + hdr + k, b->p + hdr + 1, b->len - hdr - 1);
    memcpy(b->p + hdr, tmp, k);
    b->len += k - 1;
    if (b->type_off > hdr)
        b->type_off += k - 1;
}

/* ---------------------------------------------------------- decoding */

static int dec_uv(dec *d, uint64_t *v)
{
    uint64_t r = 0;
    int shift;

    for (shift = 0; d->p < d->end; shift += 7) {
        unsigned c = *d->p++;
        if (shift == 63 && c > 1)
            return 0; /* more than 64 bits */
        r |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = r;
            return 1;
        }
    }
    return 0;
}

/* Whether 'n' more bytes fit besides what the open tables still need. */
static int fits(const dec *d, uint64_t n)
{
    size_t left = (size_t)(d->end - d->p);

    return left >= d->need && n <= left - d->need;
}

/* FNV-1a over at most LCS_SCACHE_LEN bytes, folded to a cache slot. */
static unsigned scache_slot(const unsigned char *s, size_t n)
{
    uint32_t h = 2166136261u;
    size_t i;

    for (i = 0; i < n; i++)
        h = (h ^ s[i]) * 16777619u;
    return (h ^ (h >> 16)) & (LCS_SCACHE - 1);
}

void lcs_push_cached(lua_State *L, lcs_strcache *sc, const char *s, size_t n)
{
    unsigned i;

    if (sc == NULL || n == 0 || n > LCS_SCACHE_LEN) {
        lua_pushlstring(L, s, n);
        return;
    }
    i = scache_slot((const unsigned char *)s, n);
    if (sc->len[i] == n && memcmp(sc->s[i], s, n) == 0) {
        lua_rawgeti(L, sc->idx, (lua_Integer)i + 1);
        return;
    }
    lua_pushlstring(L, s, n);
    lua_pushvalue(L, -1);
    lua_rawseti(L, sc->idx, (lua_Integer)i + 1); /* may raise: C after */
    memcpy(sc->s[i], s, n);
    sc->len[i] = (unsigned char)n;
}

static int dec_string(dec *d, uint64_t n)
{
    if (!fits(d, n))
        return 0;
    if (d->sc != NULL)
        lcs_push_cached(d->L, d->sc, (const char *)d->p, (size_t)n);
    else
        lua_pushlstring(d->L, (const char *)d->p, (size_t)n);
    d->p += n;
    return 1;
}

static int dec_table(dec *d, int depth);
static int dec_args_table(dec *d);

static int dec_value(dec *d, int depth)
{
    lua_State *L = d->L;
    uint64_t u = 0;
    unsigned t;
    int i;

    if (d->p == d->end)
        return 0;
    t = *d->p++;
    if (t < T_FIXSTR || t >= T_NEGINT) {
        lua_pushinteger(L, t < T_FIXSTR ? (lua_Integer)t : (int)t - 256);
        return 1;
    }
    if (t < T_NIL)
        return dec_string(d, t & 0x3f);
    switch (t) {
    case T_NIL:
        lua_pushnil(L);
        return 1;
    case T_FALSE:
    case T_TRUE:
        lua_pushboolean(L, t == T_TRUE);
        return 1;
    case T_FLOAT: {
        double x;
        if (d->end - d->p < 8)
            return 0;
        for (i = 7; i >= 0; i--)
            u = u << 8 | d->p[i];
        memcpy(&x, &u, 8);
        d->p += 8;
        lua_pushnumber(L, x);
        return 1;
    }
    case T_INT:
        if (!dec_uv(d, &u))
            return 0;
        lua_pushinteger(L, (lua_Integer)((u >> 1) ^ (0 - (u & 1))));
        return 1;
    case T_STR:
        return dec_uv(d, &u) && dec_string(d, u);
    case T_TABLE:
        return dec_table(d, depth + 1);
    case T_ARGS: /* only as the message itself: lcs_decode checks */
    default:
        return 0;
    }
}

static int dec_table(dec *d, int depth)
{
    lua_State *L = d->L;
    uint64_t narr, nrec, i;

    if (depth > MAXDEPTH || !lua_checkstack(L, 4))
        return 0;
    if (!dec_uv(d, &narr) || !dec_uv(d, &nrec) || narr > INT_MAX ||
        nrec > INT_MAX || !fits(d, narr + 2 * nrec))
        return 0;
    d->need += narr + 2 * nrec;
    lua_createtable(L, (int)narr, (int)nrec);
    for (i = 1; i <= narr; i++) {
        d->need -= 1;
        if (d->p < d->end && *d->p == T_NIL) {
            d->p++; /* a hole: nothing to store */
            continue;
        }
        if (!dec_value(d, depth))
            return 0;
        lua_rawseti(L, -2, (lua_Integer)i);
    }
    for (i = 0; i < nrec; i++) {
        d->need -= 2;
        /* lua_rawset would raise on a nil or nan key, and a table key
         * cannot have been sent */
        if (d->p == d->end || *d->p == T_NIL || *d->p == T_TABLE ||
            !dec_value(d, depth))
            return 0;
        if (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1) &&
            isnan(lua_tonumber(L, -1)))
            return 0;
        if (!dec_value(d, depth))
            return 0;
        lua_rawset(L, -3);
    }
    return 1;
}

/* The header of a positional message at d->p (past the T_ARGS tag):
 * the type, then the argument count, which must fit what is left. */
static int dec_args_head(dec *d, const char **type, size_t *tlen, uint64_t *k)
{
    unsigned t;

    if (d->p == d->end)
        return 0;
    t = *d->p++;
    if (t <= T_FIXSTR || t >= T_NIL || (size_t)(d->end - d->p) < (t & 0x3f))
        return 0;
    *type = (const char *)d->p;
    *tlen = t & 0x3f;
    d->p += *tlen;
    return dec_uv(d, k) && *k <= LCS_MAX_ARGS && fits(d, *k);
}

/* Push the k values of a positional message body. */
static int dec_args(dec *d, uint64_t k)
{
    uint64_t i;

    if (!lua_checkstack(d->L, (int)k + 4))
        return 0;
    d->need += k;
    for (i = 0; i < k; i++) {
        d->need -= 1;
        if (!dec_value(d, 0))
            return 0;
    }
    return 1;
}

/* A positional message as a value: {type = T, n = k, a1, ..., ak}. */
static int dec_args_table(dec *d)
{
    lua_State *L = d->L;
    const char *type;
    size_t tlen;
    uint64_t k, i;

    if (!dec_args_head(d, &type, &tlen, &k) || !lua_checkstack(L, 4))
        return 0;
    lua_createtable(L, (int)k, 2);
    lcs_push_cached(L, d->sc, type, tlen);
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, (lua_Integer)k);
    lua_setfield(L, -2, "n");
    d->need += k;
    for (i = 1; i <= k; i++) {
        d->need -= 1;
        if (d->p < d->end && *d->p == T_NIL) {
            d->p++; /* a hole: nothing to store */
            continue;
        }
        if (!dec_value(d, 0))
            return 0;
        lua_rawseti(L, -2, (lua_Integer)i);
    }
    return 1;
}

/* -------------------------------------------------------- public API */

void lcs_wbuf_free(lcs_wbuf *b)
{
    if (b != NULL) {
        free(b->p);
        memset(b, 0, sizeof *b);
    }
}

size_t lcs_encode(lua_State *L, int idx, lcs_wbuf *b, size_t max, int canonical,
                  const char *what)
{
    enc e;

    e.L = L;
    e.b = b;
    e.max = max;
    /* twice the limit, plus the slack of room()'s worst-case requests */
    e.hard = max == 0 ? 0 : max > (SIZE_MAX - 16) / 2 ? SIZE_MAX : 2 * max + 16;
    e.canonical = canonical;
    e.what = what != NULL ? what : "value";
    e.argi = 0;
    b->len = 0;
    b->type_off = b->type_len = 0;
    idx = lua_absindex(L, idx);
    enc_value(&e, idx, lua_type(L, idx), 0);
    if (max != 0 && b->len > max)
        luaL_error(L, "%s: message too large (%I bytes, limit %I)", e.what,
                   (lua_Integer)b->len, (lua_Integer)max);
    return b->len;
}

size_t lcs_encode_args(lua_State *L, const char *type, size_t tlen, int first,
                       int k, lcs_wbuf *b, size_t max, const char *what)
{
    enc e;
    unsigned char *q;
    int i;

    if (tlen < 1 || tlen > LCS_MAX_TYPE)
        luaL_error(L, "%s: a message type of 1..%d bytes",
                   what != NULL ? what : "msg", LCS_MAX_TYPE);
    if (k > LCS_MAX_ARGS)
        luaL_error(L, "%s: too many arguments (%d, at most %d)",
                   what != NULL ? what : "msg", k, LCS_MAX_ARGS);
    e.L = L;
    e.b = b;
    e.max = max;
    e.hard = max == 0 ? 0 : max > (SIZE_MAX - 16) / 2 ? SIZE_MAX : 2 * max + 16;
    e.canonical = 0;
    e.what = what != NULL ? what : "msg";
    e.argi = 0;
    b->len = 0;
    q = room(&e, 2 + tlen + 10);
    q[0] = T_ARGS;
    q[1] = (unsigned char)(T_FIXSTR | tlen);
    memcpy(q + 2, type, tlen);
    b->len = 2 + tlen + put_uv(q + 2 + tlen, (uint64_t)k);
    b->type_off = 2;
    b->type_len = tlen;
    first = lua_absindex(L, first);
    for (i = 0; i < k; i++) {
        e.argi = i + 1;
        enc_value(&e, first + i, lua_type(L, first + i), 0);
    }
    if (max != 0 && b->len > max)
        luaL_error(L, "%s: message too large (%I bytes, limit %I)", e.what,
                   (lua_Integer)b->len, (lua_Integer)max);
    return b->len;
}

int lcs_encoded_type(const lcs_wbuf *b, const char **type, size_t *len)
{
    if (b->type_off == 0) /* offset 0 always holds a tag */
        return 0;
    *type = (const char *)b->p + b->type_off;
    *len = b->type_len;
    return 1;
}

int lcs_decode_cached(lua_State *L, const void *data, size_t len,
                      lcs_strcache *sc)
{
    int top = lua_gettop(L), ok;
    dec d;

    if (len == 0 || !lua_checkstack(L, 2))
        return 0;
    d.L = L;
    d.p = data;
    d.end = d.p + len;
    d.need = 0;
    d.sc = sc;
    if (*d.p == T_ARGS) {
        d.p++;
        ok = dec_args_table(&d);
    } else {
        ok = dec_value(&d, 0);
    }
    if (ok && d.p == d.end)
        return 1;
    lua_settop(L, top); /* drop a partly built value */
    return 0;
}

int lcs_decode(lua_State *L, const void *data, size_t len)
{
    return lcs_decode_cached(L, data, len, NULL);
}

int lcs_args_head(const void *data, size_t len, const char **type, size_t *tlen,
                  size_t *body)
{
    dec d;
    uint64_t k;

    if (len < 2 || *(const unsigned char *)data != T_ARGS)
        return -1;
    d.L = NULL;
    d.p = (const unsigned char *)data + 1;
    d.end = (const unsigned char *)data + len;
    d.need = 0;
    d.sc = NULL;
    if (!dec_args_head(&d, type, tlen, &k))
        return -1;
    *body = (size_t)(d.p - (const unsigned char *)data);
    return (int)k;
}

int lcs_decode_args(lua_State *L, const void *data, size_t len, size_t body,
                    int k, lcs_strcache *sc)
{
    int top = lua_gettop(L);
    dec d;

    d.L = L;
    d.p = (const unsigned char *)data + body;
    d.end = (const unsigned char *)data + len;
    d.need = 0;
    d.sc = sc;
    if (dec_args(&d, (uint64_t)k) && d.p == d.end)
        return 1;
    lua_settop(L, top);
    return 0;
}

static int codec_encode(lua_State *L)
{
    lcs_wbuf *b = lua_touserdata(L, lua_upvalueindex(1));

    luaL_checkany(L, 1);
    lcs_encode(L, 1, b, LUA_LIMIT, lua_toboolean(L, 2), "value");
    lua_pushlstring(L, (const char *)b->p, b->len);
    if (b->cap > KEEP_BUF)
        lcs_wbuf_free(b); /* do not pin a rare big message */
    return 1;
}

static int codec_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);

    if (!lcs_decode(L, s, len))
        return luaL_error(L, "decode: malformed message");
    return 1;
}

static int codec_gc(lua_State *L)
{
    lcs_wbuf_free(lua_touserdata(L, 1));
    return 0;
}

void lcs_open_codec(lua_State *L)
{
    lcs_wbuf *b;

    luaL_checkstack(L, 3, "codec");
    b = lua_newuserdatauv(L, sizeof *b, 0); /* [t, buf] */
    memset(b, 0, sizeof *b);
    if (luaL_newmetatable(L, "consensus.CodecBuffer")) {
        lua_pushcfunction(L, codec_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    lua_pushcclosure(L, codec_encode, 1); /* [t, encode] */
    lua_setfield(L, -2, "encode");
    lua_pushcfunction(L, codec_decode);
    lua_setfield(L, -2, "decode");
}
