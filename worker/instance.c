/*
 * instance - one sandboxed process and its channel, seen from the worker. See worker.h for the
 * life cycle.
 *
 * Everything read from the channel or the control socket comes from untrusted code: records are
 * copied out of the ring and decoded by shoal_channel_decode_up before use, every offset is bound
 * by the worker's own copy of the layout, and any inconsistency kills the instance (never the
 * worker).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/trace.h"
#include "common/util.h"
#include "runtime/sandbox.h"
#include "worker/cgroup.h"
#include "worker/group.h"
#include "worker/lease.h"
#include "worker/proc.h"
#include "worker/worker.h"
#include "transport/invmeta.h"

/* Touched ranges larger than this are punched out of the memfd after an invocation. */
#define PUNCH_MIN (1u << 20)
/* Up-ring records handled per wake-up before yielding to the rest of the loop. */
#define DRAIN_BATCH 256
#define CALL_DEPTH_MAX 32

static void on_ctl(uv_poll_t *h, int status, int events);
static void on_timeout(uv_timer_t *t);
static const char *task_note(shoal_inst_t *inst);

static void on_handle_closed(uv_handle_t *h)
{
    shoal_inst_t *inst = h->data;

    if (--inst->handles_open > 0)
        return;
    shoal_cgroup_remove(inst->w->cg, inst->uid);
    shoal_channel_close(&inst->ch);
    if (inst->ctl_fd >= 0)
        close(inst->ctl_fd);
    if (inst->stem_ctl_fd >= 0)
        close(inst->stem_ctl_fd);
    shoal_strbuf_free(&inst->rmeta);
    free(inst);
}

shoal_inst_t *shoal_inst_create(shoal_worker_t *w)
{
    shoal_inst_t *inst = calloc(1, sizeof(*inst));
    int sv[2], err;

    if (inst == NULL)
        return NULL;
    inst->w = w;
    inst->ctl_fd = inst->stem_ctl_fd = -1;
    if ((err = shoal_channel_create(&inst->ch, w->body_max)) < 0) {
        SHOAL_ERROR("cannot create a channel: %s", strerror(-err));
        free(inst);
        return NULL;
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        SHOAL_ERROR("socketpair: %s", strerror(errno));
        shoal_channel_close(&inst->ch);
        free(inst);
        return NULL;
    }
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    inst->ctl_fd = sv[0];
    inst->stem_ctl_fd = sv[1];
    inst->uid = ++w->next_uid;
    /* Its cgroups exist before its stem does: the zygote puts the stem in them. */
    if (w->cg != NULL && (err = shoal_cgroup_create(w->cg, inst->uid)) < 0) {
        SHOAL_ERROR("cannot create the cgroups of an instance: %s", strerror(-err));
        close(sv[0]);
        close(sv[1]);
        shoal_channel_close(&inst->ch);
        free(inst);
        return NULL;
    }
    inst->phase = SHOAL_PH_STEM;
    shoal_channel_arm(&inst->ch);
    uv_timer_init(&w->loop, &inst->timer);
    inst->timer.data = inst;
    inst->handles_open = 1;
    if ((err = uv_poll_init(&w->loop, &inst->poll, inst->ctl_fd)) < 0) {
        SHOAL_ERROR("uv_poll_init: %s", uv_strerror(err));
        inst->freeing = 1;
        uv_close((uv_handle_t *)&inst->timer, on_handle_closed);
        return NULL;
    }
    inst->poll.data = inst;
    inst->handles_open = 2;
    uv_poll_start(&inst->poll, UV_READABLE, on_ctl);
    inst->next = w->insts;
    if (w->insts != NULL)
        w->insts->prev = inst;
    w->insts = inst;
    shoal_worker_send_fork(w);
    return inst;
}

shoal_inst_t *shoal_inst_by_uid(shoal_worker_t *w, uint64_t uid)
{
    shoal_inst_t *inst;

    for (inst = w->insts; inst != NULL; inst = inst->next)
        if (inst->uid == uid)
            return inst->phase == SHOAL_PH_DEAD ? NULL : inst;
    return NULL;
}

