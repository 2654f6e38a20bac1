/*
 * deploy - see deploy.h.
 *
 * Job life cycle: created on the loop thread (put/delete), pending in a FIFO or running on a
 * pool thread (work_cb touches only the job and the thread-safe registry), then finished on the
 * loop thread (after_cb: callback, free, start the next pending job). Only the loop thread touches
 * the deployer's lists and counters, so they need no lock.
 */
#include "deploy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/trace.h"
#include "controller/elf.h"

static void set_error(shoal_deploy_result_t *res, shoal_api_err_t code, const char *msg)
{
    res->code = code;
    free(res->message);
    res->message = strdup(msg);
}

void shoal_deploy_result_clear(shoal_deploy_result_t *res)
{
    free(res->message);
    memset(res, 0, sizeof(*res));
}

void shoal_deploy_run_put(const shoal_deploy_opts_t *o, const char *name, const void *body,
                          size_t len, const shoal_fn_limits_t *limits, shoal_deploy_result_t *res)
{
    void *compiled = NULL;
    char *diag = NULL;
    size_t diag_len = 0;
    char msg[512];
    int err;

    memset(res, 0, sizeof(*res));
    if (len == 0) {
        set_error(res, SHOAL_API_EMPTY_ARTIFACT, "the artifact is empty");
        return;
    }
    switch (shoal_compile_classify(body, len)) {
    case SHOAL_ARTIFACT_ELF:
        break;
    case SHOAL_ARTIFACT_SOURCE: {
        shoal_compile_opts_t co = o->compile;
        size_t so_len;
        if (co.max_output == 0 || co.max_output > o->max_artifact)
            co.max_output = o->max_artifact;
        err = shoal_compile_run(&co, name, body, len, &compiled, &so_len, &diag, &diag_len);
        if (err == -ENOEXEC) {
            res->code = SHOAL_API_COMPILE_ERROR;
            res->message = diag;
            return;
        }
        if (err == -EFBIG) {
            set_error(res, SHOAL_API_TOO_LARGE,
                      "the compiled shared object is larger than the artifact size limit");
            return;
        }
        if (err < 0) {
            if (err == -EOPNOTSUPP) /* never compiled unconfined: see compile.h */
                snprintf(msg, sizeof(msg),
                         "cannot compile: the compiler's sandbox is unavailable "
                         "on this host (user namespaces refused); upload a "
                         "compiled shared object instead");
            else
                snprintf(msg, sizeof(msg), "cannot compile: %s", strerror(-err));
            SHOAL_ERROR("deploy %s: %s", name, msg);
            set_error(res, SHOAL_API_INTERNAL, msg);
            return;
        }
        body = compiled;
        len = so_len;
        break;
    }
    default:
        set_error(res, SHOAL_API_BAD_ARTIFACT, "neither an ELF shared object nor C source");
        return;
    }

    if ((err = shoal_elf_validate(body, len, msg, sizeof(msg))) < 0) {
        set_error(res, err == -ENOEXEC ? SHOAL_API_WRONG_ARCHITECTURE : SHOAL_API_BAD_ARTIFACT,
                  msg);
        goto done;
    }
    if (len > o->max_artifact) {
        set_error(res, SHOAL_API_TOO_LARGE, "the artifact is larger than the size limit");
        goto done;
    }
    err = shoal_registry_put(o->registry, name, body, len, limits, &res->fn, &res->created, msg,
                             sizeof(msg));
    if (err == -EINVAL)
        set_error(res, SHOAL_API_BAD_QUERY, msg);
    else if (err < 0)
        set_error(res, SHOAL_API_INTERNAL, msg);
done:
    free(compiled);
}

void shoal_deploy_run_delete(const shoal_deploy_opts_t *o, const char *name,
                             shoal_deploy_result_t *res)
{
    char msg[160];
    int err;

    memset(res, 0, sizeof(*res));
    err = shoal_registry_delete(o->registry, name, &res->fn);
    if (err == -ENOENT) {
        snprintf(msg, sizeof(msg), "function '%s' not found", name);
        set_error(res, SHOAL_API_NOT_FOUND, msg);
    } else if (err < 0) {
        snprintf(msg, sizeof(msg), "cannot delete the function: %s", strerror(-err));
        set_error(res, SHOAL_API_INTERNAL, msg);
    }
}

struct shoal_deploy_job {
    uv_work_t work; /* work.data unused; the job is found with container_of arithmetic */
    shoal_deploy_t *d;
    shoal_deploy_job_t *next; /* pending FIFO */
    int is_delete;
    char name[SHOAL_NAME_MAX + 1];
    void *body;
    size_t len;
    shoal_fn_limits_t limits;
    shoal_deploy_cb cb; /* NULL once detached */
    void *opaque;
    shoal_deploy_result_t res;
};

struct shoal_deploy {
    uv_loop_t *loop;
    shoal_deploy_opts_t run_opts; /* the caller's options plus our cancel flag */
    atomic_int cancel;
    unsigned parallel, max_pending, running, pending;
    shoal_deploy_job_t *head, *tail;
    int shutdown;
};

