/*
 * arena - the shared memory of one group on one node: a sealed memfd that the worker creates and
 * every rank of the group maps whole. transport/coll.c runs the collectives on it.
 *
 * Layout (all offsets from the start of the memfd; the layout is a pure function of the number of
 * ranks N and the data capacity, so every process computes it itself and never takes an offset of
 * the layout from shared memory):
 *
 *   0              shoal_arena_hdr        one page: magic, version, N, sizes, deadline, failure
 *                                         word, bump pointer of the data area
 *   ctl_off        shoal_arena_ctl[N]     per rank: its futex words (collective progress, p2p
 *                                         doorbells) and SHOAL_ARENA_SLOTS collective descriptors
 *   parts_off      shoal_arena_part[N][SLOTS][N]   per rank and descriptor slot, the (offset,
 *                                         length) of the part meant for each peer (scatter,
 *                                         shuffle)
 *   mbox_off       shoal_arena_mbox[N][N] per ordered pair (src, dst), a ring of
 *                                         SHOAL_ARENA_MBOX_SLOTS posted messages for send/recv
 *   data_off       data area              capacity bytes, 2 MiB aligned; parts and messages live
 *                                         here, each written once by its producer and read in
 *                                         place by its consumers
 *
 * The memfd is sparse: ftruncate reserves the whole capacity (at least 1 GiB per group is the
 * intent), every process maps it whole (virtual space is cheap) and a page is only allocated when
 * first written. Data space is handed out by one shared bump allocator (an atomic compare-and-swap
 * on hdr.bump): whatever rank needs the space gets it, and nothing is freed piecemeal, because
 * a buffer handed to a function stays valid until its invocation (the group) ends. The worker
 * frees everything at once with shoal_arena_destroy, or keeps the memfd warm for the next group
 * of the same function with shoal_arena_reset (fresh tmpfs pages cost a fault and a zeroing
 * each; reused ones cost nothing).
 *
 * Trust: the ranks run untrusted code and can write anything anywhere in the arena. The memfd is
 * sealed (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) so no one can truncate it under a mapping
 * (which would turn accesses into SIGBUS). The worker-side calls (create, reset, set_deadline,
 * abort, failure, destroy) write only fixed, self-computed places and read nothing from the arena
 * but the failure word, whose value is range-checked; they cannot be steered by its contents.
 * Rank-side code (coll.c) copies every value it reads from a peer once into private memory and
 * checks offsets and lengths with shoal_arena_view before touching data.
 *
 * Waiting: every blocking wait in the group goes through shoal_arena_wait, which spins a few
 * microseconds and then sleeps with FUTEX_WAIT_BITSET (shared, not PRIVATE: the waiters are
 * different processes) until the word changes, the group's absolute CLOCK_MONOTONIC deadline
 * (-ETIMEDOUT) or a failure is recorded (-ECONNABORTED). A failure is recorded by a single
 * compare-and-swap on hdr.failure (the first one wins); shoal_arena_abort then sets
 * SHOAL_ARENA_KICK in every futex word of every rank and wakes all their waiters, so a waiter
 * that had read the word just before the abort still fails its FUTEX_WAIT with EAGAIN instead of
 * sleeping through it.
 */
#ifndef SHOAL_TRANSPORT_ARENA_H
#define SHOAL_TRANSPORT_ARENA_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SHOAL_ARENA_MAGIC 0x41524853u /* "SHRA" as little-endian bytes */
#define SHOAL_ARENA_VERSION 1
/* Largest group one arena serves (the header grows as N squared). */
#define SHOAL_ARENA_MAX_RANKS 256
/* Collective descriptors per rank: how many collectives a rank may run ahead of the slowest. */
#define SHOAL_ARENA_SLOTS 4
/* Messages a sender may post to one receiver before send blocks until the receiver catches up. */
#define SHOAL_ARENA_MBOX_SLOTS 32
/* Data capacity used when create is passed 0, and the largest accepted. */
#define SHOAL_ARENA_DEFAULT_DATA (4ull << 30)
#define SHOAL_ARENA_MAX_DATA (1ull << 40)
/* The data area starts and ends on this alignment (a huge page, should tmpfs use them). */
#define SHOAL_ARENA_DATA_ALIGN (2ull << 20)