void shoal_inst_maybe_free(shoal_inst_t *inst)
{
    shoal_worker_t *w = inst->w;

    if (inst->phase != SHOAL_PH_DEAD || inst->writes > 0 || inst->freeing)
        return;
    /* Keep the record (and so the pid) until the process is reaped, unless we are leaving. */
    if (!inst->reaped && !w->stopping)
        return;
    if (inst->prev != NULL)
        inst->prev->next = inst->next;
    else
        w->insts = inst->next;
    if (inst->next != NULL)
        inst->next->prev = inst->prev;
    inst->prev = inst->next = NULL;
    inst->freeing = 1;
    uv_close((uv_handle_t *)&inst->poll, on_handle_closed);
    uv_close((uv_handle_t *)&inst->timer, on_handle_closed);
}

void shoal_inst_fail(shoal_inst_t *inst, const char *kind, const char *fmt, ...)
{
    shoal_worker_t *w = inst->w;
    char msg[1024];
    va_list ap;
    size_t n;

    if (inst->inv.kind == SHOAL_INV_NONE)
        return;
    va_start(ap, fmt);
    n = shoal_util_vfmt(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    uv_timer_stop(&inst->timer);
    /* Its invocation is over: so are the leases it holds as a caller (lease.h). */
    shoal_lease_caller_ended(inst);
    if (inst->inv.kind == SHOAL_INV_LINK) {
        shoal_lease_callee_failed(inst, kind, msg, n);
    } else if (inst->inv.kind == SHOAL_INV_GROUP) {
        shoal_group_rank_failed(inst, kind, msg, n);
    } else if (inst->inv.kind == SHOAL_INV_REMOTE) {
        if (w->conn != NULL && w->conn->up && inst->inv.conn_gen == w->conn_gen)
            shoal_worker_send_result(w, inst, 0, kind, msg, n, 0, NULL, 0, 0);
    } else {
        shoal_inst_t *caller = shoal_inst_by_uid(w, inst->inv.caller_uid);
        if (caller != NULL && caller->calling && caller->call_seq == inst->inv.caller_seq)
            shoal_inst_call_done(caller, shoal_kind_errno(kind), msg, n, 0);
    }
    memset(&inst->inv, 0, sizeof(inst->inv));
}

void shoal_inst_kill(shoal_inst_t *inst)
{
    shoal_worker_t *w = inst->w;

    if (inst->phase == SHOAL_PH_DEAD)
        return;
    shoal_inst_fail(inst, "internal", "instance retired");
    shoal_lease_inst_gone(inst);
    inst->phase = SHOAL_PH_DEAD;
    inst->calling = 0;
    inst->waiting_artifact = 0;
    shoal_pool_remove(&w->pools, &inst->pe);
    uv_timer_stop(&inst->timer);
    uv_poll_stop(&inst->poll);
    if (w->rx_inst == inst) {
        shoal_wire_drop_dst(w->rd);
        w->rx_inst = NULL;
    }
    if (w->rx_caller == inst) {
        shoal_wire_drop_dst(w->rd);
        w->rx_caller = NULL;
    }
    if (inst->fork_state == 0) {
        inst->reaped = 1; /* never asked for: no process will exist */
    } else if (inst->pid > 0 && !inst->reaped) {
        kill(inst->pid, SIGKILL);
    } else if (inst->pid == 0) {
        inst->kill_pending = 1; /* killed when the zygote tells us its pid */
    }
    shoal_worker_changed(w);
    shoal_inst_maybe_free(inst);
}

void shoal_inst_exited(shoal_inst_t *inst, int status)
{
    char how[96];

    inst->reaped = 1;
    if (inst->phase != SHOAL_PH_DEAD) {
        shoal_proc_describe_exit(status, how, sizeof(how));
        /* A SIGKILL nobody here sent: the kernel's OOM killer, if the memory cgroup counted it. */
        int oom = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && inst->w->cg != NULL &&
                  shoal_cgroup_oom_kills(inst->w->cg, inst->uid) > 0;
        if (oom)
            snprintf(how, sizeof(how), "ran out of memory: it exceeded its limit of %u MB",
                     inst->fn.memory_mb);
        if (inst->inv.kind != SHOAL_INV_NONE)
            shoal_inst_fail(inst, "crash", "function %s%s%s", oom ? "" : "crashed: ", how,
                            oom ? "" : task_note(inst));
        else if (inst->pe.pool != NULL)
            SHOAL_WARN("instance of %s v%llu (pid %d) %s", inst->fn.name,
                       (unsigned long long)inst->fn.version, (int)inst->pid, how);
        else
            SHOAL_WARN("stem (pid %d) %s", (int)inst->pid, how);
        shoal_inst_kill(inst);
    }
    shoal_inst_maybe_free(inst);
}

void shoal_inst_assign(shoal_inst_t *inst, shoal_pool_t *pool, shoal_entry_state state)
{
    shoal_worker_t *w = inst->w;
    shoal_artifact_t *a;

    shoal_pool_add(&w->pools, pool, &inst->pe, state);
    inst->fn = pool->fn;
    if ((a = shoal_worker_artifact(w, pool->fn.sha256)) == NULL) {
        shoal_inst_fail(inst, "internal", "out of memory");
        shoal_inst_kill(inst);
        return;
    }
    if (a->state == SHOAL_ART_READY)
        shoal_inst_specialize(inst);
    else
        inst->waiting_artifact = 1;
    shoal_worker_changed(w);
}

void shoal_inst_specialize(shoal_inst_t *inst)
{
    shoal_worker_t *w = inst->w;
    shoal_ctl_specialize_t msg;
    char path[PATH_MAX + 96];
    struct stat st;
    int fd, err;

    inst->waiting_artifact = 0;
    /* The function's memory limit, in place before its code is loaded. */
    if (w->cg != NULL && (err = shoal_cgroup_set_memory(
                              w->cg, inst->uid, shoal_cgroup_memory_for(inst->fn.memory_mb))) < 0)
        goto fail;
    snprintf(path, sizeof(path), "%s/%s.so", w->artdir, inst->fn.sha256);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        err = -errno;
        goto fail;
    }
    /* The stem reopens it through /proc/self/fd as its own unprivileged uid. */
    if (fstat(fd, &st) == 0 && (st.st_mode & 0444) != 0444)
        fchmod(fd, st.st_mode | 0444);
    memset(&msg, 0, sizeof(msg));
    msg.magic = SHOAL_CTL_MAGIC;
    msg.type = SHOAL_CTL_SPECIALIZE;
    msg.version = inst->fn.version;
    msg.memory_mb = inst->fn.memory_mb;
    msg.timeout_ms = inst->fn.timeout_ms;
    snprintf(msg.name, sizeof(msg.name), "%s", inst->fn.name);
    err = shoal_proc_send_fds(inst->ctl_fd, &msg, sizeof(msg), &fd, 1);
    close(fd);
    if (err < 0)
        goto fail;
    inst->phase = SHOAL_PH_SPECIALIZING;
    return;
fail:
    SHOAL_ERROR("cannot specialise an instance of %s: %s", inst->fn.name, strerror(-err));
    shoal_inst_fail(inst, "internal", "cannot load function %s: %s", inst->fn.name, strerror(-err));
    shoal_inst_kill(inst);
}

