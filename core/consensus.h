/*
 * consensus.h - public C API of the consensus-lua core.
 *
 * The core is plain C11 with pthreads and knows nothing of Lua.  It moves
 * immutable, reference-counted message buffers (cs_msg) between nodes
 * through a network model, orders every event on a deterministic
 * virtual-time scheduler, and records decisions for the checker.  What a
 * node *does* with a message is up to the embedder, through callbacks.
 *
 * Conventions: functions return an int error code (CS_OK or a negative
 * CS_E* value) and hand results back through out-parameters; the core never
 * prints and never exits.  Free functions accept NULL.
 */
#ifndef CONSENSUS_H
#define CONSENSUS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CS_VERSION "0.1.0"

/* Virtual time in microseconds. */
typedef int64_t cs_time;
#define CS_TIME_MAX INT64_MAX
#define CS_MS(ms) ((cs_time)(ms)*1000)

enum {
    CS_OK = 0,
    CS_ENOMEM = -1,    /* out of memory */
    CS_EINVAL = -2,    /* invalid argument */
    CS_ECLOSED = -3,   /* channel closed */
    CS_EFULL = -4,     /* channel full (non-blocking send) */
    CS_EEMPTY = -5,    /* channel empty (non-blocking receive) */
    CS_ETIMEDOUT = -6, /* a timed wait expired */
    CS_ESTOPPED = -7,  /* a run was stopped by a callback */
    CS_ETOOBIG = -8,   /* a message exceeds the size cap */
    CS_ESTATE = -9,    /* call not allowed in the object's state */
    CS_ECORRUPT = -10, /* stored data failed its checksum */
    CS_EIO = -11       /* a system I/O call failed (see the errno) */
};

/* A static English description of an error code; never NULL. */
const char *cs_strerror(int rc);

/* ---------------------------------------------------------------- memory */

/* All core allocations go through these.  Tests may make the nth call fail
 * with cs_fail_alloc_at(n) (n >= 1; 0 disables). */
void *cs_malloc(size_t size);
void *cs_calloc(size_t n, size_t size);
void *cs_realloc(void *p, size_t size);
void cs_free(void *p);
void cs_fail_alloc_at(long n);

/* -------------------------------------------------------------- messages */

/* An immutable byte buffer shared by reference count between threads.  A
 * broadcast shares one cs_msg among all its destinations. */
typedef struct cs_msg cs_msg;

/* Copy 'len' bytes of 'data' into a new message with one reference, owned
 * by the caller.  'kind' is a small integer the embedder may use to label
 * the message (the Lua binding stores an interned type id).  CS_ENOMEM. */
int cs_msg_new(cs_msg **out, const void *data, size_t len, uint32_t kind);

/* Take one more reference; returns 'm'. */
cs_msg *cs_msg_ref(cs_msg *m);

/* Drop one reference; frees the message with the last one.  NULL is ok. */
void cs_msg_unref(cs_msg *m);

const void *cs_msg_data(const cs_msg *m);
size_t cs_msg_len(const cs_msg *m);
uint32_t cs_msg_kind(const cs_msg *m);

/* --------------------------------------------------------------- channel */

/* A bounded FIFO of cs_msg references, safe between threads.  It is
 * reference-counted: each party (sender, receiver) holds one reference and
 * drops it with cs_chan_unref when done.  When all but one reference are
 * gone the remaining party learns its peer vanished: the channel closes
 * itself, so a blocked call returns CS_ECLOSED instead of waiting forever. */
typedef struct cs_chan cs_chan;

/* A new open channel holding up to 'cap' (>= 1) messages, with one
 * reference owned by the caller.  CS_EINVAL, CS_ENOMEM. */
int cs_chan_new(cs_chan **out, size_t cap);
cs_chan *cs_chan_ref(cs_chan *ch);
/* Drop a reference; the last one frees the channel and unrefs every message
 * still queued.  Dropping to one remaining reference closes the channel. */
void cs_chan_unref(cs_chan *ch);

/* Queue 'msg', blocking while the channel is full (back-pressure).  On CS_OK
 * the channel takes over the caller's reference; on CS_ECLOSED the caller
 * keeps it. */
