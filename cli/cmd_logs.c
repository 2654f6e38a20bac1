/*
 * cmd_logs - `shoal logs NAME`: GET /v1/functions/NAME/logs, the function's recent log lines,
 * printed one per line; with --follow, polled for new ones until interrupted.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "url.h"

#define LOGS_MAX (64u << 20)
#define FOLLOW_POLL_MS 500

enum { OPT_TAIL = 1, OPT_INVOCATION, OPT_FOLLOW, OPT_JSON };

typedef struct {
    const char *name;
    const char *invocation;
    uint64_t tail;
    int follow, json;
    uint64_t next; /* the last line's seq seen: ?since= of the next poll */
} logs_t;

/* Prints the lines of one answer; 0, or -1 when it is not what the API answers. */
static int print_lines(logs_t *l, json_t *root)
{
    json_t *lines = json_object_get(root, "lines"), *line, *next = json_object_get(root, "next");
    size_t i;

    if (!json_is_array(lines) || !json_is_integer(next))
        return -1;
    json_array_foreach(lines, i, line)
    {
        const char *when = json_string_value(json_object_get(line, "time"));
        const char *id = json_string_value(json_object_get(line, "invocation_id"));
        const char *text = json_string_value(json_object_get(line, "text"));
        json_t *rank = json_object_get(line, "rank");

        if (when == NULL || id == NULL || text == NULL)
            return -1;
        if (json_is_integer(rank))
            printf("%s %s#%lld %s\n", when, id, (long long)json_integer_value(rank), text);
        else
            printf("%s %s %s\n", when, id, text);
    }
    l->next = (uint64_t)json_integer_value(next);
    fflush(stdout);
    return 0;
}

static int fetch(shoal_cli_t *cli, logs_t *l, int first)
{
    char path[1024], num[32], what[128];
    shoal_cli_http_req_t req = {.method = "GET", .path = path, .max_mem = LOGS_MAX};
    shoal_cli_http_resp_t resp;
    json_t *root;
    int rc, bad;

    snprintf(what, sizeof(what), "logs %.80s", l->name);
    if (shoal_cli_url_function_path(path, sizeof(path), l->name, "/logs") < 0)
        return shoal_cli_usage_error("logs", "NAME is too long");
    /* The first answer is the tail; later polls ask for everything after the last line seen. */
    snprintf(num, sizeof(num), "%llu", (unsigned long long)(first ? l->tail : 10000));
    shoal_cli_url_query_add(path, sizeof(path), "tail", num);
    if (!first) {
        snprintf(num, sizeof(num), "%llu", (unsigned long long)l->next);
        shoal_cli_url_query_add(path, sizeof(path), "since", num);
    }
    if (l->invocation != NULL &&
        shoal_cli_url_query_add(path, sizeof(path), "invocation", l->invocation) < 0)
        return shoal_cli_usage_error("logs", "--invocation is too long");
    if ((rc = shoal_cli_request(cli, what, &req, &resp)) != SHOAL_CLI_EXIT_OK)
        return rc;
    if (l->json && !l->follow) {
        fwrite(resp.body, 1, resp.len, stdout);
        putchar('\n');
        shoal_cli_http_resp_free(&resp);
        return SHOAL_CLI_EXIT_OK;
    }
    root = json_loadb(resp.body ? resp.body : "", resp.len, 0, NULL);
    shoal_cli_http_resp_free(&resp);
    bad = root == NULL || print_lines(l, root) < 0;
    json_decref(root);
    return bad ? shoal_cli_fail("%s: unexpected answer from the server", what) : SHOAL_CLI_EXIT_OK;
}

static int logs_run(shoal_cli_t *cli, int argc, char **argv)
{
    static const shoal_cli_opt_t opts[] = {{"tail", 'n', 1, OPT_TAIL},
                                           {"invocation", 'i', 1, OPT_INVOCATION},
                                           {"follow", 'f', 0, OPT_FOLLOW},
                                           {"json", 0, 0, OPT_JSON},
                                           SHOAL_CLI_COMMON_OPTS};
    logs_t l = {.tail = 100};
    shoal_cli_args_t a;
    char err[160];
    int id, rc;

    shoal_cli_args_init(&a, argc, argv, opts, sizeof(opts) / sizeof(opts[0]));
    while ((id = shoal_cli_args_next(&a)) != SHOAL_CLI_ARGS_END) {
        if (id == SHOAL_CLI_ARGS_POSITIONAL && l.name == NULL) {
            l.name = a.arg;
        } else if (id == OPT_TAIL) {
            if (shoal_cli_args_u64(a.opt, a.arg, 1, 10000, &l.tail, err, sizeof(err)) < 0)
                return shoal_cli_usage_error("logs", "%s", err);
        } else if (id == OPT_INVOCATION) {
            l.invocation = a.arg;
        } else if (id == OPT_FOLLOW) {
            l.follow = 1;
        } else if (id == OPT_JSON) {
            l.json = 1;
        } else if ((rc = shoal_cli_common(cli, &shoal_cli_cmd_logs, &a, id)) >= 0) {
            return rc;
        }
    }
    if (l.name == NULL || l.name[0] == '\0')
        return shoal_cli_usage_error("logs", "needs NAME");
    if (l.json && l.follow)
        return shoal_cli_usage_error("logs", "--json and --follow do not go together");
    if ((rc = fetch(cli, &l, 1)) != SHOAL_CLI_EXIT_OK || !l.follow)
        return rc;
    for (;;) {
        struct timespec ts = {0, FOLLOW_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
        if ((rc = fetch(cli, &l, 0)) != SHOAL_CLI_EXIT_OK)
            return rc;
    }
}

const shoal_cli_cmd_t shoal_cli_cmd_logs = {
    "logs",
    "show a function's recent log lines",
    "Usage: shoal logs NAME [-n N] [-i ID] [-f] [--json]\n"
    "\n"
    "Prints what the function wrote with shoal_log (GET /v1/functions/NAME/logs), oldest\n"
    "first, one line each:\n"
    "  TIME INVOCATION_ID TEXT\n"
    "TIME is when its worker got the line (UTC); a rank of a group shows as ID#RANK. The\n"
    "controller keeps the recent lines of each function in memory (--log-kib, 256 KiB by\n"
    "default): older lines, and lines from before a controller restart, are gone.\n"
    "\n"
    "Options:\n"
    "  -n, --tail N         the last N lines (default 100, at most 10000)\n"
    "  -i, --invocation ID  only the lines of one invocation (its Shoal-Invocation-Id)\n"
    "  -f, --follow         keep printing new lines as they arrive, until interrupted\n"
    "  --json               print the API's JSON answer instead\n"
    "  --url URL            the API (default: $SHOAL_URL, else " SHOAL_CLI_DEFAULT_URL ")\n"
    "  --token TOKEN        the API token (default: $SHOAL_TOKEN, else HOME/token)\n"
    "  --home DIR           where the token file is: DIR/token (default ./.shoal)\n"
    "  -v, --verbose        print whole error messages\n"
    "  -h, --help           show this help\n",
    logs_run,
};