void shoal_inst_run(shoal_inst_t *inst)
{
    shoal_msg_invoke_t m;
    struct iovec iov = {&m, sizeof(m)};
    int err;

    memset(&m, 0, sizeof(m));
    m.seq = ++inst->seq;
    m.input_len = inst->inv.input_len;
    m.meta_len = inst->inv.meta_len;
    m.depth = inst->inv.depth;
    m.timeout_ms = inst->inv.fn_timeout_ms;
    /* A rank gets its group's arena on the control socket before the record that uses it. */
    if (inst->inv.kind == SHOAL_INV_GROUP) {
        m.flags |= SHOAL_INVOKE_GROUP;
        if ((err = shoal_group_start_rank(inst, m.seq)) < 0) {
            shoal_inst_fail(inst, "internal", "cannot pass the group to the instance: %s",
                            strerror(-err));
            shoal_inst_kill(inst);
            return;
        }
    }
    if ((err = shoal_channel_send(&inst->ch, SHOAL_MSG_INVOKE, &iov, 1)) < 0) {
        shoal_inst_fail(inst, "internal", "instance channel broken: %s", strerror(-err));
        shoal_inst_kill(inst);
        return;
    }
    inst->inv.running = 1;
    if (inst->inv.input_len > inst->in_hw)
        inst->in_hw = inst->inv.input_len;
    shoal_channel_wake_instance(&inst->ch);
}

