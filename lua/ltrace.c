/*
 * ltrace.c - message type names and the --trace writer.
 *
 * Message types ("VOTE", "PREPARE") are interned into small integer ids
 * shared by every node state of a run, so a cs_msg carries its type as a
 * number, metrics count per type in plain arrays, and the trace names the
 * type without decoding.  Interning takes the run's lock only the first
 * time a node sees a type: each node keeps a small cache of the types it
 * has interned (copies of the names, so the cache never reads shared
 * memory that may move).
 *
 * The trace is JSON Lines, one event per line, written by the main thread
 * at window barriers in the order the core hands events over: time, then
 * node, then the node's own sequence.  Writing streams through stdio, so
 * memory stays bounded however long the run.  The schema is in
 * docs/trace.md.
 */
#include "lconsensus.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lcs_types_init(lcs_run *run)
{
    pthread_mutex_t *m = malloc(sizeof *m);

    if (m == NULL || pthread_mutex_init(m, NULL) != 0) {
        free(m);
        return CS_ENOMEM;
    }
    run->types_lock = m;
    return CS_OK;
}

void lcs_types_free(lcs_run *run)
{
    uint32_t i;

    for (i = 0; i < run->ntypes; i++) {
        free(run->types[i]);
    }
    free(run->types);
    free(run->type_lens);
    run->types = NULL;
    run->type_lens = NULL;
    run->ntypes = run->captypes = 0;
    if (run->types_lock != NULL) {
        pthread_mutex_destroy(run->types_lock);
        free(run->types_lock);
        run->types_lock = NULL;
    }
}

/* Find or add the name under the run's lock; 0 when out of memory. */
static uint32_t intern(lcs_run *run, const char *s, size_t len)
{
    uint32_t i, id = 0;

    pthread_mutex_lock(run->types_lock);
    for (i = 0; i < run->ntypes; i++) {
        if (run->type_lens[i] == len && memcmp(run->types[i], s, len) == 0) {
            id = i + 1;
            break;
        }
    }
    if (id == 0) {
        if (run->ntypes == run->captypes) {
            uint32_t ncap = run->captypes ? run->captypes * 2 : 16;
            char **nt = realloc(run->types, ncap * sizeof *nt);
            size_t *nl = nt ? realloc(run->type_lens, ncap * sizeof *nl) : NULL;

            if (nt != NULL) {
                run->types = nt;
            }
            if (nl != NULL) {
                run->type_lens = nl;
                run->captypes = ncap;
            }
        }
        if (run->ntypes < run->captypes) {
            char *copy = malloc(len + 1);

            if (copy != NULL) {
                memcpy(copy, s, len);
                copy[len] = '\0';
                run->types[run->ntypes] = copy;
                run->type_lens[run->ntypes] = len;
                id = ++run->ntypes;
            }
        }
    }
    pthread_mutex_unlock(run->types_lock);
    return id;
}

uint32_t lcs_type_id(lcs_node *nd, const char *s, size_t len)
{
    unsigned i;
    uint32_t id;

    if (len == 0 || nd->run == NULL) {
        return 0;
    }
    for (i = 0; i < nd->ntcache; i++) {
        if (nd->tcache[i].len == len &&
            memcmp(nd->tcache[i].name, s, len) == 0) {
            return nd->tcache[i].id;
        }
    }
    id = intern(nd->run, s, len);
    if (id != 0 && len <= sizeof nd->tcache[0].name) {
        /* Replace round-robin once full: types per protocol are few. */
        lcs_tcache *c = &nd->tcache[nd->ntcache < LCS_TCACHE ? nd->ntcache++
                                                             : id % LCS_TCACHE];

        memcpy(c->name, s, len);
        c->len = (unsigned char)len;
        c->id = id;
    }
    return id;
}

void lcs_type_count(lcs_node *nd, uint32_t id, uint32_t count, size_t bytes)
{
    if (id >= nd->ntype) {
        uint32_t ncap = nd->ntype ? nd->ntype : 8, i;
        uint64_t *m, *b;

        while (ncap <= id) {
            ncap *= 2;
        }
        m = realloc(nd->type_msgs, ncap * sizeof *m);
        if (m != NULL) {
            nd->type_msgs = m;
        }
        b = m ? realloc(nd->type_bytes, ncap * sizeof *b) : NULL;
        if (b == NULL) {
            return; /* metrics are best effort */
        }
        nd->type_bytes = b;
        for (i = nd->ntype; i < ncap; i++) {
            m[i] = b[i] = 0;
        }
        nd->ntype = ncap;
    }
    nd->type_msgs[id] += count;
    nd->type_bytes[id] += (uint64_t)count * bytes;
}

/* -------------------------------------------------------------- writing */

void lcs_trace_str(lcs_run *run, const char *s, size_t len)
{
    FILE *f = run->trace;
    size_t i;

    putc('"', f);
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '"' || c == '\\') {
            putc('\\', f);
            putc(c, f);
        } else if (c == '\n') {
            fputs("\\n", f);
        } else if (c == '\t') {
            fputs("\\t", f);
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\u%04x", c);
        } else {
            putc(c, f); /* UTF-8 passes through; bad bytes too */
        }
    }
    putc('"', f);
}

