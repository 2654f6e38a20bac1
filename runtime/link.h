/*
 * runtime/link - the instance's ends of direct links (transport/link.h): shoal_call to a leased
 * callee past the worker, and serving direct calls while leased.
 *
 * As a caller, an invocation keeps up to SHOAL_RT_LINKS links (one per callee function) that
 * the worker handed it with LINK records while it waited for a CALL_DONE; it drops them all when
 * its invocation ends (the worker ends the leases on its DONE). A shoal_call to one of those
 * functions whose input fits the link goes through it; anything else, or a link the worker has
 * closed before the callee took the request, goes through the worker as before.
 *
 * As a callee, a leased instance waits on both its down ring and the link's request word and
 * runs each direct call like a local invocation (same meta, depth + 1), until UNLINK. A peer's
 * garbage never crashes us: the call fails (-EPROTO) or the lease ends.
 *
 * Single-threaded like the rest of the runtime; all state hangs off shoal_rt_ctx.links.
 */
#ifndef SHOAL_RUNTIME_LINK_H
#define SHOAL_RUNTIME_LINK_H

#include <stddef.h>

#include "runtime/runtime.h"

#define SHOAL_RT_LINKS 4
/* How long a leased callee spins on its link before sleeping, in ns (SHOAL_SPIN_LINK_NS
 * overrides). Its caller is usually in a loop of calls, so the next request tends to follow the
 * answer within microseconds; past this it sleeps in futex_waitv. */
#define SHOAL_RT_SPIN_LINK_NS 20000u

/* Caller: shoal_call through a link if there is a usable one for function and the input fits.
 * Returns as shoal_call does, or -EAGAIN: nothing was sent, use the worker. */
int shoal_rt_link_call(shoal_rt_ctx *ctx, const char *function, const void *in, size_t len,
                       shoal_buf *out);
/* Either end: a LINK or UNLINK down record (payload in p, len bytes) arrived. LINK takes the
 * memfd from the control socket. 0, or -errno when the channel is broken (-ECONNRESET: the worker
 * closed the socket). */
int shoal_rt_link_record(shoal_rt_ctx *ctx, uint16_t type, const void *p, size_t len);
/* Caller: drops this invocation's links (its end; also before its DONE). */
void shoal_rt_link_drop_calls(shoal_rt_ctx *ctx);
/* Callee: whether leased. */
int shoal_rt_link_leased(const shoal_rt_ctx *ctx);
/* Callee: serves direct calls until a record waits on the down ring. 0 or -errno (broken
 * channel). */
int shoal_rt_link_serve(shoal_rt_ctx *ctx, shoal_main_fn fn);

#endif