static void punch(shoal_inst_t *inst, uint64_t off, uint64_t *hw)
{
    if (*hw >= PUNCH_MIN)
        shoal_channel_punch(&inst->ch, off,
                            (*hw + SHOAL_CHANNEL_PAGE - 1) & ~(uint64_t)(SHOAL_CHANNEL_PAGE - 1));
    *hw = 0;
}

void shoal_inst_finish(shoal_inst_t *inst)
{
    shoal_worker_t *w = inst->w;

    uv_timer_stop(&inst->timer);
    memset(&inst->inv, 0, sizeof(inst->inv));
    if (inst->phase == SHOAL_PH_DEAD) {
        shoal_inst_maybe_free(inst);
        return;
    }
    /* Idle instances should not pin the memory of their largest invocation. */
    punch(inst, inst->ch.lay.in_off, &inst->in_hw);
    punch(inst, inst->ch.lay.out_off, &inst->out_hw);
    punch(inst, inst->ch.lay.call_off, &inst->call_hw);
    if (inst->pe.pool == NULL || !inst->pe.pool->current) {
        shoal_inst_kill(inst);
        shoal_worker_replenish(w);
        return;
    }
    shoal_pool_set_state(&w->pools, &inst->pe, SHOAL_ENTRY_IDLE, shoal_util_now_ms());
    shoal_worker_changed(w);
}

void shoal_inst_abandon(shoal_inst_t *inst)
{
    shoal_worker_t *w = inst->w;

    if (inst->inv.kind != SHOAL_INV_REMOTE || inst->inv.running)
        return;
    uv_timer_stop(&inst->timer);
    memset(&inst->inv, 0, sizeof(inst->inv));
    if (inst->phase == SHOAL_PH_READY)
        shoal_inst_finish(inst);
    (void)w;
}

void shoal_inst_call_done(shoal_inst_t *caller, int err, const char *msg, size_t msg_len,
                          uint64_t out_len)
{
    shoal_msg_call_done_t d;
    struct iovec iov[2];
    int r;

    if (!caller->calling)
        return;
    if (msg_len > SHOAL_CHANNEL_ERR_MAX)
        msg_len = SHOAL_CHANNEL_ERR_MAX;
    memset(&d, 0, sizeof(d));
    d.seq = caller->call_seq;
    d.err = err;
    d.err_len = (uint32_t)msg_len;
    d.out_off = caller->call_out_off;
    d.out_len = out_len;
    if (out_len > 0 && caller->call_out_off + out_len > caller->call_hw)
        caller->call_hw = caller->call_out_off + out_len;
    iov[0] = (struct iovec){&d, sizeof(d)};
    iov[1] = (struct iovec){(void *)msg, msg_len};
    caller->calling = 0;
    caller->call_frame_id = 0;
    if ((r = shoal_channel_send(&caller->ch, SHOAL_MSG_CALL_DONE, iov, 2)) < 0) {
        shoal_inst_fail(caller, "internal", "instance channel broken: %s", strerror(-r));
        shoal_inst_kill(caller);
        return;
    }
    shoal_channel_wake_instance(&caller->ch);
}

