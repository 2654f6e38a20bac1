/*
 * table - see table.h. Cells are kept row-major in one growing array; widths are measured in
 * terminal columns by counting UTF-8 lead bytes, which is right for the ASCII and Latin text the
 * tables hold (names are ASCII by rule).
 */
#include "table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fmt.h"

#define CELL_MAX 256

struct shoal_cli_table {
    size_t ncols;
    size_t nrows; /* including the header */
    size_t cap;   /* rows allocated */
    char **cells; /* nrows * ncols strings */
};

static size_t width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            w++;
    return w;
}

static int add_row(shoal_cli_table_t *t, const char *const *cells)
{
    char **row;

    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        char **c = realloc(t->cells, cap * t->ncols * sizeof(*c));
        if (c == NULL)
            return -ENOMEM;
        t->cells = c;
        t->cap = cap;
    }
    row = t->cells + t->nrows * t->ncols;
    for (size_t i = 0; i < t->ncols; i++) {
        const char *s = cells[i] != NULL ? cells[i] : "-";
        char buf[CELL_MAX];

        shoal_cli_fmt_line(s, strlen(s), buf, sizeof(buf));
        if ((row[i] = strdup(buf[0] != '\0' ? buf : "-")) == NULL) {
            while (i-- > 0)
                free(row[i]);
            return -ENOMEM;
        }
    }
    t->nrows++;
    return 0;
}

shoal_cli_table_t *shoal_cli_table_create(size_t ncols, const char *const *headers)
{
    shoal_cli_table_t *t;

    if (ncols == 0 || (t = calloc(1, sizeof(*t))) == NULL)
        return NULL;
    t->ncols = ncols;
    if (add_row(t, headers) < 0) {
        shoal_cli_table_destroy(t);
        return NULL;
    }
    return t;
}

void shoal_cli_table_destroy(shoal_cli_table_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}

int shoal_cli_table_add(shoal_cli_table_t *t, const char *const *cells)
{
    return add_row(t, cells);
}

size_t shoal_cli_table_rows(const shoal_cli_table_t *t)
{
    return t->nrows - 1;
}

char *shoal_cli_table_render(const shoal_cli_table_t *t)
{
    size_t *w, total = 0, o = 0;
    char *out;

    if ((w = calloc(t->ncols, sizeof(*w))) == NULL)
        return NULL;
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            size_t cw = width(t->cells[r * t->ncols + c]);
            if (cw > w[c])
                w[c] = cw;
        }
    /* Every line is at most the sum of (byte length + padding + separator) plus a newline. */
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++)
            total += strlen(t->cells[r * t->ncols + c]) + w[c] + 2;
        total++;
    }
    if ((out = malloc(total + 1)) == NULL) {
        free(w);
        return NULL;
    }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * t->ncols + c];
            size_t len = strlen(s);

            memcpy(out + o, s, len);
            o += len;
            if (c + 1 < t->ncols) {
                size_t pad = w[c] - width(s) + 2;
                memset(out + o, ' ', pad);
                o += pad;
            }
        }
        out[o++] = '\n';
    }
    out[o] = '\0';
    free(w);
    return out;
}