static void put_ms(FILE *f, cs_time t)
{
    char buf[32];

    lcs_fmt_ms(buf, sizeof buf, t);
    fputs(buf, f);
}

static void put_type(lcs_run *run, uint32_t id)
{
    /* Live runs intern types on node threads while this one writes. */
    pthread_mutex_lock(run->types_lock);
    if (id == 0 || id > run->ntypes) {
        fputs("null", run->trace);
    } else {
        lcs_trace_str(run, run->types[id - 1], run->type_lens[id - 1]);
    }
    pthread_mutex_unlock(run->types_lock);
}

static const char *reason_name(int r)
{
    switch (r) {
    case CS_DROP_LOSS:
        return "loss";
    case CS_DROP_PARTITION:
        return "partition";
    case CS_DROP_DOWN:
        return "down";
    case CS_DROP_OVERFLOW:
        return "overflow";
    default:
        return "unknown";
    }
}

static const char *event_name(int k)
{
    switch (k) {
    case CS_TR_SEND:
        return "send";
    case CS_TR_DELIVER:
        return "deliver";
    case CS_TR_DROP:
        return "drop";
    case CS_TR_DUPLICATE:
        return "duplicate";
    case CS_TR_TIMER:
        return "timer";
    case CS_TR_CRASH:
        return "crash";
    case CS_TR_RESTART:
        return "restart";
    case CS_TR_PAUSE:
        return "pause";
    case CS_TR_DECIDE:
        return "decide";
    default:
        return "unknown";
    }
}

/* The value of a decision as JSON, through consensus.json in the main
 * state.  Protected: a failure writes null. */
static int value_json(lua_State *L)
{
    const cs_trace_rec *r = lua_touserdata(L, 1);

    lua_getglobal(L, "require");
    lua_pushliteral(L, "consensus.json");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "encode");
    if (!lcs_decode(L, r->data, r->len)) {
        lua_pushnil(L);
    }
    lua_call(L, 1, 1);
    return 1;
}

void lcs_trace_rec(void *ud, cs_sim *sim, const cs_trace_rec *r)
{
    lcs_run *run = ud;
    FILE *f = run->trace;

    (void)sim;
    if (f == NULL) {
        return;
    }
    fputs("{\"t\":", f);
    put_ms(f, r->at);
    fprintf(f, ",\"ev\":\"%s\",\"node\":%u", event_name(r->kind),
            (unsigned)r->node);
    switch (r->kind) {
    case CS_TR_SEND:
    case CS_TR_DELIVER:
    case CS_TR_DROP:
    case CS_TR_DUPLICATE:
        fprintf(f, ",\"peer\":%u,\"type\":", (unsigned)r->peer);
        put_type(run, r->msg_kind);
        fprintf(f, ",\"size\":%u,\"msg\":\"%u:%llu\"", (unsigned)r->size,
                (unsigned)r->src, (unsigned long long)r->id);
        if (r->kind == CS_TR_DROP) {
            fprintf(f, ",\"reason\":\"%s\"", reason_name(r->reason));
        } else if (r->kind != CS_TR_DELIVER) {
            fputs(",\"arrive\":", f);
            put_ms(f, r->arg);
        }
        break;
    case CS_TR_TIMER: {
        lua_State *L = run->L;
        size_t len;
        const char *name;

        lcs_node_timer_name(&run->nodes[r->node], r->tag, L);
        name = luaL_tolstring(L, -1, &len);
        fputs(",\"name\":", f);
        lcs_trace_str(run, name, len);
        lua_pop(L, 2);
        break;
    }
    case CS_TR_PAUSE:
        fputs(",\"ms\":", f);
        put_ms(f, r->arg);
        break;
    case CS_TR_DECIDE: {
        lua_State *L = run->L;
        const char *js;

        fprintf(f, ",\"slot\":%lld,\"value\":", (long long)r->slot);
        lua_pushcfunction(L, value_json);
        lua_pushlightuserdata(L, (void *)r);
        js = lua_pcall(L, 1, 1, 0) == LUA_OK ? lua_tostring(L, -1) : NULL;
        fputs(js != NULL ? js : "null", f);
        lua_pop(L, 1);
        break;
    }
    default:
        break;
    }
    fputs("}\n", f);
}

void lcs_trace_text(lcs_run *run, const char *ev, uint32_t node, cs_time at,
                    const char *key, const char *text, size_t len)
{
    FILE *f = run->trace;

    if (f == NULL) {
        return;
    }
    fputs("{\"t\":", f);
    put_ms(f, at);
    fprintf(f, ",\"ev\":\"%s\",\"node\":%u,\"%s\":", ev, (unsigned)node, key);
    lcs_trace_str(run, text, len);
    fputs("}\n", f);
}

void lcs_trace_line(lcs_run *run, const char *line)
{
    if (run->trace != NULL) {
        fputs(line, run->trace);
        putc('\n', run->trace);
    }
}