int cs_chan_send(cs_chan *ch, cs_msg *msg);
/* As cs_chan_send without blocking: CS_EFULL when full. */
int cs_chan_trysend(cs_chan *ch, cs_msg *msg);
/* As cs_chan_send, waiting at most 'timeout_us' wall-clock microseconds:
 * CS_ETIMEDOUT when still full. */
int cs_chan_send_timeout(cs_chan *ch, cs_msg *msg, int64_t timeout_us);

/* Take the oldest message, blocking while the channel is empty and open.  On
 * CS_OK the caller owns the reference stored in *out.  Once the channel is
 * closed, queued messages are still returned; then CS_ECLOSED. */
int cs_chan_recv(cs_chan *ch, cs_msg **out);
/* As cs_chan_recv without blocking: CS_EEMPTY when empty and open. */
int cs_chan_tryrecv(cs_chan *ch, cs_msg **out);
/* As cs_chan_recv, waiting at most 'timeout_us': CS_ETIMEDOUT. */
int cs_chan_recv_timeout(cs_chan *ch, cs_msg **out, int64_t timeout_us);

/* Stop accepting messages and wake every waiter.  Idempotent; never frees. */
void cs_chan_close(cs_chan *ch);
int cs_chan_closed(cs_chan *ch);
size_t cs_chan_len(cs_chan *ch);

/* ------------------------------------------------------------------- rng */

/* xoshiro256** seeded through splitmix64.  Each node draws from its own
 * stream derived from (seed, stream id), so results do not depend on the
 * order in which threads run nodes. */
typedef struct cs_rng {
    uint64_t s[4];
} cs_rng;

