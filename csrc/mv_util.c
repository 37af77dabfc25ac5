/* mv_util.c -- errors, clock, atomic file writes. */
#define _POSIX_C_SOURCE 200809L
#include "mv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int mv_seterr(mv_err *err, int code, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->code = code;
  }
  return code;
}

const char *mv_strerror(int code) {
  switch (code) {
  case MV_OK: return "ok";
  case MV_ENOMEM: return "out of memory";
  case MV_EINVAL: return "invalid argument";
  case MV_ESHAPE: return "shape mismatch";
  case MV_EIO: return "input/output error";
  case MV_EFORMAT: return "malformed data";
  case MV_ERANGE: return "out of range";
  case MV_EUNSUPPORTED: return "not supported";
  case MV_EVERSION: return "needs a newer version";
  default: return "unknown error";
  }
}

double mv_clock(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int mv_write_file_atomic(const char *path, const void *data, size_t len, mv_err *err) {
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 32);
  if (!tmp) return mv_seterr(err, MV_ENOMEM, "out of memory");
  snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    int e = errno;
    free(tmp);
    return mv_seterr(err, MV_EIO, "%s: cannot write: %s", path, strerror(e));
  }
  const unsigned char *p = data;
  size_t left = len;
  while (left > 0) {
    ssize_t w = write(fd, p, left);
    if (w < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      unlink(tmp);
      free(tmp);
      return mv_seterr(err, MV_EIO, "%s: write failed: %s", path, strerror(e));
    }
    p += w;
    left -= (size_t)w;
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    int e = errno;
    unlink(tmp);
    free(tmp);
    return mv_seterr(err, MV_EIO, "%s: write failed: %s", path, strerror(e));
  }
  if (rename(tmp, path) != 0) {
    int e = errno;
    unlink(tmp);
    free(tmp);
    return mv_seterr(err, MV_EIO, "%s: cannot rename into place: %s", path, strerror(e));
  }
  free(tmp);
  return MV_OK;
}
