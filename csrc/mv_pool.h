/* mv_pool.h -- a small pool of worker threads (internal to the core), shared by decoding and
 * training. One caller at a time uses the pool; a second caller meanwhile runs its parts
 * serially, so results never depend on who got the pool. */
#ifndef MV_POOL_H
#define MV_POOL_H

#define MV_POOL_MAXTHREADS 8 /* the caller plus up to 7 workers */

typedef void (*mv_part_fn)(void *ctx, int part, int nparts);

/* Runs fn(ctx, part, nparts) for every part 0 .. nparts-1, on the pool when it is free (the
 * caller runs part 0), else one after the other. Returns when every part has run. */
void mv_par_run(mv_part_fn fn, void *ctx, int nparts);

/* Runs fn(ctx, 0 .. n-1) on the worker pool, side by side (serially when the pool is busy,
 * e.g. another thread decoding). Returns 1. */
int mv_par_tasks(void (*fn)(void *ctx, int task), void *ctx, int n);

#endif
