/*
 * evhttp - the HTTP endpoints of events, kept out of http.c behind two hooks:
 *
 *   POST /v1/functions/{name}/invoke?async=1   202 {"id"} + Location, once durably stored
 *   GET  /v1/invocations[?function=F&state=S&limit=N]   newest first (limit default 100, max 1000)
 *   GET  /v1/invocations/{id}                  the invocation object
 *   GET  /v1/invocations/{id}/output           the raw output (409 until it succeeded)
 *   PUT|GET|DELETE /v1/triggers/{name}, GET /v1/triggers
 *   POST /v1/topics/{topic}                    202 {"id","deliveries"} once stored
 *
 * The GETs of invocations read SQLite on the store's reader threads (store.h shoal_store_read),
 * never on the loop. Every asynchronous answer - reads and writes alike - is guarded like
 * http.c's: a token in the request's pool is cleared when h2o frees the request, and the store
 * callback then finds no request to answer. Loop thread only.
 */
#ifndef SHOAL_CONTROLLER_EVHTTP_H
#define SHOAL_CONTROLLER_EVHTTP_H

#include <h2o.h>

#include "controller/events.h"
#include "controller/triggers.h"

typedef struct shoal_evhttp shoal_evhttp_t;

int shoal_evhttp_create(shoal_events_t *ev, shoal_triggers_t *tr, shoal_evhttp_t **out);
void shoal_evhttp_destroy(shoal_evhttp_t *eh);

/* Serves req if its path is one of the endpoints above (except async invoke): returns 1 when it
 * answered (or will), 0 to let the caller route it. */
int shoal_evhttp_handle(shoal_evhttp_t *eh, h2o_req_t *req);
/* Accepts the async invocation of function with the request's body; answers 202, 429 or an
 * error. meta is the invocation's meta JSON (copied). */
void shoal_evhttp_async(shoal_evhttp_t *eh, h2o_req_t *req, const char *function, const char *id,
                        const char *meta, size_t meta_len);
/* The HTTP route trigger serving path, if any (see shoal_triggers_route). */
const char *shoal_evhttp_route(shoal_evhttp_t *eh, h2o_req_t *req, int *method_ok, char *allow,
                               size_t allowlen, const char **trigger);
/* A deploy that set retries=N (retries >= 0), or a delete (-1). */
void shoal_evhttp_deployed(shoal_evhttp_t *eh, const char *function, int retries);
/* Appends the runner's Prometheus lines. */
void shoal_evhttp_metrics(shoal_evhttp_t *eh, shoal_json_t *j);

#endif
