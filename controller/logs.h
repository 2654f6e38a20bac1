/*
 * logs - the recent log lines of one function, kept in the controller's memory for
 * GET /v1/functions/{name}/logs and `shoal logs`.
 *
 * Workers forward what functions write with shoal_log (LOG frames, transport/frame.h); the
 * scheduler splits each record into lines and adds them here, to the buffer hanging off the
 * function's table entry. A buffer keeps at most `cap` bytes of lines (text plus a fixed charge
 * per line, so that empty lines are not free); adding beyond that drops the oldest lines. Logs are
 * a window on recent activity, not a store: they are not written to disk and a restarted
 * controller starts empty (docs/api.md says so).
 *
 * Every line has a sequence number, increasing across all functions and across controller
 * restarts (the scheduler starts it from the wall clock), so that a reader can ask for the lines
 * after the last one it saw (`since`) and follow a function's logs by polling.
 *
 * Loop thread only.
 */
#ifndef SHOAL_CONTROLLER_LOGS_H
#define SHOAL_CONTROLLER_LOGS_H

#include <stddef.h>
#include <stdint.h>

/* Default and bounds of the per-function budget (controller --log-kib). */
#define SHOAL_LOGS_DEFAULT_CAP (256u * 1024u)
#define SHOAL_LOGS_MIN_CAP (4u * 1024u)
#define SHOAL_LOGS_MAX_CAP (64u * 1024u * 1024u)
/* What a line costs beyond its text: its record. */
#define SHOAL_LOGS_LINE_OVERHEAD 64u
/* Longest invocation id and node name kept with a line (longer ones are cut). */
#define SHOAL_LOGS_ID_MAX 64u

typedef struct shoal_logs shoal_logs_t;

typedef struct {
    uint64_t seq;
    uint64_t ts_ms;            /* when the worker received it, Unix ms */
    int rank;                  /* the rank in a group, or -1 */
    const char *invocation_id; /* NUL-terminated */
    const char *node;          /* the worker's node name, NUL-terminated */
    const char *text;          /* one line, without its newline; not NUL-terminated */
    size_t text_len;
} shoal_log_line_t;

/* Returns 0 to go on, anything else to stop (shoal_logs_each returns it). */
typedef int (*shoal_logs_cb)(void *opaque, const shoal_log_line_t *line);

shoal_logs_t *shoal_logs_create(size_t cap);
void shoal_logs_destroy(shoal_logs_t *l);

/* Adds one line (its text must not contain '\n'); `line->seq` must be larger than every seq
 * added before. A line longer than the whole budget is cut to fit. 0 or -ENOMEM (the line is
 * then lost, nothing else). */
int shoal_logs_add(shoal_logs_t *l, const shoal_log_line_t *line);

/* Visits, oldest first, the kept lines with seq > since and (if invocation_id is not NULL) of
 * that invocation; if tail > 0 only the last `tail` of those. Returns 0 or what cb returned. */
int shoal_logs_each(const shoal_logs_t *l, uint64_t since, const char *invocation_id, size_t tail,
                    shoal_logs_cb cb, void *opaque);

/* Lines and bytes (as charged against the budget) kept now; lines dropped so far. */
size_t shoal_logs_lines(const shoal_logs_t *l);
size_t shoal_logs_bytes(const shoal_logs_t *l);
uint64_t shoal_logs_dropped(const shoal_logs_t *l);

#endif
