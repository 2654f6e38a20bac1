/*
 * cli - see cli.h.
 */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/secret.h"
#include "fmt.h"
#include "url.h"

const char shoal_cli_usage[] =
    "Usage: shoal [--url URL] [--token TOKEN] [--home DIR] [-v] COMMAND [ARGS...]\n"
    "\n"
    "Shoal runs C functions on pre-warmed pools of sandboxed processes.\n"
    "\n"
    "Commands:\n"
    "  up        run a controller and a local worker until Ctrl-C\n"
    "  deploy    upload a function: a shared object (.so) or C source\n"
    "  invoke    call a function and print its output\n"
    "  ls        list the deployed functions\n"
    "  rm        delete functions\n"
    "  workers   list the connected workers and their pools\n"
    "  logs      show a function's recent log lines\n"
    "  result    show an async invocation; --wait for its output\n"
    "  invocations  list async invocations (--function F, --state S)\n"
    "  trigger   add, list and remove triggers (HTTP routes, timers, topics)\n"
    "  publish   publish an event to a topic\n"
    "  help      show the help of a command\n"
    "\n"
    "Options (before or after the command):\n"
    "  --url URL      the API to talk to (default: $SHOAL_URL, else " SHOAL_CLI_DEFAULT_URL ")\n"
    "  --token TOKEN  the API token (default: $SHOAL_TOKEN, else the file HOME/token)\n"
    "  --home DIR     the controller's home, where its token is (default ./.shoal)\n"
    "  -v, --verbose  print statuses, invocation ids and whole error messages on stderr\n"
    "  -h, --help     show help\n"
    "\n"
    "The API needs a token: it is looked up in --token, then $SHOAL_TOKEN, then HOME/token\n"
    "(the controller writes it there; `shoal up` prints it). Prefer SHOAL_TOKEN or the file to\n"
    "--token: a process's arguments are visible to other users.\n"
    "\n"
    "`shoal help COMMAND` or `shoal COMMAND --help` shows a command's options.\n"
    "Exit status: 0 on success, 1 when a request or the server fails, 2 for a usage error.\n";

static const shoal_cli_cmd_t *const commands[] = {
    &shoal_cli_cmd_up,      &shoal_cli_cmd_deploy,      &shoal_cli_cmd_invoke,
    &shoal_cli_cmd_ls,      &shoal_cli_cmd_rm,          &shoal_cli_cmd_workers,
    &shoal_cli_cmd_result,  &shoal_cli_cmd_invocations, &shoal_cli_cmd_trigger,
    &shoal_cli_cmd_publish, &shoal_cli_cmd_logs,        &shoal_cli_cmd_help,
};

const shoal_cli_cmd_t *shoal_cli_find(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i]->name, name) == 0)
            return commands[i];
    return NULL;
}

/* Writes "shoal: " + the formatted message as one printable line, with one write. */
static void vline(const char *prefix, const char *fmt, va_list ap)
{
    char msg[2048], safe[2048];
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);

    if (n < 0)
        msg[0] = '\0';
    shoal_cli_fmt_line(msg, strlen(msg), safe, sizeof(safe));
    fflush(stdout);
    fprintf(stderr, "shoal: %s%s\n", prefix, safe);
}

int shoal_cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vline("", fmt, ap);
    va_end(ap);
    return SHOAL_CLI_EXIT_FAIL;
}

int shoal_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    char msg[1024], safe[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    shoal_cli_fmt_line(msg, strlen(msg), safe, sizeof(safe));
    fflush(stdout);
    if (cmd != NULL && cmd[0] != '\0')
        fprintf(stderr, "shoal: %s: %s (see `shoal %s --help`)\n", cmd, safe, cmd);
    else
        fprintf(stderr, "shoal: %s (see `shoal help`)\n", safe);
    return SHOAL_CLI_EXIT_USAGE;
}

int shoal_cli_set_url(shoal_cli_t *cli, const char *url)
{
    return shoal_cli_url_base(url, cli->url, sizeof(cli->url));
}

int shoal_cli_common(shoal_cli_t *cli, const shoal_cli_cmd_t *cmd, shoal_cli_args_t *a, int id)
{
    switch (id) {
    case SHOAL_CLI_OPT_HELP:
        fputs(cmd->usage, stdout);
        return SHOAL_CLI_EXIT_OK;
    case SHOAL_CLI_OPT_URL:
        if (shoal_cli_set_url(cli, a->arg) < 0)
            return shoal_cli_usage_error(cmd->name, "--url: not an http(s) URL: \"%.200s\"",
                                         a->arg);
        return -1;
    case SHOAL_CLI_OPT_VERBOSE:
        cli->verbose = 1;
        return -1;
    case SHOAL_CLI_OPT_TOKEN:
        if (!shoal_secret_valid(a->arg, strlen(a->arg)))
            return shoal_cli_usage_error(cmd->name, "--token: a token is 16..256 characters of "
                                                    "[A-Za-z0-9-._~+/=]");
        cli->token_arg = a->arg;
        return -1;
    case SHOAL_CLI_OPT_HOME:
        cli->home_arg = a->arg;
        return -1;
    case SHOAL_CLI_ARGS_POSITIONAL:
        return shoal_cli_usage_error(cmd->name, "unexpected argument \"%.200s\"", a->arg);
    case SHOAL_CLI_ARGS_ERROR:
        return shoal_cli_usage_error(cmd->name, "%s", a->err);
    default:
        return shoal_cli_usage_error(cmd->name, "%s is not supported here", a->opt);
    }
}

