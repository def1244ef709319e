/*
 * micro.c - the per-message limit of the Lua C API, measured.
 *
 * consensus-lua delivers a message by building a fresh table in the
 * receiver's state and calling its Lua handler under lua_pcall; a handler
 * sends by building a table and calling a C function.  These loops do just
 * that, with nothing else around (no codec, no queue, no threads), so their
 * rate bounds what any engine built on one lua_State per node can reach:
 *
 *   a  C->Lua handler call (lua_pcall) with a fresh 4-field table per call
 *   b  the same with one reused table
 *   c  Lua->C send: a Lua loop calling a C function with a fresh 4-field
 *      table that the C side walks with lua_next (as an encoder does)
 *   c0 the same with a reused table (the call alone)
 *   d  "the limit": a (fresh table, pcall) whose handler builds a 4-field
 *      table and calls the C send once
 *   e  a with allvote's VOTE handler (count votes per round in the node)
 *
 * and variants of d that isolate one ingredient of consensus-lua's path:
 *   d-deliver  pcall of a C function that builds the table and lua_calls
 *              the handler (lnode.c's shape: two calls per message)
 *   d-hook     a count hook every 1000 instructions (lnode.c's budget)
 *   d-gen      generational GC          d-pool  a size-class allocator
 *   d-pool-gen both                     e-pool-gen  the same for e
 *
 * Build and run (bench/run does it):
 *   cc -O2 -I/usr/include/lua5.4 bench/micro.c -o micro -llua5.4 -lm
 *   ./micro [iterations] [repetitions] [filter]
 * Each line: "micro NAME ns_per_op=X mops=Y" with the median over the
 * repetitions, in process CPU time (the loops are single-threaded, so a
 * busy machine slows them less than it slows wall time).
 */
#define _POSIX_C_SOURCE 200809L

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------------- pool allocator */

/* Size classes of 16 bytes up to 512, each a free list carved out of
 * 64 KiB slabs; bigger blocks go to malloc.  Lua passes the old size on
 * every free and realloc, so no header is needed.  Slabs are only freed
 * with the pool (at lua_close). */
#define POOL_STEP 16
#define POOL_MAX 512
#define POOL_SLAB 65536
#define NCLASS (POOL_MAX / POOL_STEP)

typedef struct pool {
    void *free[NCLASS];
    char *cur, *end;
    void **slabs;
    size_t nslabs, capslabs;
} pool;

static size_t cls(size_t n)
{
    return (n + POOL_STEP - 1) / POOL_STEP - 1;
}

static void *pool_get(pool *p, size_t n)
{
    size_t c = cls(n), sz = (c + 1) * POOL_STEP;
    void *b = p->free[c];

    if (b != NULL) {
        p->free[c] = *(void **)b;
        return b;
    }
    if ((size_t)(p->end - p->cur) < sz) {
        if (p->nslabs == p->capslabs) {
            size_t nc = p->capslabs ? p->capslabs * 2 : 16;
            void **ns = realloc(p->slabs, nc * sizeof *ns);
            if (ns == NULL) {
                return NULL;
            }
            p->slabs = ns;
            p->capslabs = nc;
        }
        if ((p->cur = malloc(POOL_SLAB)) == NULL) {
            return NULL;
        }
        p->slabs[p->nslabs++] = p->cur;
        p->end = p->cur + POOL_SLAB;
    }
    b = p->cur;
    p->cur += sz;
    return b;
}

static void pool_put(pool *p, void *b, size_t n)
{
    size_t c = cls(n);

    *(void **)b = p->free[c];
    p->free[c] = b;
}

static void *pool_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    pool *p = ud;
    void *nb;

    if (ptr == NULL) {
        osize = 0;
    }
    if (nsize == 0) {
        if (ptr != NULL) {
            if (osize <= POOL_MAX) {
                pool_put(p, ptr, osize);
            } else {
                free(ptr);
            }
        }
        return NULL;
    }
    if (osize > POOL_MAX && nsize > POOL_MAX) {
        return realloc(ptr, nsize);
    }
    if (ptr != NULL && osize <= POOL_MAX && nsize <= POOL_MAX &&
        cls(osize) == cls(nsize)) {
        return ptr;
    }
    nb = nsize <= POOL_MAX ? pool_get(p, nsize) : malloc(nsize);
    if (nb == NULL) {
        return NULL;
    }
    if (ptr != NULL) {
        memcpy(nb, ptr, osize < nsize ? osize : nsize);
        if (osize <= POOL_MAX) {
            pool_put(p, ptr, osize);
        } else {
            free(ptr);
        }
    }
    return nb;
}

static void pool_free_all(pool *p)
{
    size_t i;

    for (i = 0; i < p->nslabs; i++) {
        free(p->slabs[i]);
    }
    free(p->slabs);
    memset(p, 0, sizeof *p);
}

