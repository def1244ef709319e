/*
 * ltransfer.c - copy a protocol from the main state into a node's state.
 *
 * A protocol is a table of handlers whose functions close over locals of
 * the user's script: numbers, tables, other functions, library functions,
 * the consensus module.  Every node has its own lua_State, so the whole
 * graph is copied into each one: tables key by key (metatables included),
 * Lua functions by lua_dump (with debug info, so tracebacks still name the
 * script and line) and lua_load in 'to', then each upvalue by position.
 *
 * Design.  The copy runs as one protected call in 'to' (transfer_main):
 * anything that can raise in 'to' (allocation, lua_load, rawset) happens
 * under it, and a failure becomes a message.  'from' is only read with
 * calls that never raise (rawget, next, getupvalue, dump, tolstring on
 * actual strings); the three things that may allocate in 'from' (finding
 * package.loaded, filling the cache, pushing the error message) run in
 * their own lua_pcall there.  from's GC is paused meanwhile, so no
 * finalizer can run and change a table we are walking, and no object we
 * keyed by address can be freed and its address reused.
 *
 * Memo tables live on the protected call's stack in 'to', keyed by light
 * userdata: from's object addresses (lua_topointer) and upvalue ids
 * (lua_upvalueid).  An object is entered before its contents are copied,
 * so cycles and recursive functions find their own copy.  The first copied
 * closure to own an upvalue is recorded with the upvalue's position; later
 * closures that share it are joined to it with lua_upvaluejoin.
 *
 * Library values are mapped, not copied: before the copy, every table or
 * function at package.loaded[M] or package.loaded[M][K] (K a string) in
 * 'from' is looked up at the same path in 'to' and entered in the memo, or,
 * if missing there, in a table of missing paths that makes the copy fail
 * ("is io.open, which node states do not have").  A module path wins over
 * a field path, and a present path over a missing one.  Of loaded._G only
 * the standard globals count: user globals are copied, not mapped.
 *
 * from's globals table maps to to's.  The first time it is reached, the
 * user's globals (keys a fresh standard state lacks, "arg" aside) are
 * copied into to's globals, each only if a read-only walk (check) finds
 * its whole graph copyable: one bad global must not fail the protocol nor
 * leave half-copied tables in the memo.  A handler reading a skipped
 * global sees nil.
 *
 * The value transferred (the root) is always copied, even when it is a
 * loaded module itself, e.g. a protocol the scenario got from require.
 *
 * Cost.  Each call rebuilds the library map (some 150 entries with the
 * standard libraries: about 15-25 us) and loads every function; dumping
 * them again for each of 1000 nodes would double that, so
 * lcs_transfer_cached keeps the dumps in a table of the caller's.
 *
 * Limits.  Values are copies: a node that changes an upvalue table changes
 * its own copy only, and the main state sees nothing; that isolation is
 * the point (DESIGN.md, principle 1).  Userdata, light userdata, threads
 * and C functions outside package.loaded cannot be copied.  Nesting deeper
 * than MAXDEPTH tables/functions fails, to bound C recursion.  Identity is
 * kept within one call only.  A library value maps to whatever 'to' has at
 * that path, so a node state with a replaced math.random gets its own.
 */
#include "ltransfer.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#define MAXDEPTH 200 /* nested tables/functions; as LUAI_MAXCCALLS */
#define FSLOTS 8     /* stack slots one level uses in 'from' */
#define TSLOTS 8     /* ... and in 'to' */

/* Slots of transfer_main's frame in 'to'. */
enum {
    T_CTX = 1, /* light userdata: the transfer */
    T_MEMO,    /* from address -> copy or mapped value */
    T_MISSING, /* from address -> "io.open" */
    T_UPV,     /* upvalue id -> first closure owning it */
    T_UPVN,    /* upvalue id -> its position there */
    T_GLOBALS, /* to's globals */
    T_LOADED,  /* to's package.loaded, or nil */
    T_CHECK    /* addresses seen by check(), per global */
};

/* Where a value was found, for error messages.  Frames live on the C
 * stack and are rendered only at failure time, when all are still live;
 * a field's key is read back from from's stack at 'idx'. */
enum { P_ROOT, P_FIELD, P_KEY, P_UPVAL, P_META };

typedef struct path {
    const struct path *up;
    int kind;
    int idx;       /* P_FIELD: the key's index in 'from' */
    const char *s; /* P_ROOT: name; P_UPVAL: upvalue name */
} path;