/* Finds the token (see shoal_cli_t) and gives it to the HTTP client. A token that cannot be
 * found is not an error here: the API may not need one (/healthz, a public function), and a
 * 401 then explains what to do. */
static int find_token(shoal_cli_t *cli)
{
    const char *env = getenv("SHOAL_TOKEN");
    const char *home = cli->home_arg ? cli->home_arg : SHOAL_CLI_DEFAULT_HOME;
    char path[1024], token[SHOAL_SECRET_MAX + 1];
    int err;

    if (cli->token_arg != NULL) {
        snprintf(cli->token_from, sizeof(cli->token_from), "--token");
        return shoal_cli_http_set_token(cli->http, cli->token_arg);
    }
    if (env != NULL && env[0] != '\0') {
        snprintf(cli->token_from, sizeof(cli->token_from), "SHOAL_TOKEN");
        if (shoal_cli_http_set_token(cli->http, env) < 0)
            return shoal_cli_fail("SHOAL_TOKEN is not a token (16..256 characters of "
                                  "[A-Za-z0-9-._~+/=])");
        return 0;
    }
    snprintf(path, sizeof(path), "%s/token", home);
    if ((err = shoal_secret_load(path, token, sizeof(token), NULL)) == 0) {
        snprintf(cli->token_from, sizeof(cli->token_from), "%s", path);
        return shoal_cli_http_set_token(cli->http, token);
    }
    cli->token_sent = -1;
    if (err == -ENOENT)
        snprintf(cli->token_from, sizeof(cli->token_from), "no %s", path);
    else
        snprintf(cli->token_from, sizeof(cli->token_from), "%s: %s", path,
                 err == -EINVAL ? "not a token" : strerror(-err));
    return 0;
}

shoal_cli_http_t *shoal_cli_http(shoal_cli_t *cli)
{
    if (cli->http != NULL)
        return cli->http;
    if ((cli->http = shoal_cli_http_create(cli->url)) == NULL) {
        shoal_cli_fail("cannot start libcurl");
        return NULL;
    }
    if (find_token(cli) != 0) {
        shoal_cli_http_destroy(cli->http);
        cli->http = NULL;
        return NULL;
    }
    if (cli->token_sent == 0)
        cli->token_sent = 1;
    return cli->http;
}

/* The one line for a 401 or 403: what went wrong and how to give the right token. */
static int report_auth(const shoal_cli_t *cli, const char *what, long status)
{
    const char *home = cli->home_arg ? cli->home_arg : SHOAL_CLI_DEFAULT_HOME;

    if (status == 401 && cli->token_sent != 1)
        return shoal_cli_fail("%s: 401 unauthorized: no API token (%s); give --token TOKEN, set "
                              "SHOAL_TOKEN, or point --home at the controller's home (its token "
                              "file is HOME/token)",
                              what, cli->token_from);
    if (status == 401)
        return shoal_cli_fail("%s: 401 unauthorized: the API token from %s was not accepted; "
                              "give the controller's token (HOME/token) with --token or "
                              "SHOAL_TOKEN",
                              what, cli->token_from);
    return shoal_cli_fail("%s: 403 forbidden: the API token from %s is not this controller's; "
                          "give the right one with --token TOKEN, SHOAL_TOKEN, or --home DIR "
                          "(default %s; the token file is HOME/token)",
                          what, cli->token_from, home);
}