/* Appends one request meta entry to the channel's meta area; entries naming what the worker sets
 * itself, too long, or holding a NUL are dropped. Header names are case-insensitive: the function
 * sees them in lower case. -ENOSPC when the area is full. */
static int meta_entry(char *blob, size_t cap, size_t *len, const char *k, size_t klen,
                      const char *v, size_t vlen)
{
    char key[300];
    size_t i;

    if (klen >= sizeof(key) || (klen == 13 && memcmp(k, "invocation_id", 13) == 0) ||
        (klen == 8 && memcmp(k, "function", 8) == 0))
        return 0;
    for (i = 0; i < klen; i++)
        key[i] = (i >= 7 && k[i] >= 'A' && k[i] <= 'Z') ? (char)(k[i] - 'A' + 'a') : k[i];
    return shoal_kv_append(blob, cap, len, key, klen, v, vlen) == -ENOSPC ? -ENOSPC : 0;
}

static int meta_finish(shoal_inst_t *inst, size_t len, const char *function);

int shoal_inst_build_meta_kv(shoal_inst_t *inst, const uint8_t *kv, size_t kv_len,
                             const char *function)
{
    size_t len = 0, off = 0;
    shoal_invmeta_kv_t e;
    int err;

    while (shoal_invmeta_kv_next(kv, kv_len, &off, &e) == 1)
        if ((err = meta_entry((char *)inst->ch.meta, inst->ch.lay.meta_cap, &len, e.key, e.key_len,
                              e.val, e.val_len)) < 0)
            return err;
    return meta_finish(inst, len, function);
}

int shoal_inst_build_meta(shoal_inst_t *inst, const json_t *meta, const char *function)
{
    size_t len = 0;
    const char *k;
    json_t *v;
    int err;

    if (json_is_object(meta)) {
        json_object_foreach((json_t *)meta, k, v)
        {
            if (!json_is_string(v))
                continue;
            if ((err = meta_entry((char *)inst->ch.meta, inst->ch.lay.meta_cap, &len, k, strlen(k),
                                  json_string_value(v), json_string_length(v))) < 0)
                return err;
        }
    }
    return meta_finish(inst, len, function);
}

/* Adds what the worker itself tells every invocation. */
static int meta_finish(shoal_inst_t *inst, size_t len, const char *function)
{
    char *blob = (char *)inst->ch.meta;
    size_t cap = inst->ch.lay.meta_cap;
    int err;

    if ((err = shoal_kv_append(blob, cap, &len, "invocation_id", 13, inst->inv.invocation_id,
                               strlen(inst->inv.invocation_id))) < 0 ||
        (err = shoal_kv_append(blob, cap, &len, "function", 8, function, strlen(function))) < 0)
        return err;
    inst->inv.meta_len = (uint32_t)len;
    return 0;
}

/* ---- what the instance sends ---- */

static void violation(shoal_inst_t *inst, const char *what)
{
    SHOAL_WARN("killing instance of %s (pid %d): %s", inst->fn.name, (int)inst->pid, what);
    shoal_inst_fail(inst, "crash", "function crashed: it broke the channel protocol (%s)", what);
    shoal_inst_kill(inst);
}

/* ", and it reached its limit of N tasks" when the pids cgroup refused forks: how a fork bomb
 * shows in its error. */
static const char *task_note(shoal_inst_t *inst)
{
    static char note[96];

    if (inst->w->cg == NULL || shoal_cgroup_task_limit_hits(inst->w->cg, inst->uid) <= 0)
        return "";
    snprintf(note, sizeof(note), " (it reached its limit of %u tasks)",
             inst->w->cfg.tasks ? inst->w->cfg.tasks : SHOAL_SANDBOX_TASKS);
    return note;
}

