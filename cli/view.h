/*
 * view - turns the API's JSON answers into the tables `shoal ls`, `shoal workers`, `shoal trigger
 * ls` and `shoal invocations` print. Pure functions of the parsed JSON; they accept a bare array
 * or an object holding it under "functions" / "workers" / "triggers" / "invocations", and show
 * "-" for a field that is missing.
 */
#ifndef SHOAL_CLI_VIEW_H
#define SHOAL_CLI_VIEW_H

#include <jansson.h>

/* The table of GET /v1/functions: NAME VERSION SIZE TIMEOUT MEMORY MIN_WARM MAX UPDATED.
 * malloc'd text (the caller frees), or NULL when root has no list of functions or memory ran
 * out. */
char *shoal_cli_view_functions(json_t *root);

/* The table of GET /v1/workers: NODE SLOTS BUSY STEMS POOLS, where POOLS reads like
 * "hello v3 (2 warm, 1 busy), upper v1 (1 warm)". malloc'd text, or NULL as above. */
char *shoal_cli_view_workers(json_t *root);

/* The table of GET /v1/triggers: NAME FUNCTION TYPE ON LAST_FIRED NEXT_FIRE, where ON says what
 * fires it ("POST /hooks/build", "every 1000ms", "cron 0 * * * *", "topic uploads"); the times
 * are a timer's. malloc'd text, or NULL as above. */
char *shoal_cli_view_triggers(json_t *root);

/* The table of GET /v1/invocations: ID FUNCTION STATE ATTEMPTS CREATED FINISHED ERROR (the error
 * cut to one short line). malloc'd text, or NULL as above. */
char *shoal_cli_view_invocations(json_t *root);

#endif
