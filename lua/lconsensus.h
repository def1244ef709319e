/*
 * lconsensus.h - the Lua binding of the consensus core.
 *
 * luaopen_consensus is the only symbol consensus.so exports.  The rest of
 * this header is shared between the binding's files.
 */
#ifndef LCONSENSUS_H
#define LCONSENSUS_H

#include <stdatomic.h>

#include <lua.h>
#include <lauxlib.h>

#include "consensus.h"
#include "lcodec.h"

#if defined(__GNUC__)
#define LCS_EXPORT __attribute__((visibility("default")))
#else
#define LCS_EXPORT
#endif

LCS_EXPORT int luaopen_consensus(lua_State *L);

#define LCS_SIM "consensus.Sim"
#define LCS_RUN "consensus.Run"
/* Registry key set in node states only. */
#define LCS_NODE_KEY "consensus.node"

/* Kinds of records a node emits to the main state (cs_sim_emit). */
enum { LCS_OUT_LOG = 1, LCS_OUT_NOTE, LCS_OUT_ERROR, LCS_OUT_COUNT };

/* The watchdog's default: wall-clock seconds one handler call may run. */
#define LCS_WATCHDOG_SECS 5.0

/* Nested coroutine resumes the watchdog can reach; a coroutine nested
 * deeper is stopped once control is back within this depth (the stack
 * costs 8 bytes a level in every node). */
#define LCS_CO_MAX 32

/* Limits a run gives its node states. */
typedef struct lcs_limits {
    size_t max_msg;  /* bytes of one encoded message */
    long budget;     /* VM instructions per handler call; 0: none */
    double watchdog; /* wall-clock seconds per handler call, without a
                        budget (lwatch.c); 0: none */
    size_t mem;      /* bytes of one node state */
    int allow;       /* LCS_ALLOW_*: libraries opened on purpose */
} lcs_limits;

/* What a scenario may give node states on purpose (sim{allow = {...}},
 * --allow): the real io library, the real os library (its time and clock
 * still virtual), and debug.  Each breaks isolation or determinism. */
enum { LCS_ALLOW_IO = 1, LCS_ALLOW_OS = 2, LCS_ALLOW_DEBUG = 4 };

struct lcs_run;

/* A message type a node has already interned: saves the global lock. */
typedef struct lcs_tcache {
    char name[24];
    unsigned char len;
    uint32_t id;
} lcs_tcache;

#define LCS_TCACHE 8

/* One node's Lua side.  It lives in C memory owned by the run, and the
 * node's lua_State points back to it through its extra space.  Only the
 * worker that owns the node in a window touches it, or the main thread at
 * a barrier. */
typedef struct lcs_node {
    lua_State *L; /* the node's own state, or NULL */
    cs_sim *sim;
    struct lcs_run *run;
    uint32_t id, n, f;
    const lcs_limits *lim;
    lcs_wbuf wbuf;             /* encode scratch */
    size_t mem;                /* bytes allocated by L */
    long steps;                /* instructions used by the current call */
    atomic_uint calls;         /* handler calls begun + ended: odd inside one */
    atomic_uint trip_call;     /* the call the watchdog armed the hook for */
    _Atomic double trip_secs;  /* ... after running this long */
    int tripped;               /* the watchdog stopped the current call */
    lua_State *co[LCS_CO_MAX]; /* coroutines being resumed, outermost first
                                  (lock: the watchdog's) */
    int nco;
    int capped; /* the memory cap refused an allocation */
    int in_handler;
    uint32_t ntags; /* timer names interned so far */
    lcs_tcache tcache[LCS_TCACHE];
    unsigned ntcache;
    uint64_t *type_msgs; /* per message type id: sent, bytes */
    uint64_t *type_bytes;
    uint32_t ntype;
    /* node.store across crashes: what was synced (node:sync) and what was
     * written when it crashed; encoded, canonical. */
    unsigned char *synced;
    size_t synced_len;
    unsigned char *saved;
    size_t saved_len;
    int has_saved;
    /* --data-dir: node.store snapshots (node:sync) and decisions, each an
     * append-only log of this node's own (struct cs_log *) */
    void *store_log;
    void *dec_log;
    unsigned char sk[64]; /* this node's Ed25519 secret key */
    /* the state's small-block allocator (lnode.c) */
    void *free_list[16];
    void *slabs;
    char *slab_ptr;
    size_t slab_left;
    uint64_t forgeries; /* node:verify calls that failed */
    /* the decoder's short-string cache; its Lua table is an upvalue of
     * the node's deliver function (lnode.c) */
    lcs_strcache scache;
    /* the type of the positional message whose on[type] handler runs, so
     * an error can name "on.TYPE"; points into the message, NULL outside
     * such a call */
    const char *on_type;
    size_t on_tlen;
} lcs_node;

/* One call of consensus._run: the node states and what the main state
 * needs at barriers.  Owned by a LCS_RUN userdata, so an error raised
 * halfway through building it still closes every node state. */