/* Bits of every futex word in shoal_arena_ctl: bit 31 is set by shoal_arena_abort to make
 * sleepers fail their futex compare; bit 30 (state words only) means the rank left the group. */
#define SHOAL_ARENA_KICK 0x80000000u
#define SHOAL_ARENA_GONE 0x40000000u

/* Why a group failed, as recorded by shoal_arena_abort (by the worker or by a rank). */
enum {
    SHOAL_ARENA_FAIL_NONE = 0,
    SHOAL_ARENA_FAIL_CRASHED = 1,   /* the rank's process died */
    SHOAL_ARENA_FAIL_TIMEOUT = 2,   /* the rank (or the group) ran past the deadline */
    SHOAL_ARENA_FAIL_LEFT = 3,      /* the rank returned from shoal_main while peers needed it */
    SHOAL_ARENA_FAIL_PROTOCOL = 4,  /* mismatched collectives, bad arguments or a corrupt arena;
                                       the rank is the one that detected it */
    SHOAL_ARENA_FAIL_NOSPACE = 5,   /* the data area is full */
    SHOAL_ARENA_FAIL_CANCELLED = 6, /* the worker ended the group (e.g. the invocation was
                                       cancelled or the worker is shutting down) */
    SHOAL_ARENA_FAIL_UNKNOWN = 7,   /* the failure word holds a value no one should have written */
    SHOAL_ARENA_FAIL_MAX = 7
};

/* ---- The shared-memory format. Identical in every process of one build. ---- */

typedef struct {
    uint32_t magic;
    uint32_t version;
    uint32_t nranks;
    uint32_t generation; /* bumped by every reset: tells groups on a reused memfd apart */
    uint64_t ctl_off, parts_off, mbox_off, data_off, data_size, total_size;
    _Atomic uint64_t deadline_ns; /* absolute CLOCK_MONOTONIC; 0 = none. Written by the worker. */
    /* How many bytes at the start of the data area still have pages from an earlier group (a
     * hint for shoal_arena_prefault; written by the worker's reset). */
    _Atomic uint64_t warm_bytes;
    uint8_t pad0[64 - 16];
    /* 0, or reason | (uint64_t)(uint32_t)rank << 32 of the first recorded failure. */
    _Atomic uint64_t failure;
    uint8_t pad1[64 - 8];
    /* Next free byte of the data area (an offset from data_off). */
    _Atomic uint64_t bump;
    uint8_t pad2[64 - 8];
} shoal_arena_hdr;

/* A collective descriptor: what a rank entered in its seq-th collective, in slot seq % SLOTS. */
typedef struct {
    uint32_t seq;   /* the rank's collective sequence number, from 1 */
    uint32_t kind;  /* coll.c's collective kind */
    int32_t root;   /* -1 if the collective has none */
    uint32_t dtype; /* reduce: dtype | op << 8 */
    uint64_t count; /* reduce: elements */
    uint64_t off;   /* data offset of this rank's contribution (bcast, gather, reduce staging) */
    uint64_t len;   /* its length in bytes */
    uint8_t pad[24];
} shoal_arena_slot;

/* Per-rank control block. Each futex word sits on its own cache line with the count of processes
 * sleeping on it, which lets the writer skip the FUTEX_WAKE system call when no one sleeps. */
typedef struct {
    /* Collective progress (bits 0..29: seq << 2 | phase, wrapping) | GONE | KICK. Written by the
     * rank (compare-and-swap, so that KICK set by others survives). */
    _Atomic uint32_t state;
    _Atomic uint32_t state_waiters;
    uint8_t pad0[64 - 8];
    /* Rung (incremented) by any rank that posts a message to this rank. */
    _Atomic uint32_t inbox;
    _Atomic uint32_t inbox_waiters;
    uint8_t pad1[64 - 8];
    /* Rung by any rank that consumes a message this rank sent (its ring has room again). */
    _Atomic uint32_t space;
    _Atomic uint32_t space_waiters;
    uint8_t pad2[64 - 8];
    uint8_t pad3[64];
    shoal_arena_slot slot[SHOAL_ARENA_SLOTS];
} shoal_arena_ctl;

typedef struct {
    uint64_t off, len;
} shoal_arena_part;

/* The message ring from one rank to another: head counts posted messages (written by the
 * sender), tail counts consumed ones (written by the receiver); both wrap. */
