/*
 * runtime - the code inside an instance that serves invocations and implements shoal.h.
 *
 * One process serves one invocation at a time, on one thread, so the context is a single object
 * (shoal_rt_ctx) that lives for the life of the process. An invocation goes: INVOKE record on the
 * down ring -> the context is reset and pointed at the meta and input areas -> shoal_main ->
 * DONE record on the up ring (output in place in the output area) -> doorbell. An INVOKE flagged
 * SHOAL_INVOKE_GROUP first joins the group whose arena came on the control socket (group.c
 * implements the collectives over it) and leaves it once shoal_main returned. Everything handed
 * to the function (input, meta strings, shoal_call results, collective buffers) stays valid until
 * shoal_main returns; per-invocation heap memory is freed when the next invocation starts or the
 * process ends. An instance the worker leased to a caller serves that caller's direct calls from
 * a link until the lease ends (runtime/link.h).
 */
#ifndef SHOAL_RUNTIME_RUNTIME_H
#define SHOAL_RUNTIME_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "include/shoal.h"
#include "transport/channel.h"
#include "transport/coll.h"
#include "runtime/redis.h"
#include "runtime/net.h"

typedef int (*shoal_main_fn)(shoal_ctx *ctx);
typedef struct shoal_rt_links shoal_rt_links_t;

/* A message sent to oneself with shoal_send (rank 0 of a group of 1). */
typedef struct shoal_rt_selfmsg {
    struct shoal_rt_selfmsg *next;
    size_t len;
    uint8_t data[];
} shoal_rt_selfmsg_t;

struct shoal_ctx {
    shoal_channel_t *ch;
    int ctl_fd;
    uint64_t spin_idle_ns; /* spin before sleeping: waiting for the next invocation */
    uint64_t spin_call_ns; /* ... and waiting for a shoal_call's answer */
    uint64_t spin_link_ns; /* ... and leased, waiting for a direct call (runtime/link.h) */
    /* the invocation */
    uint64_t seq;
    const char *meta; /* key/value blob in the meta area */
    size_t meta_len;
    uint64_t input_len;
    uint32_t depth;
    /* the answer */
    uint64_t out_len, out_hw, too_large;
    int32_t status;
    char err[SHOAL_CHANNEL_ERR_MAX];
    uint32_t err_len;
    char hdrs[SHOAL_CHANNEL_HDRS_MAX];
    size_t hdrs_len;
    /* logs */
    uint64_t log_bytes;
    int log_capped;
    /* shoal_call */
    uint64_t call_bump, call_hw, call_seq;
    /* the group this invocation is a rank of (NULL outside a group): joined before shoal_main,
     * left after it returns */
    shoal_coll_t *coll;
    /* with ?transport=redis: the collectives go through Redis instead (NULL otherwise) */
    shoal_rt_redis_t *redis;
    /* a group spread over several nodes: the hierarchical engine over coll (NULL otherwise, and
     * always on one node, which keeps that path as it is) */
    shoal_rt_net_t *net;
    /* direct links (runtime/link.h): this invocation's to leased callees, and our own lease
     * when we are one; NULL until the worker first sends a LINK */
    struct shoal_rt_links *links;
    /* collectives at size 1 */
    shoal_rt_selfmsg_t *selfq_head, *selfq_tail;
    shoal_rt_selfmsg_t *selfq_done; /* received, kept until the invocation ends */
    /* scratch for down records */
    uint8_t rxbuf[SHOAL_CHANNEL_DOWN_CAP];
    char logbuf[SHOAL_CHANNEL_LOG_LINE_MAX + 1];
};
typedef struct shoal_ctx shoal_rt_ctx;

/* How long an idle instance spins on its ring before sleeping, and a caller on its result. The
 * environment variables SHOAL_SPIN_IDLE_NS and SHOAL_SPIN_CALL_NS (inherited from the worker)
 * override them, for tuning on a given machine. */
#define SHOAL_RT_SPIN_IDLE_NS 20000u
#define SHOAL_RT_SPIN_CALL_NS 50000u
/* With this many CPUs or fewer an idle instance does not spin: its spinning would take the CPU
 * from the worker and the instances that have work (measured on a 2-CPU machine). */
#define SHOAL_RT_SPIN_MIN_CPUS 2

/* Initialises ctx over an opened channel (instance side) and the control socket. */
void shoal_rt_init(shoal_rt_ctx *ctx, shoal_channel_t *ch, int ctl_fd);
/* Frees per-invocation memory (also done at the start of each invocation). */
void shoal_rt_reset(shoal_rt_ctx *ctx);
/* Runs one invocation described by inv with fn and sends its DONE. 0 or -errno (the channel is
 * broken: the process should exit). */
int shoal_rt_run(shoal_rt_ctx *ctx, shoal_main_fn fn, const shoal_msg_invoke_t *inv);
/* Serves invocations forever; returns only on a broken channel (-errno). */
int shoal_rt_serve(shoal_rt_ctx *ctx, shoal_main_fn fn);
/* shoal_call (group 0) and shoal_call_group (group = N >= 1): one CALL record, then waits for its
 * CALL_DONE. */
int shoal_rt_call(shoal_rt_ctx *ctx, const char *function, uint32_t group, const void *in,
                  size_t len, shoal_buf *out);

#endif
