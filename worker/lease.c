/*
 * lease - see lease.h for the rules. The worker never trusts the link's contents: it reads only
 * the two futex words (and B's start stamp, bounded) to time direct calls, and writes only the
 * closed word and the verdict.
 */
#include "worker/lease.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/trace.h"
#include "common/util.h"
#include "transport/link.h"
#include "worker/proc.h"

/* The tick that checks direct calls' timeouts (worker.c's TICK_MS): a stamp from the callee is
 * believed only this far before the worker first saw the request pending. */
#define STAMP_SLACK_NS (200ull * 1000000ull)

struct shoal_lease {
    shoal_lease_t *next;
    shoal_worker_t *w;
    uint64_t id;
    uint64_t caller_uid;
    shoal_inst_t *callee;
    shoal_link_t *link;
    int unlinking; /* UNLINK sent, waiting for UNLINKED */
    uint64_t unlink_ns;
    /* the direct call the worker saw pending, for the timeout */
    int pending;
    uint32_t pend_req;
    uint64_t pend_since_ns;
};

static uint64_t next_id;

static void lease_free(shoal_lease_t *ls)
{
    shoal_worker_t *w = ls->w;
    shoal_lease_t **pp;

    for (pp = &w->leases; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == ls) {
            *pp = ls->next;
            break;
        }
    }
    if (ls->callee != NULL && ls->callee->lease == ls)
        ls->callee->lease = NULL;
    shoal_link_destroy(ls->link);
    free(ls);
}

static int send_link(shoal_inst_t *inst, shoal_lease_t *ls, uint32_t role, const char *fn)
{
    const shoal_link_layout_t *lay = shoal_link_get_layout(ls->link);
    shoal_ctl_link_t c = {.magic = SHOAL_CTL_MAGIC, .type = SHOAL_CTL_LINK, .id = ls->id};
    shoal_msg_link_t m;
    struct iovec iov[2];
    int fd = shoal_link_fd(ls->link), err;

    memset(&m, 0, sizeof(m));
    m.id = ls->id;
    m.role = role;
    m.depth = inst->inv.depth;
    m.seq = inst->seq;
    m.in_cap = lay->in_cap;
    m.out_cap = lay->out_cap;
    m.size = lay->size;
    m.meta_len = role == SHOAL_LINK_CALLEE ? inst->inv.meta_len : 0;
    m.name_len = (uint32_t)strlen(fn);
    /* The fd first: the instance reads it when it takes the record. */
    if ((err = shoal_proc_send_fds(inst->ctl_fd, &c, sizeof(c), &fd, 1)) < 0)
        return err;
    iov[0] = (struct iovec){&m, sizeof(m)};
    iov[1] = (struct iovec){(void *)fn, m.name_len};
    if ((err = shoal_channel_send(&inst->ch, SHOAL_MSG_LINK, iov, 2)) < 0)
        return -EPIPE; /* the control message is out: the channel is out of step now */
    shoal_channel_wake_instance(&inst->ch);
    return 0;
}

