/*
 * args - the command-line option parser every `shoal` command uses.
 *
 * Long options (--name, --name=value, --name value), short options (-x, -x value, -xvalue), "--"
 * to end the options, and positional arguments anywhere among the options, so that
 * `shoal deploy hello hello.so --timeout-ms 100` works. "-" on its own is a positional argument.
 * Unlike getopt it keeps no global state: a parser is a caller-owned value, which makes it easy to
 * test and to run once per command.
 */
#ifndef SHOAL_CLI_ARGS_H
#define SHOAL_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>

/* One option a command accepts. */
typedef struct {
    const char *name; /* long name without the "--", or NULL */
    char short_name;  /* single letter after "-", or 0 */
    int has_arg;      /* whether the option takes a value */
    int id;           /* > 0; what shoal_cli_args_next returns for it */
} shoal_cli_opt_t;

/* What shoal_cli_args_next returns besides an option's id. */
enum {
    SHOAL_CLI_ARGS_END = 0,         /* no arguments left */
    SHOAL_CLI_ARGS_POSITIONAL = -1, /* a positional argument, in a->arg */
    SHOAL_CLI_ARGS_ERROR = -2,      /* a usage error, described in a->err */
};

/* A parser over argv[0..argc-1] (argv[0] is an argument, not a program name). Fields other than
 * arg, opt and err are private. */
typedef struct {
    int argc;
    char **argv;
    const shoal_cli_opt_t *opts;
    size_t nopts;
    int i;           /* index of the next argv entry */
    int only_args;   /* set after "--" */
    const char *arg; /* the value of the last option, or the positional argument; else NULL */
    const char *opt; /* the last option as spelled ("--timeout-ms", "-d"), for messages */
    char optbuf[64]; /* backing store for opt when it was spelled "--name=value" */
    char err[160];   /* the last usage error, e.g. "unknown option --foo" */
} shoal_cli_args_t;

/* Starts parsing argv with the nopts options in opts (which must outlive the parser). */
void shoal_cli_args_init(shoal_cli_args_t *a, int argc, char **argv, const shoal_cli_opt_t *opts,
                         size_t nopts);

/* Returns the next option's id, SHOAL_CLI_ARGS_POSITIONAL, SHOAL_CLI_ARGS_END or
 * SHOAL_CLI_ARGS_ERROR (an unknown option, a missing value, or a value given to an option that
 * takes none). */
int shoal_cli_args_next(shoal_cli_args_t *a);

/* Parses an option's value as a decimal integer in [min, max]. 0, or -1 with a message naming
 * the option in err ("--slots needs a number from 1 to 4096, not \"x\"", or "... needs a whole
 * number ..." when the range is 0..UINT64_MAX, i.e. left to the server to check). */
int shoal_cli_args_u64(const char *opt, const char *value, uint64_t min, uint64_t max,
                       uint64_t *out, char *err, size_t errsize);

#endif