void cs_rng_init(cs_rng *r, uint64_t seed, uint64_t stream);
uint64_t cs_rng_next(cs_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double cs_rng_double(cs_rng *r);
/* Uniform in [0, n) without modulo bias; n == 0 gives 0. */
uint64_t cs_rng_below(cs_rng *r, uint64_t n);

/* --------------------------------------------------------------- network */

enum cs_latency_kind {
    CS_LAT_CONST = 0, /* a */
    CS_LAT_UNIFORM,   /* uniform in [a, b] */
    CS_LAT_NORMAL,    /* mean a, deviation b, never below 'min' */
    CS_LAT_EXP,       /* 'min' + exponential with mean a */
    CS_LAT_PARETO     /* scale a (also the minimum), shape b */
};

/* A latency distribution, in microseconds.  'min' is the floor of the
 * unbounded kinds (normal, exp); 0 means a tenth of 'a', and never less
 * than 1 us, because the floor is the scheduler's lookahead. */
typedef struct cs_latency {
    int kind;
    double a, b;
    double min;
} cs_latency;

typedef struct cs_net_config {
    cs_latency latency;
    double loss;      /* probability a message is dropped, [0, 1] */
    double duplicate; /* probability a message is delivered twice */
} cs_net_config;

/* Check a network configuration: CS_EINVAL for probabilities outside
 * [0, 1], negative or inverted bounds, or a latency whose minimum is 0. */
int cs_net_validate(const cs_net_config *net);
/* The smallest delay the model can produce (the scheduler's lookahead). */
cs_time cs_net_min_delay(const cs_net_config *net);
/* Draw one delay from 'r'; always >= cs_net_min_delay(). */
cs_time cs_net_delay(const cs_net_config *net, cs_rng *r);

/* ------------------------------------------------------------ simulation */

typedef struct cs_sim cs_sim;

typedef struct cs_sim_config {
    uint32_t nodes; /* >= 1 */
    uint64_t seed;
    unsigned threads; /* worker threads, >= 1 */
    cs_net_config net;
    cs_time until;         /* end of virtual time (inclusive) */
    uint32_t expect_slots; /* decisions each honest node must make */
    int stop_when_decided; /* end the run once all honest decided */
    int check_validity;    /* decided values must have been proposed */
    uint32_t inbox_cap;    /* messages pending per node; 0: no cap */
    int overflow;          /* CS_OVERFLOW_*: what a full inbox does */
    int trace;             /* deliver cs_trace_rec to callbacks.trace */
    int live;              /* wall-clock mode: a thread per node (see
                                   core/live.c); not reproducible */
    int fifo; /* links deliver in send order: no message overtakes an
                 earlier one on its link (simulated runs) */
} cs_sim_config;

/* What happens to a message that arrives at a full inbox (inbox_cap
 * pending messages).  Decided at the window barrier, in (at, src, seq)
 * order, so it is as deterministic as the rest. */
enum {
    CS_OVERFLOW_DROP_NEWEST = 0, /* the arriving message is dropped */
    CS_OVERFLOW_DROP_RANDOM,     /* a random one of the pending messages
                                       and the arriving one is dropped */
    CS_OVERFLOW_BLOCK            /* the arriving message waits outside the
                                       inbox until there is room, then
                                       arrives (later than it would have) */
};

/* One traced event.  Only with cfg.trace; delivered to callbacks.trace at
 * window barriers in (at, node, seq) order.  'node' is the node the event
 * happened at (the sender for CS_TR_SEND and drops at the sender), 'peer'
 * the other end or CS_NO_NODE.  A message is identified by (src, id): the
 * sender and its sequence number at send time; a duplicate has its own. */
enum cs_trace_kind {
    CS_TR_SEND = 1,
    CS_TR_DELIVER,
    CS_TR_DROP,
    CS_TR_DUPLICATE,
    CS_TR_TIMER,
    CS_TR_CRASH,
    CS_TR_RESTART,
    CS_TR_PAUSE,
    CS_TR_DECIDE
};
enum cs_drop_reason {
    CS_DROP_LOSS = 1,
    CS_DROP_PARTITION,
    CS_DROP_DOWN,
    CS_DROP_OVERFLOW
};
#define CS_NO_NODE UINT32_MAX

typedef struct cs_trace_rec {
    int kind; /* CS_TR_* */
    cs_time at;
    uint32_t node, peer;
    uint32_t src;      /* message sender */
    uint64_t id;       /* message id at its sender */
    uint32_t msg_kind; /* cs_msg_kind of the message */
    uint32_t size;     /* payload bytes */
    uint32_t tag;      /* timer tag */
    int reason;        /* CS_DROP_* */
    cs_time arg;       /* send: delivery time; pause: duration */
    int64_t slot;      /* decide */
    const void *data;  /* decide: the value's bytes */
    size_t len;
} cs_trace_rec;

/* Fill 'cfg' with defaults: 4 nodes, seed 1, 1 thread, constant 10 ms
 * latency, no loss, until 60 s, one slot, stop when decided, validity
 * checked. */
void cs_sim_config_init(cs_sim_config *cfg);

/* What the embedder does for a node.  Each call for node i happens on the
 * worker that owns i for the current window, never on two threads at once.
 * A callback returns 0, or nonzero to mark the node failed (it then handles
 * no more events).  'action' runs on the thread that called cs_sim_run, at a
 * window barrier; nonzero from it stops the run with CS_ESTOPPED.  'output'
 * also runs there and delivers, in (time, node, seq) order, the records
 * nodes emitted with cs_sim_emit during the window. */
typedef struct cs_callbacks {
    void *ud;
    int (*start)(void *ud, cs_sim *sim, uint32_t node);
    int (*message)(void *ud, cs_sim *sim, uint32_t node, uint32_t from,
                   cs_msg *msg);
    int (*timer)(void *ud, cs_sim *sim, uint32_t node, uint32_t tag);
    int (*action)(void *ud, cs_sim *sim, uint64_t id);
    void (*output)(void *ud, cs_sim *sim, uint32_t node, cs_time at, int kind,
                   const void *data, size_t len);
    /* At a barrier, on the cs_sim_run thread: node 'node' crashed (its
     * embedder state may go; pending timers are void) or restarts (build
     * a fresh state and run its start; nonzero marks it failed).  'flags'
     * are the cs_sim_crash flags. */
    void (*crash)(void *ud, cs_sim *sim, uint32_t node, int flags);
    int (*restart)(void *ud, cs_sim *sim, uint32_t node);
    /* With cfg.trace, each traced event, at barriers, in order. */
    void (*trace)(void *ud, cs_sim *sim, const cs_trace_rec *rec);
} cs_callbacks;

/* A new simulation; the caller owns it.  CS_EINVAL for a bad config. */
int cs_sim_new(cs_sim **out, const cs_sim_config *cfg);
void cs_sim_free(cs_sim *sim);

/* Mark 'node' Byzantine: it runs but is excluded from the checks. */
int cs_sim_set_byzantine(cs_sim *sim, uint32_t node, int byz);
int cs_sim_is_byzantine(const cs_sim *sim, uint32_t node);

/* Schedule the action 'id' at virtual time 't'.  Actions at the same time
 * run in the order they were scheduled, before any node event of that
 * time.  Callable before cs_sim_run and from an action. */
int cs_sim_at(cs_sim *sim, cs_time t, uint64_t id);

/* Run to the end: every node's start at t = 0, then events in virtual time
 * until 'until', until no event is left, or until every honest node made
 * its decisions (when stop_when_decided).  Blocks; spawns threads-1 worker
 * threads and joins them before returning.  CS_OK, CS_ESTOPPED when an
 * action or cs_sim_stop ended it, CS_ENOMEM. */
int cs_sim_run(cs_sim *sim, const cs_callbacks *cb);

/* Ask the run to stop at the next barrier.  Callable from any callback. */
void cs_sim_stop(cs_sim *sim);

/* ---- faults: before cs_sim_run or from an action (main thread) ---- */

/* Split the network: group[i] is node i's group; messages between groups
 * are dropped at send time.  NULL heals the partition.  CS_ENOMEM. */
int cs_sim_partition(cs_sim *sim, const uint32_t *group);
/* Drop every message from a node in 'from' to a node in 'to' (one way).
 * Cuts accumulate until cs_sim_heal.  CS_EINVAL for a bad id. */
int cs_sim_cut(cs_sim *sim, const uint32_t *from, size_t nfrom,
               const uint32_t *to, size_t nto);
/* End every partition and cut. */
void cs_sim_heal(cs_sim *sim);
/* Latency of the link from -> to, overriding the network's; NULL removes
 * the override.  The lookahead becomes the smallest floor of all models. */
int cs_sim_set_link(cs_sim *sim, uint32_t from, uint32_t to,
                    const cs_latency *lat);

/* Node faults, scheduled at virtual time 'at' (>= the current time); they
 * take effect at a barrier, before node events of that time. */
#define CS_CRASH_LOSE_UNSYNCED 1 /* passed to callbacks.crash */
int cs_sim_crash(cs_sim *sim, uint32_t node, cs_time at, int flags);
int cs_sim_restart(cs_sim *sim, uint32_t node, cs_time at);
/* Stall 'node' from 'at' for 'dur': events due meanwhile wait until the end
 * of the pause, then arrive in (src, seq) order. */
int cs_sim_pause(cs_sim *sim, uint32_t node, cs_time at, cs_time dur);
/* The node's clock: local = real + skew + drift * real.  Its timers run
 * on local time (a delay d fires after d / (1 + drift) real time).
 * drift > -1. */
int cs_sim_set_clock(cs_sim *sim, uint32_t node, cs_time skew, double drift);
int cs_sim_node_down(const cs_sim *sim, uint32_t node);

/* ---- calls a node callback makes about its own node 'node' ---- */

/* Send 'msg' from 'from' to 'to'.  The simulation takes its own references;
 * the caller keeps its own.  The network model may drop or duplicate it. */
int cs_sim_send(cs_sim *sim, uint32_t from, uint32_t to, cs_msg *msg);
/* Send 'msg' to every node, 'from' included when 'self' is nonzero. */
int cs_sim_broadcast(cs_sim *sim, uint32_t from, cs_msg *msg, int self);
/* Fire timer 'tag' of 'node' after 'delay' (>= 0); setting a tag that is
 * pending replaces it.  Tags are small integers chosen by the embedder. */
int cs_sim_set_timer(cs_sim *sim, uint32_t node, uint32_t tag, cs_time delay);
int cs_sim_cancel_timer(cs_sim *sim, uint32_t node, uint32_t tag);
/* Virtual time of the event the node is handling. */
cs_time cs_sim_now(const cs_sim *sim, uint32_t node);
/* The same on the node's own clock (see cs_sim_set_clock). */
cs_time cs_sim_local_now(const cs_sim *sim, uint32_t node);
/* The node's random stream. */
cs_rng *cs_sim_rng(cs_sim *sim, uint32_t node);
/* Record that 'node' proposed the value 'val' (opaque bytes the embedder
 * encodes canonically) for 'slot', or for any slot when 'any' is nonzero.
 * Proposals of honest nodes make decisions valid. */
int cs_sim_propose(cs_sim *sim, uint32_t node, int64_t slot, int any,
                   const void *val, size_t len);
/* Record that 'node' decided 'val' for 'slot'. */
int cs_sim_decide(cs_sim *sim, uint32_t node, int64_t slot, const void *val,
                  size_t len);
/* Record that 'node' claims 'key' (opaque canonical bytes), e.g. "leader
 * of term 4".  Two honest nodes claiming one key is a CS_V_UNIQUE
 * violation; a node may repeat its own claim. */
int cs_sim_claim(cs_sim *sim, uint32_t node, const void *key, size_t len);
/* Emit a record delivered to callbacks.output at the window barrier.
 * Kind CS_OUT_CORE is the core's own: "what\nmessage" when the core fails
 * a node (a zero-delay event loop). */
#define CS_OUT_CORE (-1)
int cs_sim_emit(cs_sim *sim, uint32_t node, int kind, const void *data,
                size_t len);

uint32_t cs_sim_nodes(const cs_sim *sim);
uint64_t cs_sim_seed(const cs_sim *sim);
int cs_sim_node_failed(const cs_sim *sim, uint32_t node);
/* Decisions 'node' made so far. */
uint32_t cs_sim_decided(const cs_sim *sim, uint32_t node);

/* ---- after the run ---- */

typedef struct cs_stats {
    uint64_t sent;      /* messages handed to the network */
    uint64_t delivered; /* messages handed to a receive callback */
    uint64_t dropped;   /* lost by the network model */
    uint64_t duplicated;
    uint64_t bytes;             /* payload bytes sent */
    uint64_t timers;            /* timer callbacks */
    uint64_t dropped_partition; /* of 'dropped': cut by a partition */
    uint64_t dropped_down;      /* of 'dropped': arrived at a crashed node */
    uint64_t dropped_overflow;  /* of 'dropped': arrived at a full inbox */
    uint64_t crashes, restarts;
    uint64_t windows; /* scheduler windows */
    cs_time end;      /* virtual time of the last event handled */
} cs_stats;

void cs_sim_stats(const cs_sim *sim, cs_stats *out);

/* ------------------------------------------------------------- checker */

enum cs_violation_kind {
    CS_V_AGREEMENT = 1, /* two honest nodes decided differently */
    CS_V_INTEGRITY,     /* one honest node changed its decision */
    CS_V_VALIDITY,      /* a decided value no honest node proposed */
    CS_V_TERMINATION,   /* an honest node did not decide enough slots */
    CS_V_UNIQUE         /* two honest nodes claimed the same thing (e.g.
                           leadership of one term) */
};

typedef struct cs_violation {
    int kind;
    int64_t slot;
    uint32_t node, other; /* other: node of the conflicting decision */
    cs_time at;
    const void *val; /* the offending value (owned by the sim) */
    size_t len;
    const void *other_val; /* the value it conflicts with, or NULL */
    size_t other_len;
} cs_violation;

/* Number of violations recorded (safety ones first as found, then
 * termination at the end of the run); at most CS_MAX_VIOLATIONS kept. */
#define CS_MAX_VIOLATIONS 32
size_t cs_sim_violations(const cs_sim *sim, const cs_violation **out);

typedef struct cs_decision {
    uint32_t node;
    int64_t slot;
    cs_time at;
    const void *val;
    size_t len;
} cs_decision;

/* All decisions of honest and Byzantine nodes, in (time, node, seq) order.
 * Valid until cs_sim_free. */
size_t cs_sim_decisions(const cs_sim *sim, const cs_decision **out);

/* The first proposal of each distinct (slot, value) by honest nodes, in
 * order; 'slot' is meaningless when 'any' is set.  Valid until
 * cs_sim_free. */
typedef struct cs_proposal {
    uint32_t node;
    int any;
    int64_t slot;
    cs_time at;
    const void *val;
    size_t len;
} cs_proposal;
size_t cs_sim_proposals(const cs_sim *sim, const cs_proposal **out);

#ifdef __cplusplus
}
#endif

#endif
