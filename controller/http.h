/*
 * http - the v1 HTTP API on h2o (HTTP/1.1 and h2c) on the controller's libuv loop.
 *
 *   PUT    /v1/functions/{name}         deploy (body: ELF shared object or C source)
 *   GET    /v1/functions/{name}         one function
 *   DELETE /v1/functions/{name}         delete (tombstone)
 *   GET    /v1/functions                all live functions, by name
 *   POST   /v1/functions/{name}/invoke  invoke (body: input; answer: output)
 *   GET    /v1/workers                  connected workers and their pools
 *   GET    /healthz                     {"status":"ok","workers":N}
 *   GET    /metrics                     Prometheus text
 * Every /v1/ request needs `Authorization: Bearer TOKEN` (auth.h): 401 with WWW-Authenticate
 * without a well-formed one, 403 with a wrong one. Exceptions: /healthz and /metrics, invoking a
 * function deployed with ?public=1, and HTTP trigger routes of public functions (a route of any
 * other function needs the token too). The Authorization header is never shown to a function
 * (its meta) unless the function is public and the header is not the API token.
 *
 * HEAD is accepted wherever GET is. Another method gets 405 with Allow; another path 404. Every
 * answer is JSON ({"error":{"code","message"}} for errors) except a successful invoke (the
 * function's output) and /metrics; the one exception is the 413 h2o itself sends for a body over
 * --max-body, before our handler sees the request.
 *
 * Asynchronous answers (invoke, deploy, delete) never touch an h2o_req_t after it is gone: each
 * such request carries a small token allocated in its memory pool whose dispose callback runs
 * when h2o frees the request (client gone, HTTP/2 stream reset, or after our answer); it detaches
 * the request from the pending work. A deploy or delete that started always runs to the end and
 * is published to the workers even if its client has left: only the answer is dropped.
 *
 * Invoke bodies are not copied: the scheduler borrows req->entity until the invocation is
 * dispatched (the INVOKE frame then holds what it needs) or cancelled by the token. Deploy bodies
 * are copied, because the deploy outlives the request.
 *
 * Loop thread only.
 */
#ifndef SHOAL_CONTROLLER_HTTP_H
#define SHOAL_CONTROLLER_HTTP_H

#include <stddef.h>
#include <uv.h>

#include "controller/deploy.h"
#include "controller/evhttp.h"
#include "controller/sched.h"

typedef struct shoal_http shoal_http_t;

typedef struct {
    size_t max_body;        /* largest request body (h2o answers 413 beyond it) */
    shoal_sched_t *sched;   /* must outlive the server */
    shoal_deploy_t *deploy; /* must outlive the server */
    shoal_evhttp_t *events; /* async invocations, triggers, topics (evhttp.h); may be NULL */
    const char *token;      /* the API token (auth.h), must outlive the server; NULL turns
                               authentication off (unit tests of this module only) */
} shoal_http_opts_t;

int shoal_http_create(uv_loop_t *loop, const shoal_http_opts_t *o, shoal_http_t **out);
/* Disposes the h2o context and configuration; call once shoal_http_idle() is true (or when
 * giving up on stragglers at exit). */
void shoal_http_destroy(shoal_http_t *h);
/* Listens on addr; 0 or a libuv error. */
int shoal_http_listen(shoal_http_t *h, const struct sockaddr *addr);
/* The port actually bound, or -1. */
int shoal_http_port(const shoal_http_t *h);
/* Stops accepting, asks h2o to wind connections down and closes idle keep-alive connections;
 * requests still being answered finish first. */
void shoal_http_shutdown(shoal_http_t *h);
/* Whether, after shoal_http_shutdown, every connection and the listener are closed. */
int shoal_http_idle(const shoal_http_t *h);

#endif