/* --------------------------------------------------------- the state */

typedef struct opts {
    int gen, pool, hook;
} opts;

static pool the_pool;
static long sink;           /* keeps the C send's work observable */

static void hook(lua_State *L, lua_Debug *ar)
{
    (void)L;
    (void)ar;
    sink++;
}

/* send(to, msg): walk the table as an encoder would. */
static int c_send(lua_State *L)
{
    long acc = (long)lua_tointeger(L, 1);

    lua_pushnil(L);
    while (lua_next(L, 2)) {
        acc += lua_type(L, -1) + lua_type(L, -2);
        lua_pop(L, 1);
    }
    sink += acc;
    return 0;
}

static const char *CHUNK =
    "local send = ...\n"
    "local H = {}\n"
    "function H.count(node, msg, from)\n"
    "  if msg.type == 'VOTE' then node.count = node.count + 1 end\n"
    "end\n"
    "function H.send(node, msg, from)\n"
    "  send(from, { type = 'VOTE', round = msg.round, value = msg.value,\n"
    "               yes = true })\n"
    "end\n"
    "function H.vote(node, msg, from)\n"
    "  if msg.type == 'VOTE' then\n"
    "    local r = msg.round\n"
    "    if not msg.yes or msg.value ~= 1000 + r then return end\n"
    "    local votes = node.votes\n"
    "    local c = (votes[r] or 0) + 1\n"
    "    votes[r] = c < node.n and c or nil\n"
    "    if c == node.quorum then node.decided = node.decided + 1 end\n"
    "  end\n"
    "end\n"
    "function H.loop(n, to)\n"
    "  for i = 1, n do\n"
    "    send(to, { type = 'VOTE', round = i, value = 1000 + i, yes = true })\n"
    "  end\n"
    "end\n"
    "function H.loop0(n, to)\n"
    "  local t = { type = 'VOTE', round = 1, value = 1001, yes = true }\n"
    "  for i = 1, n do send(to, t) end\n"
    "end\n"
    "return H\n";

enum { S_MSGH = 1, S_H, S_NODE, S_FN, S_MSG, S_TOP = S_MSG };

static int msgh(lua_State *L)
{
    (void)L;
    return 1;             /* the error object as it is */
}

static void check(lua_State *L, int rc)
{
    if (rc != LUA_OK) {
        fprintf(stderr, "micro: %s\n", lua_tostring(L, -1));
        exit(1);
    }
}

static lua_State *newstate(const opts *o)
{
    lua_State *L;

    if (o->pool) {
        L = lua_newstate(pool_alloc, &the_pool);
    } else {
        L = luaL_newstate();
    }
    if (L == NULL) {
        fprintf(stderr, "micro: cannot create a state\n");
        exit(1);
    }
    luaL_openlibs(L);
    if (o->gen) {
        lua_gc(L, LUA_GCGEN, 0, 0);
    }
    lua_pushcfunction(L, msgh);                             /* S_MSGH */
    if (luaL_loadstring(L, CHUNK) != LUA_OK) {
        fprintf(stderr, "micro: %s\n", lua_tostring(L, -1));
        exit(1);
    }
    lua_pushcfunction(L, c_send);
    lua_call(L, 1, 1);                                      /* S_H */
    check(L, luaL_dostring(L, "return { count = 0, votes = {}, n = 64, "
                              "quorum = 43, decided = 0 }"));   /* S_NODE */
    lua_pushnil(L);                                         /* S_FN */
    lua_pushnil(L);                                         /* S_MSG */
    if (o->hook) {
        lua_sethook(L, hook, LUA_MASKCOUNT, 1000);
    }
    return L;
}

static void closestate(lua_State *L, const opts *o)
{
    lua_close(L);
    if (o->pool) {
        pool_free_all(&the_pool);
    }
}

/* A fresh {type="VOTE", round=r, value=1000+r, yes=true}, built the way
 * lcs_decode builds a message: pre-sized, keys pushed as strings. */
static void push_msg(lua_State *L, lua_Integer r)
{
    lua_createtable(L, 0, 4);
    lua_pushlstring(L, "type", 4);
    lua_pushlstring(L, "VOTE", 4);
    lua_rawset(L, -3);
    lua_pushlstring(L, "round", 5);
    lua_pushinteger(L, r);
    lua_rawset(L, -3);
    lua_pushlstring(L, "value", 5);
    lua_pushinteger(L, 1000 + r);
    lua_rawset(L, -3);
    lua_pushlstring(L, "yes", 3);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
}

static void set_fn(lua_State *L, const char *name)
{
    lua_getfield(L, S_H, name);
    lua_replace(L, S_FN);
}

/* ---------------------------------------------------------- the loops */

