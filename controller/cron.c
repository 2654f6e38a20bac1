/*
 * cron - see cron.h. Parsing turns each field into a bit set; finding the next firing walks
 * forward from the candidate minute, skipping a whole month, day or hour at once whenever that
 * unit cannot match, so even a rare expression needs at most a few thousand steps.
 */
#include "cron.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

typedef struct {
    const char *name;
    int min, max;
    const char *const *names; /* names[i] stands for min + i */
    int nnames;
} field_t;

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

static const field_t fields[5] = {
    {"minute", 0, 59, NULL, 0},          {"hour", 0, 23, NULL, 0},
    {"day-of-month", 1, 31, NULL, 0},    {"month", 1, 12, month_names, 12},
    {"day-of-week", 0, 7, day_names, 7},
};

/* Reads a number or a name at *p; -1 when there is neither or it is out of range. */
static int read_value(const field_t *f, const char **p)
{
    const char *s = *p;
    long v;

    if (isdigit((unsigned char)*s)) {
        char *end;
        v = strtol(s, &end, 10);
        if (end - s > 2 || v < f->min || v > f->max)
            return -1;
        *p = end;
        return (int)v;
    }
    for (int i = 0; i < f->nnames; i++) {
        if (strncasecmp(s, f->names[i], 3) == 0 && !isalpha((unsigned char)s[3])) {
            *p = s + 3;
            return f->min + i;
        }
    }
    return -1;
}

/* Parses one field (len bytes at s) into a bit set. */
static int parse_field(const field_t *f, const char *s, size_t len, uint64_t *bits, int *star)
{
    char buf[128];
    const char *p;

    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    *bits = 0;
    *star = buf[0] == '*';
    p = buf;
    for (;;) {
        int lo, hi, step = 1;
        if (*p == '*') {
            lo = f->min;
            hi = f->max;
            p++;
        } else {
            if ((lo = read_value(f, &p)) < 0)
                return -1;
            hi = lo;
            if (*p == '-') {
                p++;
                if ((hi = read_value(f, &p)) < 0 || hi < lo)
                    return -1;
            } else if (*p == '/') {
                hi = f->max; /* "a/n" means from a to the maximum in steps of n */
            }
        }
        if (*p == '/') {
            char *end;
            long v;
            p++;
            if (!isdigit((unsigned char)*p))
                return -1;
            v = strtol(p, &end, 10);
            if (v < 1 || v > f->max + 1)
                return -1;
            step = (int)v;
            p = end;
        }
        for (int v = lo; v <= hi; v += step)
            *bits |= 1ull << v;
        if (*p == '\0')
            break;
        if (*p++ != ',')
            return -1;
    }
    return 0;
}

static void set_error(char *err, size_t errlen, const char *fmt, const char *arg)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, fmt, arg);
}

int shoal_cron_parse(const char *expr, shoal_cron_t *out, char *err, size_t errlen)
{
    static const struct {
        const char *name, *expr;
    } macros[] = {{"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
                  {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
                  {"@hourly", "0 * * * *"}};
    const char *p = expr;
    uint64_t bits[5];
    int stars[5];
    shoal_cron_t c;

    if (expr == NULL) {
        set_error(err, errlen, "%s", "cron expression is missing");
        return -EINVAL;
    }
    if (expr[0] == '@') {
        for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]); i++)
            if (strcasecmp(expr, macros[i].name) == 0)
                return shoal_cron_parse(macros[i].expr, out, err, errlen);
        set_error(err, errlen, "unknown cron macro \"%.40s\"", expr);
        return -EINVAL;
    }
    for (int i = 0; i < 5; i++) {
        const char *start;
        while (*p == ' ' || *p == '\t')
            p++;
        start = p;
        while (*p != '\0' && *p != ' ' && *p != '\t')
            p++;
        if (p == start) {
            set_error(err, errlen,
                      "cron expression needs 5 fields (minute hour day-of-month "
                      "month day-of-week), missing the %s field",
                      fields[i].name);
            return -EINVAL;
        }
        if (parse_field(&fields[i], start, (size_t)(p - start), &bits[i], &stars[i]) < 0) {
            char msg[96];
            snprintf(msg, sizeof(msg), "%s field \"%.*s\"", fields[i].name,
                     (int)(p - start > 40 ? 40 : p - start), start);
            set_error(err, errlen, "invalid cron %s", msg);
            return -EINVAL;
        }
    }
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != '\0') {
        set_error(err, errlen, "cron expression has more than 5 fields at \"%.40s\"", p);
        return -EINVAL;
    }
    c.minutes = bits[0];
    c.hours = (uint32_t)bits[1];
    c.mdays = (uint32_t)bits[2];
    c.months = (uint16_t)bits[3];
    /* Day 7 is Sunday, like day 0. */
    c.wdays = (uint8_t)((bits[4] | (bits[4] >> 7)) & 0x7f);
    c.mday_star = (uint8_t)stars[2];
    c.wday_star = (uint8_t)stars[4];
    if (shoal_cron_next(&c, 0) < 0 && shoal_cron_next(&c, (int64_t)time(NULL)) < 0) {
        set_error(err, errlen, "cron expression \"%.60s\" never fires", expr);
        return -EINVAL;
    }
    *out = c;
    return 0;
}

static int day_matches(const shoal_cron_t *c, const struct tm *tm)
{
    int md = (c->mdays >> tm->tm_mday) & 1, wd = (c->wdays >> tm->tm_wday) & 1;
    if (c->mday_star || c->wday_star)
        return md && wd;
    return md || wd;
}

int64_t shoal_cron_next(const shoal_cron_t *c, int64_t after)
{
    time_t t = (time_t)(after - after % 60 + 60);
    struct tm tm;
    int limit_year;

    if (after < 0)
        t = 0;
    gmtime_r(&t, &tm);
    limit_year = tm.tm_year + 8;
    while (tm.tm_year <= limit_year) {
        if (!((c->months >> (tm.tm_mon + 1)) & 1)) {
            tm.tm_mon++;
            tm.tm_mday = 1;
            tm.tm_hour = tm.tm_min = 0;
        } else if (!day_matches(c, &tm)) {
            tm.tm_mday++;
            tm.tm_hour = tm.tm_min = 0;
        } else if (!((c->hours >> tm.tm_hour) & 1)) {
            tm.tm_hour++;
            tm.tm_min = 0;
        } else if (!((c->minutes >> tm.tm_min) & 1)) {
            tm.tm_min++;
        } else {
            return (int64_t)timegm(&tm);
        }
        /* timegm normalises overflowed fields (minute 60, day 32, month 12) and sets tm_wday. */
        t = timegm(&tm);
        gmtime_r(&t, &tm);
    }
    return -1;
}
