/*
 * lconsensus.h - the Lua binding of the consensus core.
 *
 * luaopen_consensus is the only symbol consensus.so exports.  The rest of
 * this header is shared between the binding's files.
 */
#ifndef LCONSENSUS_H
#define LCONSENSUS_H

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
enum { LCS_OUT_LOG = 1, LCS_OUT_NOTE, LCS_OUT_ERROR };

/* Limits a run gives its node states. */
typedef struct lcs_limits {
    size_t max_msg;         /* bytes of one encoded message */
    long budget;            /* VM instructions per handler call */
    size_t mem;             /* bytes of one node state */
} lcs_limits;

/* One node's Lua side.  It lives in C memory owned by the run, and the
 * node's lua_State points back to it through its extra space.  Only the
 * worker that owns the node in a window touches it. */
typedef struct lcs_node {
    lua_State *L;           /* the node's own state, or NULL */
    cs_sim *sim;
    uint32_t id, n, f;
    const lcs_limits *lim;
    lcs_wbuf wbuf;          /* encode scratch */
    size_t mem;             /* bytes allocated by L */
    long steps;             /* instructions used by the current call */
    int in_handler;
    uint32_t ntags;         /* timer names interned so far */
} lcs_node;

/* One call of consensus._run: the node states and what the main state
 * needs at barriers.  Owned by a LCS_RUN userdata, so an error raised
 * halfway through building it still closes every node state. */
typedef struct lcs_run {
    lua_State *L;           /* the main state; used only at barriers */
    cs_sim *sim;
    lcs_node *nodes;
    uint32_t n;
    lcs_limits lim;
    int strict;
    int errors;             /* handler errors seen */
    int actions_idx;        /* stack slots in L during the run */
    int results_idx;
    int failed_action;      /* an action raised: stop */
} lcs_run;

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
/* Install the protocol at the top of the node's stack (popped): keeps its
 * handlers at fixed stack slots.  Raises nothing; returns 0 on success. */
void lcs_node_install(lcs_node *nd);
/* The cs_callbacks node entries; 'ud' is the run's lcs_node array. */
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