/* The stem reported a fatal signal (runtime/sandbox.h: as PID 1 of its namespace it cannot die
 * of one it raised itself): fail as a crash by that signal and kill it. */
static void on_fatal(shoal_inst_t *inst, int sig)
{
    char name[32];

    if (sig <= 0 || sig >= 65) {
        violation(inst, "bad FATAL message");
        return;
    }
    shoal_proc_signame(sig, name, sizeof(name));
    if (inst->inv.kind != SHOAL_INV_NONE)
        shoal_inst_fail(inst, "crash", "function crashed: killed by signal %d (%s)%s", sig, name,
                        task_note(inst));
    else
        SHOAL_WARN("instance of %s (pid %d) killed by signal %d (%s)",
                   inst->pe.pool != NULL ? inst->fn.name : "(stem)", (int)inst->pid, sig, name);
    shoal_inst_kill(inst);
    shoal_worker_replenish(inst->w);
}

static void on_ready(shoal_inst_t *inst, int err, const char *text, size_t len)
{
    shoal_worker_t *w = inst->w;

    if (inst->phase != SHOAL_PH_SPECIALIZING) {
        violation(inst, "unexpected READY");
        return;
    }
    if (err != 0) {
        SHOAL_WARN("cannot load %s v%llu: %.*s", inst->fn.name,
                   (unsigned long long)inst->fn.version, (int)len, text);
        shoal_inst_fail(inst, "function", "cannot load function: %.*s", (int)len, text);
        if (inst->pe.pool != NULL)
            inst->pe.pool->failures++;
        shoal_inst_kill(inst);
        return;
    }
    inst->phase = SHOAL_PH_READY;
    if (inst->inv.kind != SHOAL_INV_NONE) {
        if (inst->inv.input_ready)
            shoal_inst_run(inst);
    } else {
        shoal_inst_finish(inst);
    }
    shoal_worker_changed(w);
}

static void on_timeout(uv_timer_t *t)
{
    shoal_inst_t *inst = t->data;

    shoal_inst_fail(inst, "timeout", "function exceeded its timeout of %u ms%s",
                    inst->inv.fn_timeout_ms, task_note(inst));
    shoal_inst_kill(inst);
    shoal_worker_replenish(inst->w);
}