typedef struct transfer {
    lua_State *from, *to;
    const char *name;
    int root;         /* absolute index of the value in 'from' */
    int fglobals;     /* absolute index of from's globals */
    int floaded;      /* ... of from's package.loaded, or 0 */
    int cache;        /* ... of the cache table, or 0 */
    const void *gptr; /* from's globals table */
    int globals_done;
    int depth;
    char *buf;         /* dump buffer: freed after the protected */
    size_t len, cap;   /* call, so never raised over */
    const char *rdata; /* what the reader hands to lua_load */
    size_t rlen;
    size_t pos; /* length of msg */
    char msg[512];
} transfer;

static void copy(transfer *tr, int idx, const path *p);
static void copy_globals(transfer *tr);

/* ------------------------------------------------------------ messages */

static void vadd(transfer *tr, const char *fmt, va_list ap)
{
    int n;

    if (tr->pos >= sizeof tr->msg - 1)
        return;
    n = vsnprintf(tr->msg + tr->pos, sizeof tr->msg - tr->pos, fmt, ap);
    if (n > 0)
        tr->pos += (size_t)n;
    if (tr->pos > sizeof tr->msg - 1)
        tr->pos = sizeof tr->msg - 1; /* truncated */
}

static void add(transfer *tr, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vadd(tr, fmt, ap);
    va_end(ap);
}

/* Render a path as Lua would index: Vote.a["b c"][3]: upvalue 'x'. */
static void add_path(transfer *tr, const path *p)
{
    static const char ident[] = "_abcdefghijklmnopqrstuvwxyz"
                                "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    lua_State *F = tr->from;
    const char *s;
    size_t n;

    if (p->up != NULL)
        add_path(tr, p->up);
    switch (p->kind) {
    case P_ROOT:
        add(tr, "%s", p->s);
        return;
    case P_KEY:
        add(tr, ": key");
        return;
    case P_UPVAL:
        add(tr, ": upvalue '%s'", p->s);
        return;
    case P_META:
        add(tr, ": metatable");
        return;
    }
    switch (lua_type(F, p->idx)) { /* P_FIELD */
    case LUA_TSTRING:
        s = lua_tolstring(F, p->idx, &n);
        if (n > 0 && strspn(s, ident) == n && !(s[0] >= '0' && s[0] <= '9'))
            add(tr, ".%s", s);
        else
            add(tr, "[\"%.*s\"]", (int)(n > 40 ? 40 : n), s);
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(F, p->idx))
            add(tr, "[%lld]", (long long)lua_tointeger(F, p->idx));
        else
            add(tr, "[%.14g]", (double)lua_tonumber(F, p->idx));
        break;
    case LUA_TBOOLEAN:
        add(tr, "[%s]", lua_toboolean(F, p->idx) ? "true" : "false");
        break;
    default:
        add(tr, "[%s]", luaL_typename(F, p->idx));
        break;
    }
}

/* Fail the transfer: the message goes to tr->msg, and the error value is
 * the transfer itself (a light userdata, so raising needs no memory). */
static void fail(transfer *tr, const path *p, const char *fmt, ...)
{
    va_list ap;

    tr->pos = 0;
    add_path(tr, p);
    if (tr->pos > 300) { /* a deep path: keep its head and tail */
        memcpy(tr->msg + 100, "...", 3);
        memmove(tr->msg + 103, tr->msg + tr->pos - 150, 150);
        tr->pos = 253;
    }
    va_start(ap, fmt);
    vadd(tr, fmt, ap);
    va_end(ap);
    lua_pushlightuserdata(tr->to, tr);
    lua_error(tr->to);
}

/* Why the value at 'idx' cannot be copied.  A userdata's type name is
 * found by walking its metatable, since indexing it would allocate. */
