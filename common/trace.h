/*
 * trace - the platform's own diagnostic log (not a function's shoal_log).
 *
 * Lines go to stderr as "<time> <program>[pid] <level>: message". The level is set once at
 * start-up from SHOAL_LOG (error, warn, info, debug); the default is info. Safe from any thread:
 * each line is formatted into one buffer and written with a single write(2).
 */
#ifndef SHOAL_COMMON_TRACE_H
#define SHOAL_COMMON_TRACE_H

enum { SHOAL_TRACE_ERROR, SHOAL_TRACE_WARN, SHOAL_TRACE_INFO, SHOAL_TRACE_DEBUG };

/* Sets the program name printed on each line and reads SHOAL_LOG. Call once from main. */
void shoal_trace_init(const char *program);
/* From now on, lines that stderr does not take at once (a stuck pipe or socket) are dropped,
 * counted, and the count is said with the next line that fits, instead of the writer waiting.
 * For processes whose event loop must never stall (the worker). Call once from main, after
 * shoal_trace_init and before any thread starts. */
void shoal_trace_nonblocking(void);
/* Writes one line at the given level if the level is enabled. */
void shoal_trace_printf(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define SHOAL_ERROR(...) shoal_trace_printf(SHOAL_TRACE_ERROR, __VA_ARGS__)
#define SHOAL_WARN(...) shoal_trace_printf(SHOAL_TRACE_WARN, __VA_ARGS__)
#define SHOAL_INFO(...) shoal_trace_printf(SHOAL_TRACE_INFO, __VA_ARGS__)
#define SHOAL_DEBUG(...) shoal_trace_printf(SHOAL_TRACE_DEBUG, __VA_ARGS__)

#endif