typedef struct lcs_run {
    lua_State *L; /* the main state; used only at barriers */
    cs_sim *sim;
    lcs_node *nodes;
    uint32_t n;
    lcs_limits lim;
    int strict;
    int errors;      /* handler errors seen */
    int actions_idx; /* stack slots in L during the run */
    int results_idx;
    int protocols_idx;
    int cache_idx;
    const char *name;  /* the protocol's name in error paths */
    int failed_action; /* an action raised: stop */
    long action_steps; /* instructions of the running action */
    void *trace;       /* FILE * of --trace, or NULL */
    /* message type names, interned across node states (lock: types_lock) */
    void *types_lock; /* pthread_mutex_t * */
    char **types;
    size_t *type_lens;
    uint32_t ntypes, captypes;
    unsigned char *pks;      /* every node's public key, 32 bytes each;
                               read-only during the run */
    struct lcs_watch *watch; /* the watchdog, while the run runs */
    uint64_t key_seed;       /* lsign.c: keys are made on first use ... */
    atomic_int keys;         /* ... and then this is set */
} lcs_run;

/* lwatch.c: the watchdog thread.  Start it for a run (no thread when
 * 'limit' is 0); stop it before the node states close.  hold/release
 * guard a node state's opening and closing against it (no-ops without a
 * watchdog). */
typedef struct lcs_watch lcs_watch;
int lcs_watch_start(lcs_run *run, double limit);
void lcs_watch_stop(lcs_run *run);
void lcs_watch_hold(lcs_run *run);
void lcs_watch_release(lcs_run *run);
/* lnode.c: make node 'nd' raise at its next VM instruction if it is still
 * in handler call 'call' (the watchdog's thread). */
void lcs_node_trip(lcs_node *nd, unsigned call, double secs);

/* lsign.c: Ed25519 keys of every node, derived from the seed; node:sign
 * and node:verify.  lcs_sign_setup fills run->pks and each node's sk. */
int lcs_sign_setup(lcs_run *run, uint64_t seed);
int lcs_node_sign(lua_State *L);
int lcs_node_verify(lua_State *L);

/* ltrace.c: the id of message type s[0..len) (1..; 0 for none),
 * interning it on first sight.  Any thread.  0 also when out of memory. */
uint32_t lcs_type_id(lcs_node *nd, const char *s, size_t len);
/* Count 'count' sent messages of type 'id', of 'bytes' bytes each, for
 * the node's metrics (a broadcast counts once per destination). */
void lcs_type_count(lcs_node *nd, uint32_t id, uint32_t count, size_t bytes);
void lcs_types_free(lcs_run *run);
int lcs_types_init(lcs_run *run);
/* Trace writing (main thread, at barriers). */
void lcs_trace_rec(void *ud, cs_sim *sim, const cs_trace_rec *rec);
void lcs_trace_text(lcs_run *run, const char *ev, uint32_t node, cs_time at,
                    const char *key, const char *text, size_t len);
void lcs_trace_line(lcs_run *run, const char *line);
/* Write s[0..len) as a JSON string to the trace file. */
void lcs_trace_str(lcs_run *run, const char *s, size_t len);

/* The node a node state belongs to.  Only valid in node states: the
 * stock interpreter does not clear the main state's extra space. */
static inline lcs_node *lcs_node_of(lua_State *L)
{
    return *(lcs_node **)lua_getextraspace(L);
}

/* lnode.c: build node 'nd''s state with the sandboxed libraries and the
 * node table; CS_OK or CS_ENOMEM.  The protocol is installed separately. */
int lcs_node_open(lcs_node *nd);
void lcs_node_close(lcs_node *nd);
void lcs_node_free_slabs(lcs_node *nd);
/* Close the state and free everything the node owns. */
void lcs_node_free(lcs_node *nd);
/* Install the protocol at the top of the node's stack (popped): keeps its
 * handlers at fixed stack slots.  Raises nothing; returns 0 on success. */
void lcs_node_install(lcs_node *nd);
/* Crash-restart (main thread, at a barrier): keep node.store, close the
 * state; build a fresh one, copy the protocol in, restore the store and
 * run start. */
void lcs_node_crash(void *ud, cs_sim *sim, uint32_t node, int flags);
int lcs_node_restart(void *ud, cs_sim *sim, uint32_t node);
/* The name of timer 'tag' of a node, pushed on L (nil if unknown). */
void lcs_node_timer_name(lcs_node *nd, uint32_t tag, lua_State *L);
/* Set node.store from the saved snapshot (recovery); raises nothing. */
void lcs_node_restore(lcs_node *nd);
/* The cs_callbacks node entries; 'ud' is the run (lcs_run). */
int lcs_node_start(void *ud, cs_sim *sim, uint32_t node);
int lcs_node_message(void *ud, cs_sim *sim, uint32_t node, uint32_t from,
                     cs_msg *msg);
int lcs_node_timer(void *ud, cs_sim *sim, uint32_t node, uint32_t tag);

/* lsim.c */
void lcs_open_sim(lua_State *L);

/* lconsensus.c: functions shared by node states and the main state. */
int lcs_sorted_pairs(lua_State *L);

/* Format virtual time in ms with three decimals into buf. */
void lcs_fmt_ms(char *buf, size_t size, cs_time t);

#endif