static void fail_type(transfer *tr, int idx, const path *p)
{
    lua_State *F = tr->from;
    const char *tname = "";

    if (lua_type(F, idx) == LUA_TUSERDATA && lua_getmetatable(F, idx)) {
        lua_pushnil(F);
        while (*tname == '\0' && lua_next(F, -2)) {
            if (lua_type(F, -2) == LUA_TSTRING &&
                lua_type(F, -1) == LUA_TSTRING &&
                strcmp(lua_tostring(F, -2), "__name") == 0)
                tname = lua_tostring(F, -1); /* anchored in mt */
            lua_pop(F, 1);
        }
    }
    switch (lua_type(F, idx)) {
    case LUA_TUSERDATA:
        fail(tr, p, " is a userdata%s%s%s", *tname ? " (" : "", tname,
             *tname ? ")" : "");
        break;
    case LUA_TLIGHTUSERDATA:
        fail(tr, p, " is a light userdata");
        break;
    case LUA_TTHREAD:
        fail(tr, p, " is a thread (coroutine)");
        break;
    default:
        fail(tr, p, " is a C function outside package.loaded");
        break;
    }
}

/* ---------------------------------------------------------- dump, load */

static int writer(lua_State *L, const void *p, size_t sz, void *ud)
{
    transfer *tr = ud;
    size_t cap = tr->cap ? tr->cap : 4096;
    char *nb;

    (void)L;
    while (cap - tr->len < sz && cap <= (size_t)-1 / 2)
        cap *= 2;
    if (cap - tr->len < sz)
        return 1;
    if (cap != tr->cap) {
        if ((nb = realloc(tr->buf, cap)) == NULL)
            return 1; /* lua_dump returns it; we report it */
        tr->buf = nb;
        tr->cap = cap;
    }
    if (sz > 0)
        memcpy(tr->buf + tr->len, p, sz);
    tr->len += sz;
    return 0;
}

static const char *reader(lua_State *L, void *ud, size_t *size)
{
    transfer *tr = ud;
    const char *s = tr->rdata;

    (void)L;
    *size = tr->rlen;
    tr->rdata = NULL;
    tr->rlen = 0;
    return *size ? s : NULL;
}

/* In 'from', protected: cache[fn] = the dumped chunk.  [cache, fn, tr] */
static int from_cache_put(lua_State *L)
{
    const transfer *tr = lua_touserdata(L, 3);

    lua_settop(L, 2);
    lua_pushlstring(L, tr->buf, tr->len);
    lua_rawset(L, 1);
    return 0;
}

/* Push on 'to' a fresh closure of the Lua function at 'idx' of 'from'
 * (upvalues not set yet), loading the cached chunk if there is one. */
static void load_function(transfer *tr, int idx, const path *p)
{
    lua_State *F = tr->from, *T = tr->to;
    int cached = 0, rc;

    if (tr->cache) {
        lua_pushvalue(F, idx);
        cached = lua_rawget(F, tr->cache) == LUA_TSTRING;
        if (cached)
            tr->rdata = lua_tolstring(F, -1, &tr->rlen); /* kept on F */
        else
            lua_pop(F, 1);
    }
    if (!cached) {
        tr->len = 0;
        lua_pushvalue(F, idx);
        rc = lua_dump(F, writer, tr, 0); /* 0: keep the debug info */
        lua_pop(F, 1);
        if (rc != 0)
            fail(tr, p, " cannot be dumped: not enough memory");
        if (tr->cache) {
            /* Best effort: if 'from' is out of memory, just don't cache. */
            lua_pushcfunction(F, from_cache_put);
            lua_pushvalue(F, tr->cache);
            lua_pushvalue(F, idx);
            lua_pushlightuserdata(F, tr);
            if (lua_pcall(F, 3, 0, 0) != LUA_OK)
                lua_pop(F, 1);
        }
        tr->rdata = tr->buf;
        tr->rlen = tr->len;
    }
    rc = lua_load(T, reader, tr, "=transfer", "b");
    if (cached)
        lua_pop(F, 1);
    if (rc != LUA_OK)
        lua_error(T); /* its message is on top of 'to' */
}

/* -------------------------------------------------------------- copying */