static void handle_done(shoal_inst_t *inst, const shoal_up_msg_t *m)
{
    shoal_worker_t *w = inst->w;
    const shoal_msg_done_t *d = &m->u.done.m;
    char msg[SHOAL_CHANNEL_ERR_MAX + 64];
    const char *kind = NULL;
    size_t mlen = 0;
    int ok = 0;

    if (!inst->inv.running || d->seq != inst->seq || inst->inv.kind == SHOAL_INV_LINK) {
        violation(inst, "DONE for no running invocation");
        return;
    }
    uv_timer_stop(&inst->timer);
    inst->inv.running = 0;
    shoal_lease_caller_ended(inst);
    if (d->out_hw > inst->out_hw)
        inst->out_hw = d->out_hw;
    if (d->call_hw > inst->call_hw)
        inst->call_hw = d->call_hw;
    if (d->flags & SHOAL_DONE_TOO_LARGE) {
        kind = "too_large";
        mlen = (size_t)snprintf(
            msg, sizeof(msg), "output of %llu bytes exceeds the limit of %llu bytes",
            (unsigned long long)d->out_len, (unsigned long long)inst->ch.lay.out_cap);
    } else if (d->flags & SHOAL_DONE_NO_GROUP) {
        kind = "internal";
        mlen = d->err_len;
        memcpy(msg, m->u.done.err, mlen);
    } else if (d->rc != 0) {
        kind = "function";
        if (d->err_len > 0) {
            mlen = d->err_len;
            memcpy(msg, m->u.done.err, mlen);
        } else {
            mlen = (size_t)snprintf(msg, sizeof(msg), "function returned %d", d->rc);
        }
    } else {
        ok = 1;
        if (d->out_len > inst->out_hw)
            inst->out_hw = d->out_len;
    }
    if (inst->inv.kind == SHOAL_INV_GROUP) {
        shoal_group_rank_done(inst, ok, kind, msg, mlen, d->status, m->u.done.hdrs, d->hdr_len,
                              d->out_len);
        return;
    }
    if (inst->inv.kind == SHOAL_INV_REMOTE) {
        if (ok && w->conn != NULL && w->conn->up && inst->inv.conn_gen == w->conn_gen &&
            shoal_worker_send_result(w, inst, ok, kind, msg, mlen, d->status, m->u.done.hdrs,
                                     d->hdr_len, d->out_len) == 0) {
            /* Answered: a crash from now on has no invocation to fail. The instance stays busy
             * (its output area is being sent) until shoal_inst_finish runs from the write's
             * callback. */
            inst->result_writing = 1;
            inst->inv.kind = SHOAL_INV_NONE;
            return;
        }
        if (!ok && w->conn != NULL && w->conn->up && inst->inv.conn_gen == w->conn_gen)
            shoal_worker_send_result(w, inst, 0, kind, msg, mlen, 0, NULL, 0, 0);
    } else {
        shoal_inst_t *caller = shoal_inst_by_uid(w, inst->inv.caller_uid);
        int leased = 0, cerr = 0;
        uint64_t clen = 0;
        if (caller != NULL && caller->calling && caller->call_seq == inst->inv.caller_seq) {
            if (!ok) {
                cerr = shoal_kind_errno(kind);
            } else if (d->out_len > inst->inv.caller_out_cap) {
                mlen = (size_t)snprintf(msg, sizeof(msg), "output of %s too large for the caller",
                                        inst->fn.name);
                cerr = -EFBIG;
            } else {
                memcpy(caller->ch.call + inst->inv.caller_out_off, inst->ch.out, d->out_len);
                clen = d->out_len;
            }
            /* A callee that ended normally may serve the caller's next calls directly; the
             * LINK records go out before the CALL_DONE (lease.h). */
            if (ok || (d->flags == 0 && d->rc != 0))
                leased = shoal_lease_offer(w, caller, inst);
            shoal_inst_call_done(caller, cerr, cerr != 0 ? msg : NULL, cerr != 0 ? mlen : 0, clen);
        }
        if (leased)
            return; /* busy until its lease ends */
    }
    shoal_inst_finish(inst);
}

static void handle_call(shoal_inst_t *inst, const shoal_up_msg_t *m)
{
    const shoal_msg_call_t *c = &m->u.call.m;
    static const char deep[] = "shoal_call nesting limit of 32 exceeded";

    if (!inst->inv.running || inst->calling) {
        violation(inst, "CALL outside an invocation");
        return;
    }
    inst->calling = 1;
    inst->call_seq = c->seq;
    inst->call_out_off = c->out_off;
    inst->call_out_cap = c->out_cap < inst->ch.lay.body_max ? c->out_cap : inst->ch.lay.body_max;
    if (c->in_off + c->in_len > inst->call_hw)
        inst->call_hw = c->in_off + c->in_len;
    if (inst->inv.depth + 1 > CALL_DEPTH_MAX) {
        shoal_inst_call_done(inst, -ELOOP, deep, sizeof(deep) - 1, 0);
        return;
    }
    if (c->group > 0)
        shoal_group_dispatch_call(inst->w, inst, m->u.call.name, c->group, c->in_off, c->in_len);
    else
        shoal_worker_dispatch_call(inst->w, inst, m->u.call.name, c->in_off, c->in_len);
}

