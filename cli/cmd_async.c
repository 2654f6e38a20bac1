/*
 * cmd_async - the event commands (issue 6):
 *   shoal result ID [--wait]                       GET /v1/invocations/ID[/output]
 *   shoal invocations [--function F] [--state S] [--limit N]
 *   shoal trigger add NAME JSON | ls | rm NAME     /v1/triggers
 *   shoal publish TOPIC [-d DATA]                  POST /v1/topics/TOPIC (body: -d or stdin)
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "input.h"
#include "view.h"

/* shoal result --wait polls every RESULT_POLL_MS, for at most --timeout seconds. */
#define RESULT_POLL_MS 100
#define RESULT_WAIT_DEFAULT_S 600

enum { OPT_WAIT = 1, OPT_FUNCTION, OPT_STATE, OPT_LIMIT, OPT_DATA, OPT_JSON, OPT_TIMEOUT };

/* GET path and print it as a table (view), or as indented JSON with --json: the way `shoal ls`
 * shows its listing. */
static int get_table(shoal_cli_t *cli, const char *what, const char *path, char *(*view)(json_t *),
                     int as_json)
{
    shoal_cli_http_req_t req = {.method = "GET", .path = path, .max_mem = 1u << 26};
    shoal_cli_http_resp_t resp;
    json_t *root;
    char *text;
    int rc;

    if ((rc = shoal_cli_request(cli, what, &req, &resp)) != SHOAL_CLI_EXIT_OK)
        return rc;
    root = json_loadb(resp.body ? resp.body : "", resp.len, 0, NULL);
    shoal_cli_http_resp_free(&resp);
    if (root == NULL)
        return shoal_cli_fail("%s: the server's answer is not JSON", what);
    text = as_json ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : view(root);
    json_decref(root);
    if (text == NULL)
        return shoal_cli_fail("%s: unexpected answer from the server", what);
    fputs(text, stdout);
    if (as_json)
        fputs("\n", stdout);
    free(text);
    return SHOAL_CLI_EXIT_OK;
}

/* Collects positional arguments; returns -1 to go on, else an exit status. */
static int parse(shoal_cli_t *cli, const shoal_cli_cmd_t *self, int argc, char **argv,
                 const shoal_cli_opt_t *opts, size_t nopts, const char **pos, size_t maxpos,
                 size_t *npos, const char **vals)
{
    shoal_cli_args_t a;
    int id, rc;

    shoal_cli_args_init(&a, argc, argv, opts, nopts);
    while ((id = shoal_cli_args_next(&a)) != SHOAL_CLI_ARGS_END) {
        if (id == SHOAL_CLI_ARGS_POSITIONAL && *npos < maxpos) {
            pos[(*npos)++] = a.arg;
            continue;
        }
        if (id > 0 && id < 16) {
            vals[id] = a.arg ? a.arg : "1";
            continue;
        }
        if ((rc = shoal_cli_common(cli, self, &a, id)) >= 0)
            return rc;
    }
    return -1;
}

/* GET path into memory; prints the body (plus a newline) on success. */
static int get_print(shoal_cli_t *cli, const char *what, const char *path, int raw)
{
    shoal_cli_http_req_t req = {.method = "GET", .path = path, .max_mem = 1u << 30};
    shoal_cli_http_resp_t resp;
    int rc;

    if (raw) {
        req.has_out_fd = 1;
        req.out_fd = STDOUT_FILENO;
        req.max_mem = 0;
    }
    if ((rc = shoal_cli_request(cli, what, &req, &resp)) != SHOAL_CLI_EXIT_OK)
        return rc;
    if (!raw && resp.body)
        printf("%s\n", resp.body);
    shoal_cli_http_resp_free(&resp);
    return SHOAL_CLI_EXIT_OK;
}