static void copy_table(transfer *tr, int idx, const path *p)
{
    lua_State *F = tr->from, *T = tr->to;
    lua_Unsigned n = lua_rawlen(F, idx);
    const path mp = { p, P_META, 0, NULL };
    int t;

    /* rawlen is only a hint: a sparse table can report a huge border */
    lua_createtable(T, n < 1024 ? (int)n : 1024, 0);
    t = lua_gettop(T);
    lua_pushvalue(T, t);
    lua_rawsetp(T, T_MEMO, lua_topointer(F, idx));
    lua_pushnil(F);
    while (lua_next(F, idx)) { /* F: [.., k, v] */
        const int k = lua_gettop(F) - 1;
        const path kp = { p, P_KEY, k, NULL }, vp = { p, P_FIELD, k, NULL };

        copy(tr, k, &kp);
        copy(tr, k + 1, &vp); /* T: [.., t, k, v] */
        lua_rawset(T, t);
        lua_pop(F, 1);
    }
    /* The metatable goes last, so a copied __gc sees a full table. */
    if (lua_getmetatable(F, idx)) {
        copy(tr, lua_gettop(F), &mp);
        if (!lua_istable(T, -1)) /* a library path gone astray */
            fail(tr, &mp, " is a %s in node states", luaL_typename(T, -1));
        lua_setmetatable(T, t);
        lua_pop(F, 1);
    }
}

static void copy_function(transfer *tr, int idx, const path *p)
{
    lua_State *F = tr->from, *T = tr->to;
    const char *name;
    void *id;
    int g, i;

    if (lua_iscfunction(F, idx))
        fail_type(tr, idx, p);
    load_function(tr, idx, p);
    g = lua_gettop(T);
    lua_pushvalue(T, g);
    lua_rawsetp(T, T_MEMO, lua_topointer(F, idx));
    /* load set upvalue 1 to the globals, _ENV or not; all are set here,
     * by position, since the prototype is the same. */
    for (i = 1; (name = lua_getupvalue(F, idx, i)) != NULL; i++) {
        const path up = { p, P_UPVAL, 0, name };

        id = lua_upvalueid(F, idx, i);
        if (lua_rawgetp(T, T_UPV, id) == LUA_TFUNCTION) {
            lua_rawgetp(T, T_UPVN, id); /* T: [.., g, h, n] */
            lua_upvaluejoin(T, g, i, -2, (int)lua_tointeger(T, -1));
            lua_pop(T, 2);
        } else {
            /* Enter it before copying the value: the value may reach a
             * closure that shares this very upvalue. */
            lua_pop(T, 1);
            lua_pushvalue(T, g);
            lua_rawsetp(T, T_UPV, id);
            lua_pushinteger(T, i);
            lua_rawsetp(T, T_UPVN, id);
            copy(tr, lua_gettop(F), &up);
            if (lua_setupvalue(T, g, i) == NULL)
                lua_pop(T, 1);
        }
        lua_pop(F, 1);
    }
}

/* Push on 'to' the copy of the value at 'idx' of 'from'. */
static void copy(transfer *tr, int idx, const path *p)
{
    lua_State *F = tr->from, *T = tr->to;
    const void *ptr;
    const char *s;
    size_t n;

    switch (lua_type(F, idx)) {
    case LUA_TNIL:
        lua_pushnil(T);
        return;
    case LUA_TBOOLEAN:
        lua_pushboolean(T, lua_toboolean(F, idx));
        return;
    case LUA_TNUMBER:
        if (lua_isinteger(F, idx))
            lua_pushinteger(T, lua_tointeger(F, idx));
        else
            lua_pushnumber(T, lua_tonumber(F, idx));
        return;
    case LUA_TSTRING:
        s = lua_tolstring(F, idx, &n);
        lua_pushlstring(T, s, n);
        return;
    case LUA_TTABLE:
    case LUA_TFUNCTION:
        break;
    default:
        fail_type(tr, idx, p);
    }
    ptr = lua_topointer(F, idx);
    if (ptr == tr->gptr) {
        copy_globals(tr);
        lua_pushvalue(T, T_GLOBALS);
        return;
    }
    /* The root is copied even if it is a module (unless it is a C
     * function); copying enters it in the memo over its mapping, so a
     * cycle back to it finds the copy. */
    if (p->up != NULL || lua_iscfunction(F, idx)) {
        if (lua_rawgetp(T, T_MEMO, ptr) != LUA_TNIL)
            return;
        lua_pop(T, 1);
        if (lua_rawgetp(T, T_MISSING, ptr) == LUA_TSTRING)
            fail(tr, p, " is %s, which node states do not have",
                 lua_tostring(T, -1));
        lua_pop(T, 1);
    }
    if (tr->depth >= MAXDEPTH)
        fail(tr, p, " is nested too deeply (over %d levels)", MAXDEPTH);
    if (!lua_checkstack(F, FSLOTS))
        fail(tr, p, ": stack overflow in the main state");
    luaL_checkstack(T, TSLOTS, "transfer");
    tr->depth++;
    if (lua_type(F, idx) == LUA_TTABLE)
        copy_table(tr, idx, p);
    else
        copy_function(tr, idx, p);
    tr->depth--;
}