int shoal_cli_report(shoal_cli_t *cli, const char *what, const shoal_cli_http_resp_t *resp)
{
    char line[1500];

    if (cli->verbose) {
        char *full = shoal_cli_http_error_message(resp->body, resp->len);
        /* The whole message (e.g. every line of a compiler's diagnostics), as the server sent
         * it but without control characters other than newlines and tabs. */
        if (full != NULL && strchr(full, '\n') != NULL) {
            for (char *p = full; *p; p++)
                if (((unsigned char)*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f)
                    *p = '?';
            fflush(stdout);
            fprintf(stderr, "%s%s", full, full[strlen(full) - 1] == '\n' ? "" : "\n");
        }
        free(full);
    }
    /* The API's own refusal (a function's answer would carry an invocation id). */
    if ((resp->status == 401 || resp->status == 403) && resp->invocation_id[0] == '\0')
        return report_auth(cli, what, resp->status);
    shoal_cli_http_error_text(resp->status, resp->body, resp->len, !cli->verbose, line,
                              sizeof(line));
    return shoal_cli_fail("%s: %s", what, line);
}

int shoal_cli_request(shoal_cli_t *cli, const char *what, const shoal_cli_http_req_t *req,
                      shoal_cli_http_resp_t *resp)
{
    shoal_cli_http_t *h = shoal_cli_http(cli);
    char err[1500];
    int rc;

    memset(resp, 0, sizeof(*resp));
    if (h == NULL)
        return SHOAL_CLI_EXIT_FAIL;
    rc = shoal_cli_http_do(h, req, resp, err, sizeof(err));
    if (rc == SHOAL_CLI_HTTP_UNREACHABLE)
        return shoal_cli_fail("%s", err);
    if (rc != SHOAL_CLI_HTTP_OK)
        return shoal_cli_fail("%s: %s", what, err);
    if (resp->status / 100 != 2) {
        shoal_cli_report(cli, what, resp);
        shoal_cli_http_resp_free(resp);
        return SHOAL_CLI_EXIT_FAIL;
    }
    return SHOAL_CLI_EXIT_OK;
}

/* The global options, before the command; the same ones are accepted after it too. */
int shoal_cli_main(int argc, char **argv)
{
    static const shoal_cli_opt_t opts[] = {SHOAL_CLI_COMMON_OPTS};
    static const shoal_cli_cmd_t global = {"", "", shoal_cli_usage, NULL};
    shoal_cli_t cli = {.verbose = 0};
    const shoal_cli_cmd_t *cmd = NULL;
    const char *env = getenv("SHOAL_URL");
    shoal_cli_args_t a;
    int rc, id, first = 1;

    if (env != NULL && env[0] != '\0') {
        if (shoal_cli_set_url(&cli, env) < 0)
            return shoal_cli_usage_error(NULL, "SHOAL_URL is not an http(s) URL: \"%.200s\"", env);
    } else {
        shoal_cli_set_url(&cli, SHOAL_CLI_DEFAULT_URL);
    }
    /* Parse up to the command name only: argv[1..] are the arguments. */
    shoal_cli_args_init(&a, argc - first, argv + first, opts, sizeof(opts) / sizeof(opts[0]));
    while ((id = shoal_cli_args_next(&a)) != SHOAL_CLI_ARGS_END) {
        if (id == SHOAL_CLI_ARGS_POSITIONAL) {
            if ((cmd = shoal_cli_find(a.arg)) == NULL)
                return shoal_cli_usage_error(NULL, "unknown command \"%.100s\"", a.arg);
            break;
        }
        if (id == SHOAL_CLI_ARGS_ERROR)
            return shoal_cli_usage_error(NULL, "%s", a.err);
        if ((rc = shoal_cli_common(&cli, &global, &a, id)) >= 0)
            return rc;
    }
    if (cmd == NULL) {
        fputs(shoal_cli_usage, stderr);
        return SHOAL_CLI_EXIT_USAGE;
    }
    rc = cmd->run(&cli, a.argc - a.i, a.argv + a.i);
    shoal_cli_http_destroy(cli.http);
    if (fflush(stdout) != 0 && rc == SHOAL_CLI_EXIT_OK)
        rc = shoal_cli_fail("%s: cannot write output", cmd->name);
    return rc;
}

/* `shoal help [COMMAND]`. */
static int help_run(shoal_cli_t *cli, int argc, char **argv)
{
    static const shoal_cli_opt_t opts[] = {SHOAL_CLI_COMMON_OPTS};
    const shoal_cli_cmd_t *cmd = NULL;
    shoal_cli_args_t a;
    int id, rc;

    shoal_cli_args_init(&a, argc, argv, opts, sizeof(opts) / sizeof(opts[0]));
    while ((id = shoal_cli_args_next(&a)) != SHOAL_CLI_ARGS_END) {
        if (id == SHOAL_CLI_ARGS_POSITIONAL && cmd == NULL) {
            if ((cmd = shoal_cli_find(a.arg)) == NULL)
                return shoal_cli_usage_error("help", "unknown command \"%.100s\"", a.arg);
            continue;
        }
        if ((rc = shoal_cli_common(cli, &shoal_cli_cmd_help, &a, id)) >= 0)
            return rc;
    }
    fputs(cmd != NULL ? cmd->usage : shoal_cli_usage, stdout);
    return SHOAL_CLI_EXIT_OK;
}

const shoal_cli_cmd_t shoal_cli_cmd_help = {
    "help",
    "show the help of a command",
    "Usage: shoal help [COMMAND]\n"
    "\n"
    "Shows the options of COMMAND, or the list of commands.\n",
    help_run,
};
