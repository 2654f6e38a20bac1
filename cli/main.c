/*
 * shoal - the command-line client of Shoal. Everything but main() lives in libcli (cli.c and
 * the cmd_*.c files) so that the unit tests link the same code.
 */
#include "cli.h"

int main(int argc, char **argv)
{
    return shoal_cli_main(argc, argv);
}
