/* A growable byte buffer. */
#include "lmp/base/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmp/base/error.h"

int lmp_buf_reserve(struct lmp_buf *b, size_t extra) {
  if (b->len + extra + 1 <= b->cap)
    return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->len + extra + 1) {
    if (cap > ((size_t)-1) / 2)
      return LMP_ENOMEM;
    cap *= 2;
  }
  char *p = realloc(b->data, cap);
  if (p == NULL)
    return LMP_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int lmp_buf_append(struct lmp_buf *b, const void *p, size_t n) {
  int r = lmp_buf_reserve(b, n);
  if (r < 0)
    return r;
  if (n)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int lmp_buf_puts(struct lmp_buf *b, const char *s) { return lmp_buf_append(b, s, strlen(s)); }

int lmp_buf_printf(struct lmp_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    return LMP_EINVAL;
  int r = lmp_buf_reserve(b, (size_t)n);
  if (r < 0)
    return r;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

void lmp_buf_reset(struct lmp_buf *b) {
  b->len = 0;
  if (b->data)
    b->data[0] = '\0';
}

void lmp_buf_free(struct lmp_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

char *lmp_buf_steal(struct lmp_buf *b) {
  char *p = b->data;
  b->data = NULL;
  b->len = b->cap = 0;
  return p;
}