/* ------------------------------------------------------------- globals */

/* Keys of a fresh standard state's globals, and "arg". */
#define G(s)            \
    {                   \
        s, sizeof s - 1 \
    }
static const struct {
    const char *s;
    size_t n;
} std_globals[] = { G("_G"),
                    G("_VERSION"),
                    G("arg"),
                    G("assert"),
                    G("collectgarbage"),
                    G("coroutine"),
                    G("debug"),
                    G("dofile"),
                    G("error"),
                    G("getmetatable"),
                    G("io"),
                    G("ipairs"),
                    G("load"),
                    G("loadfile"),
                    G("math"),
                    G("next"),
                    G("os"),
                    G("package"),
                    G("pairs"),
                    G("pcall"),
                    G("print"),
                    G("rawequal"),
                    G("rawget"),
                    G("rawlen"),
                    G("rawset"),
                    G("require"),
                    G("select"),
                    G("setmetatable"),
                    G("string"),
                    G("table"),
                    G("tonumber"),
                    G("tostring"),
                    G("type"),
                    G("utf8"),
                    G("warn"),
                    G("xpcall") };
#undef G

static int is_std_global(lua_State *F, int idx)
{
    const char *s;
    size_t n, i;

    if (lua_type(F, idx) != LUA_TSTRING)
        return 0;
    s = lua_tolstring(F, idx, &n);
    for (i = 0; i < sizeof std_globals / sizeof std_globals[0]; i++)
        if (std_globals[i].n == n && memcmp(s, std_globals[i].s, n) == 0)
            return 1;
    return 0;
}

static int seen(lua_State *T, int tab, const void *ptr)
{
    int t = lua_rawgetp(T, tab, ptr);

    lua_pop(T, 1);
    return t != LUA_TNIL;
}

/* Could the value at 'idx' be copied at depth 'd'?  Walks the graph as
 * copy() would, in the same order, copying nothing.  What the memo holds
 * is copied or mapped already; what this walk has entered counts as good,
 * since the first bad value ends the walk. */
static int check(transfer *tr, int idx, int d)
{
    lua_State *F = tr->from, *T = tr->to;
    int t = lua_type(F, idx), ok = 1, i;
    const void *ptr;

    if (t == LUA_TNIL || t == LUA_TBOOLEAN || t == LUA_TNUMBER ||
        t == LUA_TSTRING)
        return 1;
    if (t != LUA_TTABLE && t != LUA_TFUNCTION)
        return 0;
    ptr = lua_topointer(F, idx);
    if (ptr == tr->gptr || seen(T, T_MEMO, ptr) || seen(T, T_CHECK, ptr))
        return 1;
    if (seen(T, T_MISSING, ptr) || d >= MAXDEPTH || lua_iscfunction(F, idx) ||
        !lua_checkstack(F, FSLOTS))
        return 0;
    luaL_checkstack(T, TSLOTS, "transfer");
    lua_pushboolean(T, 1);
    lua_rawsetp(T, T_CHECK, ptr);
    if (t == LUA_TFUNCTION) {
        for (i = 1; ok && lua_getupvalue(F, idx, i) != NULL; i++) {
            ok = check(tr, lua_gettop(F), d + 1);
            lua_pop(F, 1);
        }
        return ok;
    }
    lua_pushnil(F);
    while (lua_next(F, idx)) { /* F: [.., k, v] */
        i = lua_gettop(F);
        ok = check(tr, i - 1, d + 1) && check(tr, i, d + 1);
        lua_pop(F, ok ? 1 : 2); /* on failure, the key too */
        if (!ok)
            return 0;
    }
    if (lua_getmetatable(F, idx)) {
        ok = check(tr, lua_gettop(F), d + 1);
        lua_pop(F, 1);
    }
    return ok;
}

/* Copy the user's globals into to's globals, once, skipping silently any
 * whose graph holds something that cannot be copied. */