static int result_run(shoal_cli_t *cli, int argc, char **argv)
{
    static const shoal_cli_opt_t opts[] = {
        {"wait", 'w', 0, OPT_WAIT}, {"timeout", 't', 1, OPT_TIMEOUT}, SHOAL_CLI_COMMON_OPTS};
    const char *pos[1], *vals[16] = {0};
    size_t n = 0;
    char path[128], err[160];
    uint64_t timeout_s = RESULT_WAIT_DEFAULT_S, polls = 0;
    int rc;

    if ((rc = parse(cli, &shoal_cli_cmd_result, argc, argv, opts, sizeof(opts) / sizeof(opts[0]),
                    pos, 1, &n, vals)) >= 0)
        return rc;
    if (n != 1 || strlen(pos[0]) != 32 || strspn(pos[0], "0123456789abcdef") != 32)
        return shoal_cli_usage_error("result", "needs an invocation ID (32 hex digits)");
    if (vals[OPT_TIMEOUT] != NULL && shoal_cli_args_u64("--timeout", vals[OPT_TIMEOUT], 1, 86400,
                                                        &timeout_s, err, sizeof(err)) < 0)
        return shoal_cli_usage_error("result", "%s", err);
    snprintf(path, sizeof(path), "/v1/invocations/%s", pos[0]);
    for (;; polls++) {
        shoal_cli_http_req_t req = {.method = "GET", .path = path, .max_mem = 1u << 20};
        shoal_cli_http_resp_t resp;
        if ((rc = shoal_cli_request(cli, "result", &req, &resp)) != SHOAL_CLI_EXIT_OK)
            return rc;
        json_t *root = json_loadb(resp.body ? resp.body : "", resp.len, 0, NULL);
        const char *st = json_string_value(json_object_get(root, "state"));
        char state[16];
        snprintf(state, sizeof(state), "%s", st ? st : "?");
        int final = st && strcmp(st, "queued") != 0 && strcmp(st, "running") != 0;
        if (final || !vals[OPT_WAIT]) {
            if (strcmp(state, "succeeded") != 0 || !vals[OPT_WAIT])
                printf("%s\n", resp.body ? resp.body : "");
            json_decref(root);
            shoal_cli_http_resp_free(&resp);
            if (strcmp(state, "succeeded") == 0 && vals[OPT_WAIT]) {
                snprintf(path, sizeof(path), "/v1/invocations/%s/output", pos[0]);
                fflush(stdout);
                return get_print(cli, "result", path, 1);
            }
            return final && strcmp(state, "succeeded") != 0 ? SHOAL_CLI_EXIT_FAIL
                                                            : SHOAL_CLI_EXIT_OK;
        }
        json_decref(root);
        shoal_cli_http_resp_free(&resp);
        if (polls >= timeout_s * (1000 / RESULT_POLL_MS))
            return shoal_cli_fail("result: %s is still %s after %llu s (--timeout)", pos[0], state,
                                  (unsigned long long)timeout_s);
        struct timespec ts = {0, RESULT_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static int invocations_run(shoal_cli_t *cli, int argc, char **argv)
{
    static const shoal_cli_opt_t opts[] = {{"function", 'f', 1, OPT_FUNCTION},
                                           {"state", 's', 1, OPT_STATE},
                                           {"limit", 'n', 1, OPT_LIMIT},
                                           {"json", 0, 0, OPT_JSON},
                                           SHOAL_CLI_COMMON_OPTS};
    const char *pos[1], *vals[16] = {0};
    size_t n = 0;
    char path[512];
    int rc;

    if ((rc = parse(cli, &shoal_cli_cmd_invocations, argc, argv, opts,
                    sizeof(opts) / sizeof(opts[0]), pos, 0, &n, vals)) >= 0)
        return rc;
    snprintf(path, sizeof(path), "/v1/invocations?limit=%.10s%s%.63s%s%.16s",
             vals[OPT_LIMIT] ? vals[OPT_LIMIT] : "100", vals[OPT_FUNCTION] ? "&function=" : "",
             vals[OPT_FUNCTION] ? vals[OPT_FUNCTION] : "", vals[OPT_STATE] ? "&state=" : "",
             vals[OPT_STATE] ? vals[OPT_STATE] : "");
    return get_table(cli, "invocations", path, shoal_cli_view_invocations, vals[OPT_JSON] != NULL);
}

static int trigger_run(shoal_cli_t *cli, int argc, char **argv)
{
    static const shoal_cli_opt_t opts[] = {{"json", 0, 0, OPT_JSON}, SHOAL_CLI_COMMON_OPTS};
    const char *pos[3], *vals[16] = {0};
    size_t n = 0;
    char path[256];
    int rc;

    if ((rc = parse(cli, &shoal_cli_cmd_trigger, argc, argv, opts, sizeof(opts) / sizeof(opts[0]),
                    pos, 3, &n, vals)) >= 0)
        return rc;
    if (n == 1 && strcmp(pos[0], "ls") == 0)
        return get_table(cli, "trigger ls", "/v1/triggers", shoal_cli_view_triggers,
                         vals[OPT_JSON] != NULL);
    if (n == 2 && strcmp(pos[0], "rm") == 0) {
        snprintf(path, sizeof(path), "/v1/triggers/%.100s", pos[1]);
        shoal_cli_http_req_t req = {.method = "DELETE", .path = path, .max_mem = 1u << 20};
        shoal_cli_http_resp_t resp;
        if ((rc = shoal_cli_request(cli, "trigger rm", &req, &resp)) != SHOAL_CLI_EXIT_OK)
            return rc;
        printf("deleted trigger %.100s\n", pos[1]);
        shoal_cli_http_resp_free(&resp);
        return SHOAL_CLI_EXIT_OK;
    }
    if (n == 3 && strcmp(pos[0], "add") == 0) {
        static const char *const hdrs[] = {"Content-Type: application/json", NULL};
        snprintf(path, sizeof(path), "/v1/triggers/%.100s", pos[1]);
        shoal_cli_http_req_t req = {.method = "PUT",
                                    .path = path,
                                    .headers = hdrs,
                                    .body = pos[2],
                                    .body_len = strlen(pos[2]),
                                    .max_mem = 1u << 20};
        shoal_cli_http_resp_t resp;
        if ((rc = shoal_cli_request(cli, "trigger add", &req, &resp)) != SHOAL_CLI_EXIT_OK)
            return rc;
        printf("%s\n", resp.body ? resp.body : "");
        shoal_cli_http_resp_free(&resp);
        return SHOAL_CLI_EXIT_OK;
    }
    return shoal_cli_usage_error("trigger", "use: trigger add NAME JSON | ls | rm NAME");
}

static int publish_run(shoal_cli_t *cli, int argc, char **argv)
{
    static const shoal_cli_opt_t opts[] = {{"data", 'd', 1, OPT_DATA}, SHOAL_CLI_COMMON_OPTS};
    const char *pos[1], *vals[16] = {0};
    size_t n = 0;
    char path[256], err[256];
    shoal_cli_input_t in = {.fd = -1};
    int rc, opened = 0;

    if ((rc = parse(cli, &shoal_cli_cmd_publish, argc, argv, opts, sizeof(opts) / sizeof(opts[0]),
                    pos, 1, &n, vals)) >= 0)
        return rc;
    if (n != 1)
        return shoal_cli_usage_error("publish", "needs TOPIC");
    snprintf(path, sizeof(path), "/v1/topics/%.100s", pos[0]);
    shoal_cli_http_req_t req = {.method = "POST", .path = path, .max_mem = 1u << 20};
    if (vals[OPT_DATA] != NULL) {
        shoal_cli_input_literal(&in, vals[OPT_DATA], strlen(vals[OPT_DATA]));
    } else if (!isatty(STDIN_FILENO)) {
        if (shoal_cli_input_open(&in, "-", err, sizeof(err)) < 0)
            return shoal_cli_fail("publish: %s", err);
        opened = 1;
    } else {
        shoal_cli_input_literal(&in, "", 0);
    }
    shoal_cli_input_apply(&in, &req);
    shoal_cli_http_resp_t resp;
    rc = shoal_cli_request(cli, "publish", &req, &resp);
    if (opened)
        shoal_cli_input_close(&in);
    if (rc != SHOAL_CLI_EXIT_OK)
        return rc;
    printf("%s\n", resp.body ? resp.body : "");
    shoal_cli_http_resp_free(&resp);
    return SHOAL_CLI_EXIT_OK;
}

#define COMMON_HELP                                                                                \
    "  --url URL      the API (default: $SHOAL_URL, else " SHOAL_CLI_DEFAULT_URL ")\n"             \
    "  --token TOKEN  the API token (default: $SHOAL_TOKEN, else HOME/token)\n"                    \
    "  --home DIR     where the token file is: DIR/token (default ./.shoal)\n"                     \
    "  -v, --verbose  print whole error messages\n"                                                \
    "  -h, --help     show this help\n"

const shoal_cli_cmd_t shoal_cli_cmd_result = {
    "result", "show an async invocation (with --wait: wait and print its output)",
    "Usage: shoal result ID [--wait [--timeout S]]\n\nShows the async invocation ID (GET "
    "/v1/invocations/ID).\n"
    "With --wait, polls until it is final; then prints the output when it succeeded, else the\n"
    "invocation (exit 1). A wait gives up (exit 1) after --timeout seconds.\n\nOptions:\n"
    "  -w, --wait       wait for a final state\n"
    "  -t, --timeout S  how long --wait waits, 1..86400 seconds (default 600)\n" COMMON_HELP,
    result_run};
const shoal_cli_cmd_t shoal_cli_cmd_invocations = {
    "invocations", "list async invocations, newest first",
    "Usage: shoal invocations [--function F] [--state S] [--limit N] [--json]\n\n"
    "Lists async invocations (GET /v1/invocations), newest first, as a table:\n"
    "  ID FUNCTION STATE ATTEMPTS CREATED FINISHED ERROR\n\nOptions:\n"
    "  -f, --function F  only invocations of F\n"
    "  -s, --state S     queued, running, succeeded, failed or dead\n"
    "  -n, --limit N     at most N (default 100, at most 1000)\n"
    "  --json            print the API's JSON answer instead\n" COMMON_HELP,
    invocations_run};
const shoal_cli_cmd_t shoal_cli_cmd_trigger = {
    "trigger", "add, list and remove triggers (HTTP routes, timers, topics)",
    "Usage: shoal trigger add NAME JSON | ls [--json] | rm NAME\n\n"
    "ls shows the triggers (GET /v1/triggers) as a table:\n"
    "  NAME FUNCTION TYPE ON LAST_FIRED NEXT_FIRE\n"
    "ON is what fires it (\"POST /hooks/build\", \"every 1000ms\", \"cron 0 * * * *\",\n"
    "\"topic uploads\"); LAST_FIRED and NEXT_FIRE are a timer's (UTC).\n\nExamples:\n"
    "  shoal trigger add build '{\"function\":\"f\",\"type\":\"http\",\"path\":\"/hooks/build\","
    "\"methods\":[\"POST\"]}'\n"
    "  shoal trigger add tick '{\"function\":\"f\",\"type\":\"timer\",\"every_ms\":1000}'\n"
    "  shoal trigger add up '{\"function\":\"f\",\"type\":\"topic\",\"topic\":\"uploads\"}'\n"
    "\nOptions:\n  --json         (ls) print the API's JSON answer instead\n" COMMON_HELP,
    trigger_run};
const shoal_cli_cmd_t shoal_cli_cmd_publish = {
    "publish", "publish an event to a topic",
    "Usage: shoal publish TOPIC [-d DATA]\n\nPOST /v1/topics/TOPIC with DATA, else standard input;"
    "\nprints {\"id\",\"deliveries\"}.\n\nOptions:\n  -d, --data DATA  the event\n" COMMON_HELP,
    publish_run};
