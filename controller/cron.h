/*
 * cron - five-field cron expressions ("minute hour day-of-month month day-of-week", UTC) with
 * their standard meaning, and the next time one fires.
 *
 * Fields take `*`, numbers, ranges `a-b`, steps `*\/n`, `a-b/n` and `a/n` (a to the field's
 * maximum), lists of those separated by commas, month names jan..dec and day names sun..sat
 * (any case); day-of-week 7 is Sunday like 0. As in Vixie cron, when both day-of-month and
 * day-of-week are restricted (neither starts with `*`), a day matches if EITHER matches.
 * The macros @yearly (@annually), @monthly, @weekly, @daily (@midnight) and @hourly are accepted.
 * A parsed expression is a small value (bit sets); functions are pure and thread-safe.
 */
#ifndef SHOAL_CONTROLLER_CRON_H
#define SHOAL_CONTROLLER_CRON_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t minutes; /* bit m: minute m (0..59) */
    uint32_t hours;   /* bit h: hour h (0..23) */
    uint32_t mdays;   /* bit d: day of month d (1..31) */
    uint16_t months;  /* bit m: month m (1..12) */
    uint8_t wdays;    /* bit d: day of week d (0..6, 0 = Sunday) */
    uint8_t mday_star, wday_star;
} shoal_cron_t;

/* Parses expr into *out. On error returns -EINVAL and writes a message naming the bad field
 * into err (when err is not NULL). An expression that can never fire (e.g. "0 0 31 2 *") is an
 * error too. */
int shoal_cron_parse(const char *expr, shoal_cron_t *out, char *err, size_t errlen);

/* The first time (seconds since the epoch, UTC, at a whole minute) strictly after `after` at which
 * the expression fires, or -1 if it does not fire within the next eight years. */
int64_t shoal_cron_next(const shoal_cron_t *cron, int64_t after);

#endif