static void copy_globals(transfer *tr)
{
    lua_State *F = tr->from, *T = tr->to;
    const path gp = { NULL, P_ROOT, 0, "_G" };

    if (tr->globals_done)
        return;
    tr->globals_done = 1; /* first: globals reach _G again */
    if (!lua_checkstack(F, FSLOTS))
        fail(tr, &gp, ": stack overflow in the main state");
    luaL_checkstack(T, TSLOTS, "transfer");
    lua_pushnil(F);
    while (lua_next(F, tr->fglobals)) { /* F: [.., k, v] */
        const int k = lua_gettop(F) - 1;
        const path kp = { &gp, P_KEY, k, NULL }, vp = { &gp, P_FIELD, k, NULL };

        if (!is_std_global(F, k)) {
            lua_newtable(T);
            lua_replace(T, T_CHECK);
            if (check(tr, k, tr->depth) && check(tr, k + 1, tr->depth)) {
                copy(tr, k, &kp);
                copy(tr, k + 1, &vp);
                lua_rawset(T, T_GLOBALS);
            }
        }
        lua_pop(F, 1);
    }
    lua_pushnil(T);
    lua_replace(T, T_CHECK); /* let the last walk's table go */
}

/* ---------------------------------------------------------- library map */

/* With a table (or anything) on top of 'to', push its field named by the
 * string at 'idx' of 'from', or nil. */
static void push_field(transfer *tr, int idx)
{
    size_t n;
    const char *s = lua_tolstring(tr->from, idx, &n);

    if (lua_istable(tr->to, -1)) {
        lua_pushlstring(tr->to, s, n);
        lua_rawget(tr->to, -2);
    } else {
        lua_pushnil(tr->to);
    }
}

/* Map the table or function on top of 'from', found at path M[.K], to the
 * value on top of 'to' (nil if 'to' lacks that path). */
static void map_library(transfer *tr, const char *m, const char *k)
{
    lua_State *F = tr->from, *T = tr->to;
    const void *ptr = lua_topointer(F, -1);

    if (ptr == tr->gptr || seen(T, T_MEMO, ptr))
        return; /* the first present path wins */
    /* A path whose value in 'to' is of another type (a script put data
     * where a library function was) is missing, not mapped. */
    if (!lua_isnil(T, -1) && lua_type(T, -1) == lua_type(F, -1)) {
        lua_pushvalue(T, -1);
        lua_rawsetp(T, T_MEMO, ptr);
    } else if (!seen(T, T_MISSING, ptr)) {
        if (k == NULL)
            lua_pushstring(T, m);
        else if (strcmp(m, "_G") == 0)
            lua_pushstring(T, k);
        else
            lua_pushfstring(T, "%s.%s", m, k);
        lua_rawsetp(T, T_MISSING, ptr);
    }
}

static int is_ref(lua_State *F, int idx)
{
    int t = lua_type(F, idx);

    return t == LUA_TTABLE || t == LUA_TFUNCTION;
}

/* Build the reverse map of from's package.loaded: modules in a first
 * pass, then their fields, so a module's own path wins. */
/* Modules whose values map by name: the standard libraries and the
 * consensus C module.  Any other module (a user's protocol kept in a file
 * and required, a pure-Lua library such as consensus.attackers) is plain
 * Lua data and functions, and is copied like the rest. */
static int is_mapped_module(lua_State *F, int idx)
{
    static const char *const names[] = { "_G",        "string",    "table",
                                         "math",      "os",        "io",
                                         "coroutine", "utf8",      "debug",
                                         "package",   "consensus", NULL };
    size_t len;
    const char *s = lua_tolstring(F, idx, &len);
    int i;

    for (i = 0; names[i] != NULL; i++) {
        if (strlen(names[i]) == len && memcmp(s, names[i], len) == 0) {
            return 1;
        }
    }
    return 0;
}

static void build_library_map(transfer *tr)
{
    lua_State *F = tr->from, *T = tr->to;
    int pass, isg;

    for (pass = 1; tr->floaded && pass <= 2; pass++) {
        lua_pushnil(F);
        while (lua_next(F, tr->floaded)) { /* F: [.., M, mod] */
            if (lua_type(F, -2) != LUA_TSTRING || !is_ref(F, -1) ||
                !is_mapped_module(F, -2)) {
                lua_pop(F, 1);
                continue;
            }
            lua_pushvalue(T, T_LOADED);
            push_field(tr, -2); /* T: [loaded, tmod] */
            if (pass == 1) {
                map_library(tr, lua_tostring(F, -2), NULL);
            } else if (lua_istable(F, -1)) {
                /* of _G, only the standard globals are library values */
                isg = lua_topointer(F, -1) == tr->gptr;
                lua_pushnil(F);
                while (lua_next(F, -2)) { /* F: [.., mod, K, v] */
                    if (lua_type(F, -2) == LUA_TSTRING && is_ref(F, -1) &&
                        (!isg || is_std_global(F, -2))) {
                        push_field(tr, -2);
                        map_library(tr, lua_tostring(F, -4),
                                    lua_tostring(F, -2));
                        lua_pop(T, 1);
                    }
                    lua_pop(F, 1);
                }
            }
            lua_pop(T, 2);
            lua_pop(F, 1);
        }
    }
}