typedef struct {
    _Atomic uint32_t head;
    uint8_t pad0[64 - 4];
    _Atomic uint32_t tail;
    uint8_t pad1[64 - 4];
    shoal_arena_part slot[SHOAL_ARENA_MBOX_SLOTS];
} shoal_arena_mbox;

_Static_assert(sizeof(shoal_arena_hdr) <= 4096, "header fits its page");
_Static_assert(sizeof(shoal_arena_slot) == 64, "one cache line per descriptor");
_Static_assert(sizeof(shoal_arena_ctl) == 256 + 64 * SHOAL_ARENA_SLOTS, "ctl layout");
_Static_assert(sizeof(shoal_arena_part) == 16, "part layout");

/* ---- Worker side ---- */

typedef struct shoal_arena shoal_arena_t;

/* Creates the sealed memfd of a group of nranks (1..SHOAL_ARENA_MAX_RANKS) with data_size bytes
 * of data capacity (0 = SHOAL_ARENA_DEFAULT_DATA; rounded up to 2 MiB; at most
 * SHOAL_ARENA_MAX_DATA) and the group deadline (absolute CLOCK_MONOTONIC ns, 0 = none), and maps
 * it. The memfd is close-on-exec; pass shoal_arena_fd() to each rank (SCM_RIGHTS). The physical
 * memory a group can use is bounded by data_size plus the header. 0 or -errno. */
int shoal_arena_create(shoal_arena_t **out, int nranks, uint64_t data_size, uint64_t deadline_ns);

/* The size of the memfd (and of every mapping of it) for a group of nranks with data_size bytes
 * of data capacity (0 = the default), or 0 if the arguments are out of range. Virtual space, not
 * memory: a sandbox that limits RLIMIT_AS must leave room for this much. */
uint64_t shoal_arena_size(int nranks, uint64_t data_size);

/* The memfd of an arena from shoal_arena_create (owned by the arena), or -1 for a rank mapping. */
int shoal_arena_fd(const shoal_arena_t *a);

/* Re-arms a created arena for the next group of the same size: clears every control word, the
 * failure and the bump pointer, sets the deadline, and releases the data pages beyond keep_bytes
 * (the first keep_bytes stay allocated so the next group writes into warm pages; they still hold
 * the old group's bytes, so only reuse an arena for the same function). Call it only when no
 * rank of the previous group runs any more (each has destroyed its mapping or been killed).
 * 0 or -errno; -EPERM on a rank mapping. After an error the arena is unusable: destroy it. */
int shoal_arena_reset(shoal_arena_t *a, uint64_t deadline_ns, uint64_t keep_bytes);

/* Sets the group's deadline (absolute CLOCK_MONOTONIC ns, 0 = none); takes effect in waits that
 * start afterwards and, within a few microseconds, in current ones only once they wake. */
void shoal_arena_set_deadline(shoal_arena_t *a, uint64_t deadline_ns);

/* Records that the group failed because of rank (-1 for none in particular) for reason
 * (SHOAL_ARENA_FAIL_*), unless a failure is already recorded, and wakes every waiter of the group:
 * every rank blocked in (or later entering) a collective, send or recv returns -ECONNABORTED.
 * Worker-side safe whatever the arena holds. 0 if this call recorded the failure, -EALREADY if an
 * earlier one had (the waiters are woken either way), -EINVAL for a bad rank or reason. */
int shoal_arena_abort(shoal_arena_t *a, int rank, int reason);

/* Whether the group failed: 0 if not, 1 if so with *rank (-1 if none in particular or the word
 * was garbled) and *reason (SHOAL_ARENA_FAIL_*; UNKNOWN for a garbled word). The word may have been
 * written by a rank, so treat it as a hint: the worker knows which process it saw die. */
int shoal_arena_failure(const shoal_arena_t *a, int *rank, int *reason);

/* A static description of a SHOAL_ARENA_FAIL_* reason ("crashed", "timed out", ...). */
const char *shoal_arena_reason_str(int reason);

/* Unmaps the arena and, for a created arena, closes its memfd: the memory is freed once every
 * rank has unmapped it too. NULL is a no-op. */
void shoal_arena_destroy(shoal_arena_t *a);

/* ---- Rank side ---- */