static void run_call(lua_State *L, long n, int fresh)
{
    long i;

    push_msg(L, 7);
    lua_replace(L, S_MSG);
    for (i = 0; i < n; i++) {
        lua_pushvalue(L, S_FN);
        lua_pushvalue(L, S_NODE);
        if (fresh) {
            push_msg(L, i & 1023);
        } else {
            lua_pushvalue(L, S_MSG);
        }
        lua_pushinteger(L, 3);
        check(L, lua_pcall(L, 3, 0, S_MSGH));
    }
}

static int deliver(lua_State *L)
{
    lua_Integer r = lua_tointeger(L, 3);

    push_msg(L, r);
    lua_replace(L, 3);
    lua_call(L, 3, 0);
    return 0;
}

static void run_deliver(lua_State *L, long n)
{
    long i;

    for (i = 0; i < n; i++) {
        lua_pushcfunction(L, deliver);
        lua_pushvalue(L, S_FN);
        lua_pushvalue(L, S_NODE);
        lua_pushinteger(L, i & 1023);
        lua_pushinteger(L, 3);
        check(L, lua_pcall(L, 4, 0, S_MSGH));
    }
}

static void run_loop(lua_State *L, long n, const char *fn)
{
    lua_getfield(L, S_H, fn);
    lua_pushinteger(L, n);
    lua_pushinteger(L, 3);
    check(L, lua_pcall(L, 2, 0, S_MSGH));
}

enum { K_CALL_FRESH, K_CALL_REUSED, K_LOOP, K_LOOP0, K_DELIVER };

typedef struct bench {
    const char *name;
    int kind;
    const char *fn;
    opts o;
} bench;

static const bench benches[] = {
    {"a", K_CALL_FRESH, "count", {0, 0, 0}},
    {"b", K_CALL_REUSED, "count", {0, 0, 0}},
    {"c", K_LOOP, "loop", {0, 0, 0}},
    {"c0", K_LOOP0, "loop0", {0, 0, 0}},
    {"d", K_CALL_FRESH, "send", {0, 0, 0}},
    {"e", K_CALL_FRESH, "vote", {0, 0, 0}},
    {"d-deliver", K_DELIVER, "send", {0, 0, 0}},
    {"d-hook", K_CALL_FRESH, "send", {0, 0, 1}},
    {"d-gen", K_CALL_FRESH, "send", {1, 0, 0}},
    {"d-pool", K_CALL_FRESH, "send", {0, 1, 0}},
    {"d-pool-gen", K_CALL_FRESH, "send", {1, 1, 0}},
    {"e-pool-gen", K_CALL_FRESH, "vote", {1, 1, 0}},
};

static double cpu_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double once(const bench *b, long n)
{
    lua_State *L = newstate(&b->o);
    double t0, t1;

    set_fn(L, b->fn);
    /* warm up: grow the stack, the string table and the free lists */
    switch (b->kind) {
    case K_CALL_FRESH: run_call(L, n / 20 + 1, 1); break;
    case K_CALL_REUSED: run_call(L, n / 20 + 1, 0); break;
    case K_LOOP: case K_LOOP0: run_loop(L, n / 20 + 1, b->fn); break;
    default: run_deliver(L, n / 20 + 1); break;
    }
    lua_settop(L, S_TOP);
    t0 = cpu_now();
    switch (b->kind) {
    case K_CALL_FRESH: run_call(L, n, 1); break;
    case K_CALL_REUSED: run_call(L, n, 0); break;
    case K_LOOP: case K_LOOP0: run_loop(L, n, b->fn); break;
    default: run_deliver(L, n); break;
    }
    t1 = cpu_now();
    closestate(L, &b->o);
    return (t1 - t0) * 1e9 / (double)n;
}

static int cmp_double(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;

    return a < b ? -1 : a > b;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    int reps = argc > 2 ? atoi(argv[2]) : 3, r;
    const char *filter = argc > 3 ? argv[3] : NULL;
    double ns[64];
    size_t i;

    if (n <= 0 || reps <= 0 || reps > 64) {
        fprintf(stderr, "usage: micro [iterations] [repetitions 1..64] "
                        "[name]\n");
        return 2;
    }
    for (i = 0; i < sizeof benches / sizeof benches[0]; i++) {
        const bench *b = &benches[i];
        double med;

        if (filter != NULL && strcmp(filter, b->name) != 0) {
            continue;
        }
        for (r = 0; r < reps; r++) {
            ns[r] = once(b, n);
        }
        qsort(ns, (size_t)reps, sizeof ns[0], cmp_double);
        med = reps % 2 ? ns[reps / 2] : (ns[reps / 2 - 1] + ns[reps / 2]) / 2;
        printf("micro %s ns_per_op=%.1f mops=%.3f\n", b->name, med,
               1e3 / med);
        fflush(stdout);
    }
    return sink == 42 ? 3 : 0;      /* never: keeps 'sink' alive */
}