/* ---------------------------------------------------------- entry points */

/* The protected call in 'to'.  [tr] -> the copy */
static int transfer_main(lua_State *T)
{
    transfer *tr = lua_touserdata(T, T_CTX);
    const path root = { NULL, P_ROOT, 0, tr->name };

    luaL_checkstack(T, 16, "transfer");
    lua_createtable(T, 0, 256); /* T_MEMO */
    lua_newtable(T);            /* T_MISSING */
    lua_newtable(T);            /* T_UPV */
    lua_newtable(T);            /* T_UPVN */
    lua_rawgeti(T, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    lua_getfield(T, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushnil(T); /* T_CHECK */
    build_library_map(tr);
    copy(tr, tr->root, &root);
    return 1;
}

/* In 'from', protected: push package.loaded (getfield may allocate). */
static int from_loaded(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    return 1;
}

/* In 'from', protected: push the message.  [tr] -> msg */
static int from_message(lua_State *L)
{
    const transfer *tr = lua_touserdata(L, 1);

    lua_pushstring(L, tr->msg);
    return 1;
}

int lcs_transfer(lua_State *from, int idx, lua_State *to, const char *name)
{
    return lcs_transfer_cached(from, idx, to, name, 0);
}

int lcs_transfer_cached(lua_State *from, int idx, lua_State *to,
                        const char *name, int cache_idx)
{
    transfer tr;
    int ftop = lua_gettop(from), gcwas = 0, ok = 0;

    memset(&tr, 0, sizeof tr);
    tr.from = from;
    tr.to = to;
    tr.name = name != NULL ? name : "value";
    tr.root = lua_absindex(from, idx);
    if (cache_idx != 0 && lua_type(from, cache_idx) == LUA_TTABLE)
        tr.cache = lua_absindex(from, cache_idx);
    if (!lua_checkstack(from, 2 * FSLOTS) || !lua_checkstack(to, 3)) {
        snprintf(tr.msg, sizeof tr.msg, "%s: stack overflow", tr.name);
        goto done;
    }
    /* No finalizer may run in 'from' and change what we walk. */
    if ((gcwas = lua_gc(from, LUA_GCISRUNNING)) != 0)
        lua_gc(from, LUA_GCSTOP);
    lua_rawgeti(from, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    tr.fglobals = lua_gettop(from);
    tr.gptr = lua_topointer(from, -1);
    lua_pushcfunction(from, from_loaded);
    if (lua_pcall(from, 0, 1, 0) == LUA_OK && lua_istable(from, -1))
        tr.floaded = lua_gettop(from);
    lua_pushcfunction(to, transfer_main);
    lua_pushlightuserdata(to, &tr);
    if (lua_pcall(to, 1, 1, 0) == LUA_OK) {
        ok = 1;
    } else {
        /* Our own failures raise 'tr' with the message ready; any other
         * error (out of memory, mostly) is a string from Lua. */
        if (lua_touserdata(to, -1) != &tr)
            snprintf(tr.msg, sizeof tr.msg, "%s: %s", tr.name,
                     lua_type(to, -1) == LUA_TSTRING ? lua_tostring(to, -1)
                                                     : "error in node state");
        lua_pop(to, 1);
    }
    free(tr.buf);
    lua_settop(from, ftop);
    if (gcwas)
        lua_gc(from, LUA_GCRESTART);
done:
    /* With no room at all on from's stack, nothing can be pushed. */
    if (!ok && lua_checkstack(from, 2)) {
        lua_pushcfunction(from, from_message);
        lua_pushlightuserdata(from, &tr);
        lua_pcall(from, 1, 1, 0); /* on failure, Lua's memory message */
    }
    return ok;
}