int shoal_lease_offer(shoal_worker_t *w, shoal_inst_t *caller, shoal_inst_t *callee)
{
    shoal_pool_t *pool = callee->pe.pool;
    shoal_lease_t *ls;
    unsigned mine = 0;
    int err;

    if (w->stopping || callee->phase != SHOAL_PH_READY || pool == NULL || !pool->current ||
        caller->phase != SHOAL_PH_READY || !caller->inv.running || !caller->calling ||
        callee->lease != NULL)
        return 0;
    for (ls = w->leases; ls != NULL; ls = ls->next) {
        if (ls->caller_uid != caller->uid)
            continue;
        mine++;
        if (!ls->unlinking && ls->callee != NULL &&
            strcmp(ls->callee->fn.name, callee->fn.name) == 0)
            return 0;
    }
    if (mine >= SHOAL_LEASE_PER_CALLER)
        return 0;
    /* Leasing must not starve invocations: only a pool that can spare the instance. */
    if (shoal_pool_first_idle(pool) == NULL && !shoal_pool_can_grow(&w->pools, pool))
        return 0;
    if ((ls = calloc(1, sizeof(*ls))) == NULL)
        return 0;
    ls->w = w;
    ls->id = ++next_id;
    ls->caller_uid = caller->uid;
    ls->callee = callee;
    if ((err = shoal_link_create(&ls->link, SHOAL_LINK_IN_CAP, callee->ch.lay.body_max)) < 0) {
        SHOAL_DEBUG("no direct link %s -> %s: %s", caller->fn.name, callee->fn.name,
                    strerror(-err));
        free(ls);
        return 0;
    }
    ls->next = w->leases;
    w->leases = ls;
    callee->lease = ls;
    callee->inv.kind = SHOAL_INV_LINK;
    callee->inv.running = 1;
    if ((err = send_link(callee, ls, SHOAL_LINK_CALLEE, callee->fn.name)) < 0) {
        callee->inv.kind = SHOAL_INV_LOCAL;
        callee->inv.running = 0;
        lease_free(ls);
        if (err == -EPIPE) {
            /* Its answer is already in hand: the caller must not hear of this kill. */
            memset(&callee->inv, 0, sizeof(callee->inv));
            shoal_inst_kill(callee);
            return 1; /* gone: the caller of this function must not finish it */
        }
        return 0;
    }
    if (send_link(caller, ls, SHOAL_LINK_CALLER, callee->fn.name) < 0) {
        /* The caller cannot use it (its channel trouble shows elsewhere): take B back. */
        shoal_lease_revoke(callee);
        return 1;
    }
    SHOAL_DEBUG("lease %llu: %s (pid %d) -> %s (pid %d)", (unsigned long long)ls->id,
                caller->fn.name, (int)caller->pid, callee->fn.name, (int)callee->pid);
    shoal_worker_changed(w);
    return 1;
}

/* Asks the callee to let go; it stays busy until its UNLINKED. */
static void end_graceful(shoal_lease_t *ls)
{
    shoal_msg_unlink_t u = {.id = ls->id};
    struct iovec iov = {&u, sizeof(u)};
    shoal_inst_t *callee = ls->callee;

    if (ls->unlinking)
        return;
    if (callee == NULL || callee->phase == SHOAL_PH_DEAD || ls->w->stopping) {
        shoal_link_close(ls->link, -EIO, "instance retired", 16);
        lease_free(ls);
        return;
    }
    ls->unlinking = 1;
    ls->unlink_ns = shoal_util_now_ns();
    if (shoal_channel_send(&callee->ch, SHOAL_MSG_UNLINK, &iov, 1) < 0) {
        shoal_inst_fail(callee, "internal", "instance channel broken");
        shoal_inst_kill(callee);
        return;
    }
    shoal_channel_wake_instance(&callee->ch);
}

void shoal_lease_caller_ended(shoal_inst_t *caller)
{
    shoal_lease_t *ls;

    /* From the head each time: ending one may kill a callee and free other leases. Each round
     * either frees a lease or marks it unlinking, so this ends. */
    for (;;) {
        for (ls = caller->w->leases; ls != NULL; ls = ls->next)
            if (ls->caller_uid == caller->uid && !ls->unlinking)
                break;
        if (ls == NULL)
            return;
        end_graceful(ls);
    }
}

void shoal_lease_revoke(shoal_inst_t *callee)
{
    if (callee->lease != NULL)
        end_graceful(callee->lease);
}

void shoal_lease_callee_failed(shoal_inst_t *callee, const char *kind, const char *msg, size_t len)
{
    shoal_lease_t *ls = callee->lease;

    if (ls == NULL)
        return;
    SHOAL_DEBUG("lease %llu ends: callee %s", (unsigned long long)ls->id, kind);
    shoal_link_close(ls->link, shoal_kind_errno(kind), msg, len);
    lease_free(ls);
}

