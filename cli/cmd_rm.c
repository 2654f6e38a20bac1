/*
 * cmd_rm - `shoal rm NAME...`: DELETE /v1/functions/NAME for each name.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "url.h"

static int rm_one(shoal_cli_t *cli, const char *name)
{
    char path[512], what[128];
    shoal_cli_http_req_t req = {.method = "DELETE", .path = path, .max_mem = 1u << 20};
    shoal_cli_http_resp_t resp;
    json_t *root, *ver;
    int rc;

    snprintf(what, sizeof(what), "rm %.80s", name);
    if (name[0] == '\0' || shoal_cli_url_function_path(path, sizeof(path), name, "") < 0)
        return shoal_cli_usage_error("rm", "NAME is empty or too long");
    if ((rc = shoal_cli_request(cli, what, &req, &resp)) != SHOAL_CLI_EXIT_OK)
        return rc;
    root = resp.len ? json_loadb(resp.body, resp.len, 0, NULL) : NULL;
    ver = json_object_get(root, "version");
    if (json_is_integer(ver))
        printf("deleted %.80s (was version %lld)\n", name, (long long)json_integer_value(ver));
    else
        printf("deleted %.80s\n", name);
    json_decref(root);
    shoal_cli_http_resp_free(&resp);
    return SHOAL_CLI_EXIT_OK;
}

static int rm_run(shoal_cli_t *cli, int argc, char **argv)
{
    static const shoal_cli_opt_t opts[] = {SHOAL_CLI_COMMON_OPTS};
    const char *names[256];
    size_t n = 0;
    shoal_cli_args_t a;
    int id, rc;

    shoal_cli_args_init(&a, argc, argv, opts, sizeof(opts) / sizeof(opts[0]));
    while ((id = shoal_cli_args_next(&a)) != SHOAL_CLI_ARGS_END) {
        if (id == SHOAL_CLI_ARGS_POSITIONAL && n < sizeof(names) / sizeof(names[0])) {
            names[n++] = a.arg;
            continue;
        }
        if ((rc = shoal_cli_common(cli, &shoal_cli_cmd_rm, &a, id)) >= 0)
            return rc;
    }
    if (n == 0)
        return shoal_cli_usage_error("rm", "needs NAME");
    rc = SHOAL_CLI_EXIT_OK;
    /* Each name is tried even when an earlier one failed; each failure prints its line. */
    for (size_t i = 0; i < n; i++)
        if (rm_one(cli, names[i]) != SHOAL_CLI_EXIT_OK)
            rc = SHOAL_CLI_EXIT_FAIL;
    return rc;
}

const shoal_cli_cmd_t shoal_cli_cmd_rm = {
    "rm",
    "delete functions",
    "Usage: shoal rm NAME...\n"
    "\n"
    "Deletes each function (DELETE /v1/functions/NAME). Invocations that start afterwards get\n"
    "404. Version numbers are never reused: deploying the name again continues from the last\n"
    "version.\n"
    "\n"
    "Options:\n"
    "  --url URL      the API (default: $SHOAL_URL, else " SHOAL_CLI_DEFAULT_URL ")\n"
    "  --token TOKEN  the API token (default: $SHOAL_TOKEN, else HOME/token)\n"
    "  --home DIR     where the token file is: DIR/token (default ./.shoal)\n"
    "  -v, --verbose  print whole error messages\n"
    "  -h, --help     show this help\n",
    rm_run,
};
