/*
 * triggers - what makes functions run without an invoke call: HTTP routes, timers (every_ms or
 * a five-field UTC cron expression) and topics. Trigger documents are stored in store.h's
 * `triggers` table with the time each timer last fired.
 *
 *   {"function":"f","type":"http","path":"/hooks/build","methods":["POST"]}
 *   {"function":"f","type":"timer","every_ms":1000}   or   {"...","cron":"*\/5 * * * *"}
 *   {"function":"f","type":"topic","topic":"uploads"}
 *
 * Timers fire on the loop (uv_timer) at fixed points: every_ms counts from the trigger's creation,
 * cron from its expression; each firing is an async invocation whose meta names the trigger, and
 * the time of the firing is stored with it in the same commit. At start-up a timer whose next
 * firing after the stored one is already past fires once, then resumes its schedule: a downtime
 * costs at most one catch-up run, never a burst.
 *
 * Topics: a publication creates one async invocation per subscribed trigger, all in one group
 * commit, each in the lane "topic:<topic>/<trigger>" (events.h), so every subscriber sees the
 * topic's events in publication order.
 *
 * Loop thread only.
 */
#ifndef SHOAL_CONTROLLER_TRIGGERS_H
#define SHOAL_CONTROLLER_TRIGGERS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "controller/events.h"
#include "controller/json.h"

typedef struct shoal_triggers shoal_triggers_t;

/* Loads the stored triggers and starts their timers. */
int shoal_triggers_create(uv_loop_t *loop, shoal_events_t *ev, shoal_triggers_t **out);
/* Stops every timer (closes handles). */
void shoal_triggers_shutdown(shoal_triggers_t *t);
void shoal_triggers_destroy(shoal_triggers_t *t);

/* Bounds on what clients can make the controller hold (every trigger lives in memory and is
 * scanned on lookups): triggers in all, triggers of one function, a document's size, a cron
 * expression's length. An HTTP path is at most 1024 bytes. */
#define SHOAL_TRIGGERS_MAX 4096
#define SHOAL_TRIGGERS_PER_FUNCTION_MAX 64
#define SHOAL_TRIGGER_DOC_MAX 16384
#define SHOAL_TRIGGER_CRON_MAX 256

/* Validates and applies PUT /v1/triggers/{name}. Returns 201 (created) or 200 (replaced) and
 * appends the trigger object to out; or an HTTP error status with a message in err: 400 naming the
 * field, 404 for a missing function, 409 for a reserved or taken HTTP path or a full count
 * (SHOAL_TRIGGERS_MAX, SHOAL_TRIGGERS_PER_FUNCTION_MAX), 413 for a document over
 * SHOAL_TRIGGER_DOC_MAX. The store write is started; done(opaque, err) runs once it is
 * committed. */
typedef void (*shoal_triggers_done_cb)(void *opaque, int err);
int shoal_triggers_put(shoal_triggers_t *t, const char *name, const char *body, size_t len,
                       shoal_json_t *out, char *err, size_t errlen, shoal_triggers_done_cb done,
                       void *opaque);
/* DELETE: 0 (done will run) or -ENOENT. */
int shoal_triggers_delete(shoal_triggers_t *t, const char *name, shoal_triggers_done_cb done,
                          void *opaque);
/* Appends {"triggers":[...]} by name. */
void shoal_triggers_list_json(shoal_triggers_t *t, shoal_json_t *out);

/* The function an HTTP route serves for path (without query): NULL when no route has that path;
 * *method_ok tells whether the method is allowed; allow receives "POST, GET" style text. */
const char *shoal_triggers_route(shoal_triggers_t *t, const char *path, size_t len,
                                 const char *method, size_t mlen, int *method_ok, char *allow,
                                 size_t allowlen, const char **trigger);

/* Publishes an event: one async invocation per subscriber. done(opaque, err) runs once all are
 * stored; *deliveries is their number. -EAGAIN when the runner has no room for them all. */
int shoal_triggers_publish(shoal_triggers_t *t, const char *topic, const char *id, const void *body,
                           size_t len, uint32_t *deliveries, shoal_triggers_done_cb done,
                           void *opaque);

#endif