void shoal_lease_unlinked(shoal_inst_t *callee, const shoal_msg_unlink_t *u)
{
    shoal_lease_t *ls = callee->lease;
    static const char bad[] = "the direct call broke the protocol";
    int violation = (u->flags & SHOAL_UNLINKED_VIOLATION) != 0;

    /* A late answer to a lease that already ended some other way. */
    if (ls == NULL || u->id != ls->id)
        return;
    SHOAL_DEBUG("lease %llu ended%s", (unsigned long long)ls->id,
                violation ? ": the caller broke the protocol" : "");
    /* B will not touch the link again: now A may learn whether its last request ran. */
    shoal_link_close(ls->link, violation ? -EPROTO : 0, violation ? bad : NULL,
                     violation ? sizeof(bad) - 1 : 0);
    lease_free(ls);
    /* The callee's own leases (made while it served direct calls) end with its lease. */
    shoal_lease_caller_ended(callee);
    memset(&callee->inv, 0, sizeof(callee->inv));
    /* Direct calls' outputs went through its output area without the worker seeing their size:
     * punch all of it (cheap where it is a hole already). */
    callee->out_hw = callee->ch.lay.out_cap;
    shoal_inst_finish(callee);
}

int shoal_lease_reclaim(shoal_worker_t *w, shoal_pool_t *pool)
{
    shoal_lease_t *ls, *any = NULL;

    for (ls = w->leases; ls != NULL; ls = ls->next) {
        if (ls->unlinking || ls->callee == NULL)
            continue;
        if (ls->callee->pe.pool == pool) {
            end_graceful(ls);
            return 1;
        }
        if (any == NULL)
            any = ls;
    }
    /* The node is full (not only the pool): any instance given back makes room. */
    if (any != NULL && pool != NULL && shoal_pool_size(pool) < pool->fn.max_instances) {
        end_graceful(any);
        return 1;
    }
    return 0;
}

void shoal_lease_pool_taken(shoal_worker_t *w, shoal_pool_t *pool)
{
    if (w->leases != NULL && shoal_pool_first_idle(pool) == NULL &&
        !shoal_pool_can_grow(&w->pools, pool))
        shoal_lease_reclaim(w, pool);
}

void shoal_lease_tick(shoal_worker_t *w)
{
    uint64_t now = shoal_util_now_ns(), start;
    shoal_lease_t *ls;
    uint32_t req;

again:
    for (ls = w->leases; ls != NULL; ls = ls->next) {
        shoal_inst_t *callee = ls->callee;
        if (callee == NULL || callee->phase != SHOAL_PH_READY)
            continue;
        /* A callee that never lets go would hold its slot for good: it has as long as its
         * timeout (at least a second) to answer UNLINK once no direct call is pending. */
        if (ls->unlinking && !shoal_link_pending(ls->link, &req, &start) &&
            now - ls->unlink_ns >=
                (uint64_t)(callee->fn.timeout_ms > 1000 ? callee->fn.timeout_ms : 1000) *
                    1000000ull) {
            shoal_inst_fail(callee, "internal", "instance did not end its lease");
            shoal_inst_kill(callee);
            shoal_worker_replenish(w);
            goto again;
        }
        if (!shoal_link_pending(ls->link, &req, &start)) {
            ls->pending = 0;
            continue;
        }
        if (!ls->pending || ls->pend_req != req) {
            ls->pending = 1;
            ls->pend_req = req;
            ls->pend_since_ns = now;
            /* The callee's own stamp is more precise, but believed only within a tick or two. */
            if (start < now && start + STAMP_SLACK_NS > now)
                ls->pend_since_ns = start;
            continue;
        }
        if (now - ls->pend_since_ns >= (uint64_t)callee->fn.timeout_ms * 1000000ull) {
            shoal_inst_fail(callee, "timeout", "function exceeded its timeout of %u ms",
                            callee->fn.timeout_ms);
            shoal_inst_kill(callee);
            shoal_worker_replenish(w);
            goto again; /* the list changed */
        }
    }
}

void shoal_lease_inst_gone(shoal_inst_t *inst)
{
    if (inst->lease != NULL) {
        shoal_link_close(inst->lease->link, -EIO, "instance retired", 16);
        lease_free(inst->lease);
    }
    shoal_lease_caller_ended(inst);
}

unsigned shoal_lease_count(const shoal_worker_t *w)
{
    const shoal_lease_t *ls;
    unsigned n = 0;

    for (ls = w->leases; ls != NULL; ls = ls->next)
        n++;
    return n;
}
