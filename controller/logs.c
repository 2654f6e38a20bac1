/*
 * logs - see logs.h.
 *
 * The lines are separate allocations in a ring of pointers (oldest at `head`) that doubles when
 * full: adding and dropping are O(1), and a function that logs little holds little.
 */
#include "logs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t seq;
    uint64_t ts_ms;
    int rank;
    char id[SHOAL_LOGS_ID_MAX + 1];
    char node[SHOAL_LOGS_ID_MAX + 1];
    size_t len;
    char text[];
} line_t;

struct shoal_logs {
    size_t cap;    /* budget in charged bytes */
    size_t bytes;  /* charged bytes kept */
    line_t **ring; /* ring_cap slots, n used from head */
    size_t ring_cap;
    size_t head, n;
    uint64_t dropped;
};

static size_t charge(size_t len)
{
    return len + SHOAL_LOGS_LINE_OVERHEAD;
}

shoal_logs_t *shoal_logs_create(size_t cap)
{
    shoal_logs_t *l = calloc(1, sizeof(*l));

    if (l == NULL)
        return NULL;
    if (cap < SHOAL_LOGS_MIN_CAP)
        cap = SHOAL_LOGS_MIN_CAP;
    if (cap > SHOAL_LOGS_MAX_CAP)
        cap = SHOAL_LOGS_MAX_CAP;
    l->cap = cap;
    return l;
}

static line_t *at(const shoal_logs_t *l, size_t i)
{
    return l->ring[(l->head + i) % l->ring_cap];
}

static void drop_oldest(shoal_logs_t *l)
{
    line_t *old = l->ring[l->head];

    l->bytes -= charge(old->len);
    free(old);
    l->head = (l->head + 1) % l->ring_cap;
    l->n--;
    l->dropped++;
}

void shoal_logs_destroy(shoal_logs_t *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(at(l, i));
    free(l->ring);
    free(l);
}

static void copy_id(char *dst, const char *src)
{
    size_t n = src != NULL ? strnlen(src, SHOAL_LOGS_ID_MAX) : 0;

    memcpy(dst, src != NULL ? src : "", n);
    dst[n] = '\0';
}

static int grow(shoal_logs_t *l)
{
    size_t cap = l->ring_cap ? l->ring_cap * 2 : 16;
    line_t **ring = malloc(cap * sizeof(*ring));

    if (ring == NULL)
        return -ENOMEM;
    /* Unroll the ring so that the oldest line is at 0 again. */
    for (size_t i = 0; i < l->n; i++)
        ring[i] = at(l, i);
    free(l->ring);
    l->ring = ring;
    l->ring_cap = cap;
    l->head = 0;
    return 0;
}

int shoal_logs_add(shoal_logs_t *l, const shoal_log_line_t *in)
{
    size_t len = in->text_len;
    line_t *line;

    if (charge(len) > l->cap)
        len = l->cap - SHOAL_LOGS_LINE_OVERHEAD;
    while (l->n > 0 && l->bytes + charge(len) > l->cap)
        drop_oldest(l);
    if (l->n == l->ring_cap && grow(l) < 0)
        return -ENOMEM;
    if ((line = malloc(sizeof(*line) + len)) == NULL)
        return -ENOMEM;
    line->seq = in->seq;
    line->ts_ms = in->ts_ms;
    line->rank = in->rank;
    copy_id(line->id, in->invocation_id);
    copy_id(line->node, in->node);
    line->len = len;
    memcpy(line->text, in->text, len);
    l->ring[(l->head + l->n) % l->ring_cap] = line;
    l->n++;
    l->bytes += charge(len);
    return 0;
}

static int wanted(const line_t *line, uint64_t since, const char *id)
{
    return line->seq > since && (id == NULL || strcmp(line->id, id) == 0);
}

int shoal_logs_each(const shoal_logs_t *l, uint64_t since, const char *id, size_t tail,
                    shoal_logs_cb cb, void *opaque)
{
    size_t first = 0, i;
    int r;

    if (tail > 0) {
        /* Walk back from the newest to find where the last `tail` matching lines start. */
        size_t found = 0;
        for (i = l->n; i > 0 && found < tail; i--)
            if (wanted(at(l, i - 1), since, id)) {
                found++;
                first = i - 1;
            }
        if (found == 0)
            return 0;
    }
    for (i = first; i < l->n; i++) {
        const line_t *line = at(l, i);
        shoal_log_line_t out;
        if (!wanted(line, since, id))
            continue;
        out = (shoal_log_line_t){.seq = line->seq,
                                 .ts_ms = line->ts_ms,
                                 .rank = line->rank,
                                 .invocation_id = line->id,
                                 .node = line->node,
                                 .text = line->text,
                                 .text_len = line->len};
        if ((r = cb(opaque, &out)) != 0)
            return r;
    }
    return 0;
}

size_t shoal_logs_lines(const shoal_logs_t *l)
{
    return l->n;
}

size_t shoal_logs_bytes(const shoal_logs_t *l)
{
    return l->bytes;
}

uint64_t shoal_logs_dropped(const shoal_logs_t *l)
{
    return l->dropped;
}
