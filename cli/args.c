/*
 * args - see args.h.
 */
#include "args.h"

#include <stdio.h>
#include <string.h>

#include "common/util.h"

void shoal_cli_args_init(shoal_cli_args_t *a, int argc, char **argv, const shoal_cli_opt_t *opts,
                         size_t nopts)
{
    memset(a, 0, sizeof(*a));
    a->argc = argc;
    a->argv = argv;
    a->opts = opts;
    a->nopts = nopts;
}

static const shoal_cli_opt_t *find_long(const shoal_cli_args_t *a, const char *name, size_t len)
{
    for (size_t k = 0; k < a->nopts; k++) {
        const char *n = a->opts[k].name;
        if (n != NULL && strlen(n) == len && memcmp(n, name, len) == 0)
            return &a->opts[k];
    }
    return NULL;
}

static const shoal_cli_opt_t *find_short(const shoal_cli_args_t *a, char c)
{
    for (size_t k = 0; k < a->nopts; k++)
        if (a->opts[k].short_name != 0 && a->opts[k].short_name == c)
            return &a->opts[k];
    return NULL;
}

static int error(shoal_cli_args_t *a, const char *fmt, const char *what)
{
    snprintf(a->err, sizeof(a->err), fmt, what);
    return SHOAL_CLI_ARGS_ERROR;
}

/* Takes the option's value from the next argv entry. */
static int take_next(shoal_cli_args_t *a, const shoal_cli_opt_t *o)
{
    if (a->i >= a->argc)
        return error(a, "%s needs a value", a->opt);
    a->arg = a->argv[a->i++];
    return o->id;
}

int shoal_cli_args_next(shoal_cli_args_t *a)
{
    const shoal_cli_opt_t *o;
    const char *s;

    a->arg = NULL;
    a->opt = NULL;
    if (a->i >= a->argc)
        return SHOAL_CLI_ARGS_END;
    s = a->argv[a->i++];
    if (a->only_args || s[0] != '-' || s[1] == '\0') {
        a->arg = s;
        return SHOAL_CLI_ARGS_POSITIONAL;
    }
    if (strcmp(s, "--") == 0) {
        a->only_args = 1;
        return shoal_cli_args_next(a);
    }
    if (s[1] == '-') {
        const char *name = s + 2, *eq = strchr(name, '=');
        size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);

        if (eq != NULL) {
            /* Keep "--name" alone for messages. */
            snprintf(a->optbuf, sizeof(a->optbuf), "--%.*s", (int)len, name);
            a->opt = a->optbuf;
        } else {
            a->opt = s;
        }
        if ((o = find_long(a, name, len)) == NULL)
            return error(a, "unknown option %s", a->opt);
        if (!o->has_arg) {
            if (eq != NULL)
                return error(a, "%s takes no value", a->opt);
            return o->id;
        }
        if (eq != NULL) {
            a->arg = eq + 1;
            return o->id;
        }
        return take_next(a, o);
    }
    /* A short option: "-x", "-x value" or "-xvalue". */
    snprintf(a->optbuf, sizeof(a->optbuf), "-%c", s[1]);
    a->opt = a->optbuf;
    if ((o = find_short(a, s[1])) == NULL)
        return error(a, "unknown option %s", s);
    if (!o->has_arg) {
        if (s[2] != '\0')
            return error(a, "unknown option %s", s);
        return o->id;
    }
    if (s[2] != '\0') {
        a->arg = s + 2;
        return o->id;
    }
    return take_next(a, o);
}

int shoal_cli_args_u64(const char *opt, const char *value, uint64_t min, uint64_t max,
                       uint64_t *out, char *err, size_t errsize)
{
    if (shoal_util_parse_u64(value, strlen(value), min, max, out) == 0)
        return 0;
    if (min == 0 && max == UINT64_MAX)
        snprintf(err, errsize, "%s needs a whole number, not \"%.40s\"", opt, value);
    else
        snprintf(err, errsize, "%s needs a number from %llu to %llu, not \"%.40s\"", opt,
                 (unsigned long long)min, (unsigned long long)max, value);
    return -1;
}
