/*
 * cmd_deploy - `shoal deploy NAME FILE`: PUT /v1/functions/NAME with the file as the body,
 * streamed from disk (a regular file) or read into memory first (a pipe or standard input), and
 * the limits as query parameters. The server checks the ranges, so they live in one place.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "input.h"
#include "url.h"

/* Uploads at least this big get a progress bar (when stderr is a terminal). */
#define PROGRESS_MIN (1u << 20)

enum { OPT_TIMEOUT = 1, OPT_MEMORY, OPT_MIN_WARM, OPT_MAX_INSTANCES, OPT_PUBLIC, OPT_PRIVATE };

static const struct {
    int id;
    const char *query;
} limit_params[] = {
    {OPT_TIMEOUT, "timeout_ms"},
    {OPT_MEMORY, "memory_mb"},
    {OPT_MIN_WARM, "min_warm"},
    {OPT_MAX_INSTANCES, "max_instances"},
};

static int deploy_run(shoal_cli_t *cli, int argc, char **argv)
{
    static const shoal_cli_opt_t opts[] = {
        {"timeout-ms", 0, 1, OPT_TIMEOUT},
        {"memory-mb", 0, 1, OPT_MEMORY},
        {"min-warm", 0, 1, OPT_MIN_WARM},
        {"max-instances", 0, 1, OPT_MAX_INSTANCES},
        {"public", 0, 0, OPT_PUBLIC},
        {"private", 0, 0, OPT_PRIVATE},
        SHOAL_CLI_COMMON_OPTS,
    };
    const shoal_cli_cmd_t *self = &shoal_cli_cmd_deploy;
    const char *name = NULL, *file = NULL;
    char query[256] = "", path[sizeof(query) + 256], what[128], err[256];
    shoal_cli_args_t a;
    shoal_cli_input_t in;
    shoal_cli_http_req_t req = {.method = "PUT", .max_mem = 1u << 20};
    shoal_cli_http_resp_t resp;
    json_t *root = NULL;
    int id, rc;

    shoal_cli_args_init(&a, argc, argv, opts, sizeof(opts) / sizeof(opts[0]));
    while ((id = shoal_cli_args_next(&a)) != SHOAL_CLI_ARGS_END) {
        uint64_t v;
        switch (id) {
        case SHOAL_CLI_ARGS_POSITIONAL:
            if (name == NULL) {
                name = a.arg;
                continue;
            }
            if (file == NULL) {
                file = a.arg;
                continue;
            }
            break;
        case OPT_TIMEOUT:
        case OPT_MEMORY:
        case OPT_MIN_WARM:
        case OPT_MAX_INSTANCES:
            if (shoal_cli_args_u64(a.opt, a.arg, 0, UINT64_MAX, &v, err, sizeof(err)) < 0)
                return shoal_cli_usage_error(self->name, "%s", err);
            for (size_t i = 0; i < sizeof(limit_params) / sizeof(limit_params[0]); i++)
                if (limit_params[i].id == id &&
                    shoal_cli_url_query_add(query, sizeof(query), limit_params[i].query, a.arg) < 0)
                    return shoal_cli_usage_error(self->name, "options too long");
            continue;
        case OPT_PUBLIC:
        case OPT_PRIVATE:
            if (shoal_cli_url_query_add(query, sizeof(query), "public",
                                        id == OPT_PUBLIC ? "1" : "0") < 0)
                return shoal_cli_usage_error(self->name, "options too long");
            continue;
        }
        if ((rc = shoal_cli_common(cli, self, &a, id)) >= 0)
            return rc;
    }
    if (name == NULL || file == NULL)
        return shoal_cli_usage_error(self->name, "needs NAME and FILE");
    /* The name is the server's to judge (bad_name): it gets it percent-encoded, whatever it is. */
    if (name[0] == '\0' || shoal_cli_url_function_path(path, sizeof(path), name, query) < 0)
        return shoal_cli_usage_error(self->name, "NAME is empty or too long");
    snprintf(what, sizeof(what), "deploy %.80s", name);
    if ((rc = shoal_cli_input_open(&in, file, err, sizeof(err))) < 0)
        return shoal_cli_fail("%s: %s", what, err);
    shoal_cli_input_apply(&in, &req);
    req.path = path;
    req.headers = (const char *const[]){"Content-Type: application/octet-stream", NULL};
    req.progress = in.size >= PROGRESS_MIN && isatty(STDERR_FILENO);
    rc = shoal_cli_request(cli, what, &req, &resp);
    shoal_cli_input_close(&in);
    if (rc != SHOAL_CLI_EXIT_OK)
        return rc;

    if (cli->verbose)
        fprintf(stderr, "%ld %s\n", resp.status, shoal_cli_http_reason(resp.status));
    if ((root = json_loadb(resp.body ? resp.body : "", resp.len, 0, NULL)) == NULL) {
        shoal_cli_http_resp_free(&resp);
        return shoal_cli_fail("%s: the server's answer is not JSON", what);
    }
    {
        json_t *ver = json_object_get(root, "version"), *size = json_object_get(root, "size");
        const char *sha = json_string_value(json_object_get(root, "sha256"));
        char sha8[9] = "?";

        if (sha != NULL)
            snprintf(sha8, sizeof(sha8), "%.8s", sha);
        printf("deployed %.80s version %lld (sha256 %s\u2026, %lld bytes)\n", name,
               json_is_integer(ver) ? (long long)json_integer_value(ver) : -1LL, sha8,
               json_is_integer(size) ? (long long)json_integer_value(size) : (long long)in.size);
    }
    json_decref(root);
    shoal_cli_http_resp_free(&resp);
    return SHOAL_CLI_EXIT_OK;
}