/* Maps the arena memfd fd as rank of a group of nranks. The layout is computed from nranks and the
 * memfd's size, then checked against the header (-EBADMSG if it disagrees); -EPERM if the memfd is
 * not sealed against shrinking. fd is not kept: the caller may close it at once. */
int shoal_arena_map(shoal_arena_t **out, int fd, int rank, int nranks);

/* This mapping's rank (-1 for the worker's) and the group size. */
int shoal_arena_rank(const shoal_arena_t *a);
int shoal_arena_nranks(const shoal_arena_t *a);

/* Fixed places in the mapping (computed from the private layout, never read from the arena). */
shoal_arena_hdr *shoal_arena_header(const shoal_arena_t *a);
shoal_arena_ctl *shoal_arena_ctl_of(const shoal_arena_t *a, int rank);
/* The part table of owner's descriptor slot: nranks entries, one per peer. */
shoal_arena_part *shoal_arena_parts(const shoal_arena_t *a, int owner, unsigned slot);
shoal_arena_mbox *shoal_arena_mbox_of(const shoal_arena_t *a, int src, int dst);
uint8_t *shoal_arena_data(const shoal_arena_t *a);
uint64_t shoal_arena_data_size(const shoal_arena_t *a);

/* Takes len bytes of the data area (64-byte aligned; page aligned from 4 KiB on) and returns its
 * offset; -ENOMEM when the data area is full. The space is never handed out again in this group. */
int shoal_arena_alloc(shoal_arena_t *a, uint64_t len, uint64_t *off);

/* The address of [off, off+len) in the data area, or NULL if that range is not inside it. A
 * zero-length range gives a valid, non-NULL address. */
void *shoal_arena_view(const shoal_arena_t *a, uint64_t off, uint64_t len);

/* If [p, p+len) lies in the data area, stores its offset in *off and returns 1; else 0. */
int shoal_arena_contains(const shoal_arena_t *a, const void *p, uint64_t len, uint64_t *off);

/* Releases the pages of [off, off+len) of the data area (MADV_REMOVE: they read back as zeros).
 * Only whole pages inside the range are released. */
void shoal_arena_release(shoal_arena_t *a, uint64_t off, uint64_t len);

/* Maps the pages of [off, off+len) of the data area into this process's page tables before the
 * caller writes the range, in one system call instead of a page fault per 4 KiB page: pages kept
 * warm by a reset are mapped (MADV_POPULATE_READ, which maps 16 resident pages per fault and
 * writable, as tmpfs needs no write notification), fresh ones are allocated (MADV_POPULATE_WRITE).
 * Best effort: kernels before 5.14 lack both, and the write then faults as usual. */
void shoal_arena_prefault(shoal_arena_t *a, uint64_t off, uint64_t len);

/* Whether a failure is recorded (cheap: one load). Once seen, it stays seen for this mapping even
 * if a peer clears the word. */
int shoal_arena_failed(shoal_arena_t *a);

/* Sets this rank's own deadline (absolute CLOCK_MONOTONIC ns, 0 = none): its waits end at the
 * earlier of it and the group deadline in the header, which a peer could overwrite. */
void shoal_arena_set_own_deadline(shoal_arena_t *a, uint64_t deadline_ns);

/* Whether what a waiter waits for has happened: > 0 yes, 0 not yet, < 0 an error to return. */
typedef int (*shoal_arena_ready_fn)(void *arg);

/* Waits until ready(arg) is nonzero. ready must read shared state that its writers update
 * before they change *word (and then call shoal_arena_wake on word). Spins briefly, then sleeps
 * on word registered in *waiters. Returns 0, ready's negative value, -ECONNABORTED once a failure
 * is recorded, or -ETIMEDOUT at the group deadline. */
int shoal_arena_wait(shoal_arena_t *a, _Atomic uint32_t *word, _Atomic uint32_t *waiters,
                     shoal_arena_ready_fn ready, void *arg);

/* Wakes the sleepers on word (all of them) if *waiters says there are any. Call it after a
 * sequentially consistent update of word. */
void shoal_arena_wake(_Atomic uint32_t *word, _Atomic uint32_t *waiters);

/* Increments a doorbell word (keeping SHOAL_ARENA_KICK) and wakes its sleepers. */
void shoal_arena_ring(_Atomic uint32_t *word, _Atomic uint32_t *waiters);

#endif
