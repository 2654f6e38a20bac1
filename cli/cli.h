/*
 * cli - the `shoal` command: global options, the command table, and what every command shares
 * (its options --help/--url/--verbose, one-line failures with the right exit status, and a
 * request helper that turns any failed exchange into that one line).
 *
 * Exit status: 0 on success, 1 when a request or the server failed, 2 for a usage error. Every
 * failure prints exactly one line on stderr that starts with "shoal: ".
 */
#ifndef SHOAL_CLI_CLI_H
#define SHOAL_CLI_CLI_H

#include <stddef.h>

#include "args.h"
#include "http.h"

#define SHOAL_CLI_DEFAULT_URL "http://127.0.0.1:8080"
#define SHOAL_CLI_DEFAULT_HOME ".shoal"
#define SHOAL_CLI_URL_MAX 1024

enum { SHOAL_CLI_EXIT_OK = 0, SHOAL_CLI_EXIT_FAIL = 1, SHOAL_CLI_EXIT_USAGE = 2 };

/* What the global options decided; one per process, passed to every command. */
typedef struct {
    char url[SHOAL_CLI_URL_MAX]; /* normalised API base URL */
    int verbose;                 /* -v: print statuses, ids and whole error messages on stderr */
    shoal_cli_http_t *http;      /* created by shoal_cli_http on first use */
    /* The API token (docs/security.md): --token, else $SHOAL_TOKEN, else HOME/token with HOME
     * from --home (default ./.shoal). Looked up when the HTTP client is created. */
    const char *token_arg; /* --token, or NULL */
    const char *home_arg;  /* --home, or NULL */
    char token_from[1100]; /* where the token came from ("" when none was found), or why the
                              file could not be used, for the 401/403 messages */
    int token_sent;
} shoal_cli_t;

/* One subcommand. */
typedef struct {
    const char *name;
    const char *summary; /* one line for `shoal help` */
    const char *usage;   /* the whole text `shoal CMD --help` prints */
    /* Runs the command on the arguments after its name; returns the exit status. */
    int (*run)(shoal_cli_t *cli, int argc, char **argv);
} shoal_cli_cmd_t;

extern const shoal_cli_cmd_t shoal_cli_cmd_up, shoal_cli_cmd_deploy, shoal_cli_cmd_invoke,
    shoal_cli_cmd_ls, shoal_cli_cmd_rm, shoal_cli_cmd_workers, shoal_cli_cmd_help,
    shoal_cli_cmd_result, shoal_cli_cmd_invocations, shoal_cli_cmd_trigger, shoal_cli_cmd_publish,
    shoal_cli_cmd_logs;

/* The command called name, or NULL. */
const shoal_cli_cmd_t *shoal_cli_find(const char *name);

/* The whole CLI: global options, then a command. Returns the exit status. */
int shoal_cli_main(int argc, char **argv);

/* The general usage text (`shoal help`). */
extern const char shoal_cli_usage[];

/* Prints "shoal: <message>" on stderr and returns SHOAL_CLI_EXIT_FAIL. */
int shoal_cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "shoal: <cmd>: <message> (see `shoal <cmd> --help`)" and returns SHOAL_CLI_EXIT_USAGE.
 * cmd may be NULL (or "") for the global options. */
int shoal_cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Sets the API URL from --url or SHOAL_URL. 0, or -1 when the URL is not usable. */
int shoal_cli_set_url(shoal_cli_t *cli, const char *url);

/* The options every command accepts (ids beyond any command's own). Put SHOAL_CLI_COMMON_OPTS
 * last in a command's option table and pass unknown ids to shoal_cli_common. */
enum {
    SHOAL_CLI_OPT_HELP = 1000,
    SHOAL_CLI_OPT_URL,
    SHOAL_CLI_OPT_VERBOSE,
    SHOAL_CLI_OPT_TOKEN,
    SHOAL_CLI_OPT_HOME
};
#define SHOAL_CLI_COMMON_OPTS                                                                      \
    {"help", 'h', 0, SHOAL_CLI_OPT_HELP}, {"url", 0, 1, SHOAL_CLI_OPT_URL},                        \
        {"verbose", 'v', 0, SHOAL_CLI_OPT_VERBOSE}, {"token", 0, 1, SHOAL_CLI_OPT_TOKEN},          \
    {                                                                                              \
        "home", 0, 1, SHOAL_CLI_OPT_HOME                                                           \
    }

/* Handles what a command's parse loop did not: the common options and parse errors. Returns -1
 * to go on parsing, or the exit status to return at once (0 after printing --help, 2 for a
 * usage error). A positional argument here is one too many. */
int shoal_cli_common(shoal_cli_t *cli, const shoal_cli_cmd_t *cmd, shoal_cli_args_t *a, int id);

/* The HTTP client for cli->url, created on first use; NULL (with the failure printed) when
 * libcurl cannot start. */
shoal_cli_http_t *shoal_cli_http(shoal_cli_t *cli);

/* Runs req. Returns 0 when a 2xx answer arrived (resp then holds it); otherwise prints
 * "shoal: <what>: <why>" (or the unreachable message alone), frees resp and returns
 * SHOAL_CLI_EXIT_FAIL. With -v, the whole message of an error is printed first. */
int shoal_cli_request(shoal_cli_t *cli, const char *what, const shoal_cli_http_req_t *req,
                      shoal_cli_http_resp_t *resp);

/* Reports a failed answer (non-2xx) in resp for what: one line, preceded with -v by the whole
 * error message. Returns SHOAL_CLI_EXIT_FAIL. */
int shoal_cli_report(shoal_cli_t *cli, const char *what, const shoal_cli_http_resp_t *resp);

#endif