const shoal_cli_cmd_t shoal_cli_cmd_deploy = {
    "deploy",
    "upload a function: a shared object (.so) or C source",
    "Usage: shoal deploy NAME FILE [--timeout-ms N] [--memory-mb N] [--min-warm N]\n"
    "                    [--max-instances N] [--public | --private]\n"
    "\n"
    "Uploads FILE as function NAME (PUT /v1/functions/NAME). FILE is a shared object that\n"
    "exports shoal_main (cc -shared -fPIC -I include fn.c -o fn.so) or C source, which the\n"
    "platform compiles; \"-\" reads standard input. Deploying a name again makes a new version\n"
    "that every invocation starting afterwards runs. NAME is 1 to 63 of a-z 0-9 _ -, starting\n"
    "with a letter or digit. Limits left out keep the function's current values (the defaults\n"
    "for a new function); the server checks the ranges.\n"
    "\n"
    "Options:\n"
    "  --timeout-ms N     wall-clock limit of one invocation, 1..900000 (default 60000)\n"
    "  --memory-mb N      memory limit of one instance, 16..16384 (default 256)\n"
    "  --min-warm N       instances kept warm on each worker, 0..64 (default 0)\n"
    "  --max-instances N  concurrent instances on each worker, 1..1024 (default 64)\n"
    "  --public           anyone may invoke it, without the API token (?public=1)\n"
    "  --private          invoking it needs the token again (the default)\n"
    "  --url URL          the API (default: $SHOAL_URL, else " SHOAL_CLI_DEFAULT_URL ")\n"
    "  --token TOKEN      the API token (default: $SHOAL_TOKEN, else HOME/token)\n"
    "  --home DIR         where the token file is: DIR/token (default ./.shoal)\n"
    "  -v, --verbose      print the answer's status and whole error messages on stderr\n"
    "  -h, --help         show this help\n"
    "\n"
    "Prints e.g. \"deployed hello version 3 (sha256 1a2b3c4d\u2026, 15872 bytes)\". Uploads over\n"
    "1 MiB show a progress bar when stderr is a terminal.\n",
    deploy_run,
};
