/*
 * deploy - the path from an uploaded body to a stored function version, and from a DELETE to a
 * tombstone: classify the upload, compile C source, validate the ELF, store it in the registry.
 *
 * The pipeline itself (shoal_deploy_run_put / _delete) is synchronous and free of libuv so that
 * tests can drive it directly. The controller runs it through a shoal_deploy_t, which executes
 * jobs on libuv's thread pool - hashing 64 MiB, compiling for seconds, fsyncing - so the event
 * loop keeps serving invocations meanwhile. At most `parallel` jobs run at once (the thread pool
 * is shared with artifact reads for workers, which must not starve behind compiles); up to
 * `max_pending` more wait in FIFO order; beyond that submission fails with -EAGAIN (HTTP 429).
 *
 * A job, once submitted, always runs to completion even if its HTTP client goes away
 * (shoal_deploy_detach only drops the callback): a deploy that started either commits or fails
 * cleanly, never half-way.
 */
#ifndef SHOAL_CONTROLLER_DEPLOY_H
#define SHOAL_CONTROLLER_DEPLOY_H

#include <stdatomic.h>
#include <stddef.h>
#include <uv.h>

#include "controller/api.h"
#include "controller/compile.h"
#include "controller/registry.h"

typedef struct {
    shoal_api_err_t code; /* SHOAL_API_OK on success */
    char *message;        /* malloc'd error message (compile diagnostics for compile_error) */
    shoal_fn_t fn;        /* put: the new version; delete: the version that was deleted */
    int created;          /* put: 1 when the name was new or deleted before (HTTP 201) */
} shoal_deploy_result_t;

/* Frees the message; the result may be reused. */
void shoal_deploy_result_clear(shoal_deploy_result_t *res);

typedef struct {
    shoal_registry_t *registry;
    shoal_compile_opts_t compile; /* home, compiler and its limits */
    size_t max_artifact;          /* largest stored artifact (compiled output included) */
} shoal_deploy_opts_t;

/* Runs a deploy of body as the next version of name (already validated) in the calling thread.
 * Always fills *res; the caller clears it. */
void shoal_deploy_run_put(const shoal_deploy_opts_t *o, const char *name, const void *body,
                          size_t len, const shoal_fn_limits_t *limits, shoal_deploy_result_t *res);
/* Deletes name in the calling thread; not_found if it is not live. */
void shoal_deploy_run_delete(const shoal_deploy_opts_t *o, const char *name,
                             shoal_deploy_result_t *res);

typedef struct shoal_deploy shoal_deploy_t;
typedef struct shoal_deploy_job shoal_deploy_job_t;
/* Called on the loop thread when a job ends; res is valid during the call only. */
typedef void (*shoal_deploy_cb)(void *opaque, const shoal_deploy_result_t *res);

/* Creates a deployer on loop; opts (and the registry it names) must outlive it. */
int shoal_deploy_create(uv_loop_t *loop, const shoal_deploy_opts_t *o, unsigned parallel,
                        unsigned max_pending, shoal_deploy_t **out);
/* Frees the deployer; no job may be running or pending (see shoal_deploy_busy). */
void shoal_deploy_destroy(shoal_deploy_t *d);

/* Queues a deploy. On success the deployer owns body (it frees it) and cb will run exactly once
 * unless detached; *job identifies it for shoal_deploy_detach. On failure (-EAGAIN: too many
 * pending, -ESHUTDOWN, -ENOMEM) nothing was queued, body still belongs to the caller and cb never
 * runs. */
int shoal_deploy_put(shoal_deploy_t *d, const char *name, void *body, size_t len,
                     const shoal_fn_limits_t *limits, shoal_deploy_cb cb, void *opaque,
                     shoal_deploy_job_t **job);
/* Queues a delete; same contract as shoal_deploy_put. */
int shoal_deploy_delete(shoal_deploy_t *d, const char *name, shoal_deploy_cb cb, void *opaque,
                        shoal_deploy_job_t **job);
/* The job's callback will not run; the job itself still completes. */
void shoal_deploy_detach(shoal_deploy_job_t *job);

/* Stops accepting jobs: pending ones end at once with shutting_down (their callbacks run now),
 * running compiles are killed. Running jobs still call back when their thread finishes. */
void shoal_deploy_shutdown(shoal_deploy_t *d);
/* Number of jobs running or pending. */
unsigned shoal_deploy_busy(const shoal_deploy_t *d);

#endif