int shoal_deploy_create(uv_loop_t *loop, const shoal_deploy_opts_t *o, unsigned parallel,
                        unsigned max_pending, shoal_deploy_t **out)
{
    shoal_deploy_t *d = calloc(1, sizeof(*d));

    if (d == NULL)
        return -ENOMEM;
    d->loop = loop;
    d->run_opts = *o;
    d->run_opts.compile.cancel = &d->cancel;
    atomic_init(&d->cancel, 0);
    d->parallel = parallel ? parallel : 1;
    d->max_pending = max_pending;
    *out = d;
    return 0;
}

void shoal_deploy_destroy(shoal_deploy_t *d)
{
    if (d == NULL)
        return;
    if (d->running || d->pending)
        SHOAL_ERROR("deploy: destroyed with %u running and %u pending jobs", d->running,
                    d->pending);
    free(d);
}

static void job_free(shoal_deploy_job_t *job)
{
    shoal_deploy_result_clear(&job->res);
    free(job->body);
    free(job);
}

static void work_cb(uv_work_t *w)
{
    shoal_deploy_job_t *job = (shoal_deploy_job_t *)w;

    if (job->is_delete)
        shoal_deploy_run_delete(&job->d->run_opts, job->name, &job->res);
    else
        shoal_deploy_run_put(&job->d->run_opts, job->name, job->body, job->len, &job->limits,
                             &job->res);
    /* The body is no longer needed; release it now rather than when the loop gets to us. */
    free(job->body);
    job->body = NULL;
}

static void start_next(shoal_deploy_t *d);

static void after_cb(uv_work_t *w, int status)
{
    shoal_deploy_job_t *job = (shoal_deploy_job_t *)w;
    shoal_deploy_t *d = job->d;

    d->running--;
    if (status == UV_ECANCELED && job->res.code == SHOAL_API_OK)
        set_error(&job->res, SHOAL_API_SHUTTING_DOWN, "the controller is shutting down");
    if (job->cb)
        job->cb(job->opaque, &job->res);
    job_free(job);
    start_next(d);
}

static void start_next(shoal_deploy_t *d)
{
    while (!d->shutdown && d->head != NULL && d->running < d->parallel) {
        shoal_deploy_job_t *job = d->head;
        int err;
        d->head = job->next;
        if (d->head == NULL)
            d->tail = NULL;
        d->pending--;
        if ((err = uv_queue_work(d->loop, &job->work, work_cb, after_cb)) < 0) {
            SHOAL_ERROR("deploy: cannot queue work: %s", uv_strerror(err));
            set_error(&job->res, SHOAL_API_INTERNAL, "cannot start the deploy");
            if (job->cb)
                job->cb(job->opaque, &job->res);
            job_free(job);
            continue;
        }
        d->running++;
    }
}

static int submit(shoal_deploy_t *d, shoal_deploy_job_t *job)
{
    if (d->shutdown)
        return -ESHUTDOWN;
    if (d->running >= d->parallel && d->pending >= d->max_pending)
        return -EAGAIN;
    job->d = d;
    if (d->tail)
        d->tail->next = job;
    else
        d->head = job;
    d->tail = job;
    d->pending++;
    start_next(d);
    return 0;
}

static shoal_deploy_job_t *job_new(const char *name, shoal_deploy_cb cb, void *opaque)
{
    shoal_deploy_job_t *job = calloc(1, sizeof(*job));

    if (job == NULL)
        return NULL;
    snprintf(job->name, sizeof(job->name), "%s", name);
    job->cb = cb;
    job->opaque = opaque;
    return job;
}

int shoal_deploy_put(shoal_deploy_t *d, const char *name, void *body, size_t len,
                     const shoal_fn_limits_t *limits, shoal_deploy_cb cb, void *opaque,
                     shoal_deploy_job_t **out)
{
    shoal_deploy_job_t *job = job_new(name, cb, opaque);
    int err;

    if (job == NULL)
        return -ENOMEM;
    job->body = body;
    job->len = len;
    if (limits)
        job->limits = *limits;
    *out = job;
    if ((err = submit(d, job)) < 0) {
        job->body = NULL; /* still the caller's */
        job_free(job);
        *out = NULL;
    }
    return err;
}

int shoal_deploy_delete(shoal_deploy_t *d, const char *name, shoal_deploy_cb cb, void *opaque,
                        shoal_deploy_job_t **out)
{
    shoal_deploy_job_t *job = job_new(name, cb, opaque);
    int err;

    if (job == NULL)
        return -ENOMEM;
    job->is_delete = 1;
    *out = job;
    if ((err = submit(d, job)) < 0) {
        job_free(job);
        *out = NULL;
    }
    return err;
}

void shoal_deploy_detach(shoal_deploy_job_t *job)
{
    job->cb = NULL;
}

void shoal_deploy_shutdown(shoal_deploy_t *d)
{
    shoal_deploy_job_t *job;

    d->shutdown = 1;
    atomic_store(&d->cancel, 1);
    while ((job = d->head) != NULL) {
        d->head = job->next;
        d->pending--;
        set_error(&job->res, SHOAL_API_SHUTTING_DOWN, "the controller is shutting down");
        if (job->cb)
            job->cb(job->opaque, &job->res);
        job_free(job);
    }
    d->tail = NULL;
}

unsigned shoal_deploy_busy(const shoal_deploy_t *d)
{
    return d->running + d->pending;
}