void shoal_inst_drain(shoal_inst_t *inst)
{
    shoal_worker_t *w = inst->w;
    shoal_ring_rec_t rec;
    shoal_up_msg_t m;
    int i, r;

    inst->drain_more = 0;
    if (inst->phase == SHOAL_PH_DEAD)
        return;
    shoal_channel_arm(&inst->ch);
    for (i = 0; i < DRAIN_BATCH; i++) {
        if ((r = shoal_channel_recv(&inst->ch, &rec, w->upbuf, sizeof(w->upbuf))) == 0)
            break;
        if (r < 0) {
            violation(inst, "corrupt up ring");
            return;
        }
        if (shoal_channel_decode_up(&inst->ch.lay, rec.type, w->upbuf, rec.len, &m) < 0) {
            violation(inst, "malformed record");
            return;
        }
        switch (m.type) {
        case SHOAL_MSG_LOG:
            if (inst->inv.kind != SHOAL_INV_NONE && m.u.log.seq == inst->seq)
                shoal_worker_log(w, inst, m.u.log.text, m.u.log.len);
            break;
        case SHOAL_MSG_DONE:
            handle_done(inst, &m);
            break;
        case SHOAL_MSG_CALL:
            handle_call(inst, &m);
            break;
        case SHOAL_MSG_UNLINKED:
            shoal_lease_unlinked(inst, &m.u.unlink);
            break;
        case SHOAL_MSG_XSEND:
        case SHOAL_MSG_XRECV:
            /* Cross-node transfers of a rank of a spread group (group.h answers XDONE). */
            if (!inst->inv.running || inst->inv.kind != SHOAL_INV_GROUP) {
                violation(inst, "transfer outside a group invocation");
                return;
            }
            shoal_group_xfer(inst, m.type, &m.u.xfer);
            break;
        }
        if (inst->phase == SHOAL_PH_DEAD)
            return;
    }
    shoal_channel_release_space(&inst->ch);
    if (i == DRAIN_BATCH) {
        inst->drain_more = 1;
        shoal_worker_drain_later(w);
    }
}

static void on_ctl(uv_poll_t *h, int status, int events)
{
    shoal_inst_t *inst = h->data;
    char buf[SHOAL_CTL_MSG_MAX];
    shoal_ctl_ready_t r;
    ssize_t n;

    (void)events;
    if (status < 0) {
        violation(inst, "control socket error");
        return;
    }
    /* Bounded: a hostile instance could send doorbells as fast as we read them. The socket
     * stays readable, so the loop calls us again after serving everyone else. */
    for (int k = 0; k < 64; k++) {
        n = recv(inst->ctl_fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            violation(inst, "control socket error");
            return;
        }
        if (n == 0) {
            /* The process closed its end: it died (SIGCHLD will say how) or misbehaves. */
            uv_poll_stop(&inst->poll);
            if (inst->pid > 0 && !inst->reaped && inst->phase != SHOAL_PH_DEAD)
                kill(inst->pid, SIGKILL);
            return;
        }
        /* One read per wake-up on the hot path: the poll is level-triggered, so anything
         * still queued calls us again. */
        if (n == 1 && buf[0] == SHOAL_CTL_DOORBELL)
            break;
        if ((size_t)n < sizeof(r)) {
            violation(inst, "bad control message");
            return;
        }
        memcpy(&r, buf, sizeof(r));
        if ((size_t)n == sizeof(shoal_ctl_fatal_t) && r.magic == SHOAL_CTL_MAGIC &&
            r.type == SHOAL_CTL_FATAL) {
            on_fatal(inst, r.err); /* shoal_ctl_fatal_t: sig where READY has err */
            return;
        }
        if (r.magic != SHOAL_CTL_MAGIC || r.type != SHOAL_CTL_READY ||
            r.msg_len != (size_t)n - sizeof(r)) {
            violation(inst, "bad control message");
            return;
        }
        on_ready(inst, r.err, buf + sizeof(r), r.msg_len);
        if (inst->phase == SHOAL_PH_DEAD)
            return;
    }
    shoal_inst_drain(inst);
}

void shoal_inst_start_timer(shoal_inst_t *inst, uint64_t ms)
{
    uv_timer_start(&inst->timer, on_timeout, ms, 0);
}
