/* mv_pool.c -- the worker pool (see mv_pool.h): fork-join over parts, workers spinning while
 * busy and sleeping on a condition variable after a while idle. Decoding (mv_infer.c) splits
 * column blocks over it; training (mv_vae.c's side_by_side, Adam) runs halves side by side. */
#include "mv_pool.h"

#include <pthread.h>
#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MV_X86 1
#endif

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t th[MV_POOL_MAXTHREADS];
  uint64_t born[MV_POOL_MAXTHREADS]; /* gen when each worker was created: its first job is the next one */
  int started;
  uint64_t gen;
  int pending, sleepers, inuse, quit;
  mv_part_fn fn;
  void *ctx;
  int nparts;
} POOL = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, {0}, 0, 0, 0, 0, 0, 0, NULL, NULL, 0};

static inline void cpu_relax(void) {
#ifdef MV_X86
  _mm_pause();
#endif
}

static void *worker(void *arg) {
  int part = (int)(intptr_t)arg;
  /* not the current gen: par_run may already have posted the job this worker was created for */
  uint64_t seen = POOL.born[part - 1];
  for (;;) {
    uint64_t g;
    long spins = 0;
    while ((g = __atomic_load_n(&POOL.gen, __ATOMIC_SEQ_CST)) == seen) {
      if (++spins < 100000) {
        cpu_relax();
        continue;
      }
      pthread_mutex_lock(&POOL.mu);
      __atomic_add_fetch(&POOL.sleepers, 1, __ATOMIC_SEQ_CST);
      while (__atomic_load_n(&POOL.gen, __ATOMIC_SEQ_CST) == seen) pthread_cond_wait(&POOL.cv, &POOL.mu);
      __atomic_sub_fetch(&POOL.sleepers, 1, __ATOMIC_SEQ_CST);
      pthread_mutex_unlock(&POOL.mu);
    }
    seen = g;
    if (__atomic_load_n(&POOL.quit, __ATOMIC_SEQ_CST)) break;
    if (part < POOL.nparts) POOL.fn(POOL.ctx, part, POOL.nparts);
    __atomic_sub_fetch(&POOL.pending, 1, __ATOMIC_SEQ_CST);
  }
  return NULL;
}

/* A forked child has none of the parent's workers: start afresh (else it would wait for them). */
static void pool_atfork_child(void) {
  pthread_mutex_t m0 = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t c0 = PTHREAD_COND_INITIALIZER;
  POOL.mu = m0;
  POOL.cv = c0;
  POOL.started = 0;
  POOL.pending = POOL.sleepers = POOL.inuse = 0;
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void pool_atfork_register(void) { pthread_atfork(NULL, NULL, pool_atfork_child); }

/* Stops and joins the workers when the library is unloaded (a Lua state closing dlcloses the module;
 * a worker left spinning in unmapped code would crash the host). */
__attribute__((destructor)) static void pool_shutdown(void) {
  if (POOL.started == 0) return;
  __atomic_store_n(&POOL.quit, 1, __ATOMIC_SEQ_CST);
  pthread_mutex_lock(&POOL.mu);
  __atomic_add_fetch(&POOL.gen, 1, __ATOMIC_SEQ_CST);
  pthread_cond_broadcast(&POOL.cv);
  pthread_mutex_unlock(&POOL.mu);
  for (int i = 0; i < POOL.started; i++) pthread_join(POOL.th[i], NULL);
  POOL.started = 0;
}

void mv_par_run(mv_part_fn fn, void *ctx, int nparts) {
  pthread_once(&atfork_once, pool_atfork_register);
  if (nparts > 1 && !__atomic_exchange_n(&POOL.inuse, 1, __ATOMIC_ACQUIRE)) {
    pthread_mutex_lock(&POOL.mu);
    while (POOL.started < nparts - 1 && POOL.started < MV_POOL_MAXTHREADS - 1) {
      POOL.born[POOL.started] = POOL.gen;
      if (pthread_create(&POOL.th[POOL.started], NULL, worker, (void *)(intptr_t)(POOL.started + 1)) != 0) break;
      POOL.started++;
    }
    pthread_mutex_unlock(&POOL.mu);
    int workers = POOL.started;
    if (workers >= 1) {
      int np = nparts > workers + 1 ? workers + 1 : nparts;
      POOL.fn = fn;
      POOL.ctx = ctx;
      POOL.nparts = np;
      __atomic_store_n(&POOL.pending, workers, __ATOMIC_SEQ_CST);
      __atomic_add_fetch(&POOL.gen, 1, __ATOMIC_SEQ_CST);
      if (__atomic_load_n(&POOL.sleepers, __ATOMIC_SEQ_CST)) {
        pthread_mutex_lock(&POOL.mu);
        pthread_cond_broadcast(&POOL.cv);
        pthread_mutex_unlock(&POOL.mu);
      }
      fn(ctx, 0, np);
      while (__atomic_load_n(&POOL.pending, __ATOMIC_SEQ_CST)) cpu_relax();
      __atomic_store_n(&POOL.inuse, 0, __ATOMIC_RELEASE);
      return;
    }
    __atomic_store_n(&POOL.inuse, 0, __ATOMIC_RELEASE);
  }
  for (int p = 0; p < nparts; p++) fn(ctx, p, nparts);
}

typedef struct {
  void (*fn)(void *ctx, int task);
  void *ctx;
} tasks_job;

static void run_task(void *vctx, int part, int nparts) {
  (void)nparts;
  tasks_job *t = vctx;
  t->fn(t->ctx, part);
}

int mv_par_tasks(void (*fn)(void *ctx, int task), void *ctx, int n) {
  tasks_job t = {fn, ctx};
  mv_par_run(run_task, &t, n);
  return 1;
}
