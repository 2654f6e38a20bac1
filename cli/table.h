/*
 * table - the plain-text tables of `shoal ls` and `shoal workers`: a header row and data rows,
 * columns left-aligned, separated by two spaces, sized to their widest cell, with no trailing
 * blanks. Cells are copied and made printable (see shoal_cli_fmt_line), so server text cannot
 * break the layout or reach the terminal as escape sequences. One thread at a time.
 */
#ifndef SHOAL_CLI_TABLE_H
#define SHOAL_CLI_TABLE_H

#include <stddef.h>

typedef struct shoal_cli_table shoal_cli_table_t;

/* A table with ncols columns named by headers (copied). NULL when out of memory. */
shoal_cli_table_t *shoal_cli_table_create(size_t ncols, const char *const *headers);
void shoal_cli_table_destroy(shoal_cli_table_t *t);

/* Appends a row of ncols cells (copied; NULL shows as "-"). 0 or -ENOMEM. */
int shoal_cli_table_add(shoal_cli_table_t *t, const char *const *cells);

/* Number of data rows added so far. */
size_t shoal_cli_table_rows(const shoal_cli_table_t *t);

/* The whole table as text, one line per row each ending in '\n', header first. The caller frees
 * the result; NULL when out of memory. */
char *shoal_cli_table_render(const shoal_cli_table_t *t);

#endif
