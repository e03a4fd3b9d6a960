/* A growable byte buffer. */
#ifndef LMP_BUF_H
#define LMP_BUF_H

#include <stddef.h>

struct lmp_buf {
  char *data;  /* always NUL-terminated when non-NULL */
  size_t len;  /* bytes used, excluding the terminator */
  size_t cap;  /* bytes allocated */
};

int lmp_buf_reserve(struct lmp_buf *b, size_t extra);
int lmp_buf_append(struct lmp_buf *b, const void *p, size_t n);
int lmp_buf_puts(struct lmp_buf *b, const char *s);
int lmp_buf_printf(struct lmp_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lmp_buf_reset(struct lmp_buf *b);
void lmp_buf_free(struct lmp_buf *b);
/* Hands the data to the caller (who frees it) and empties the buffer. */
char *lmp_buf_steal(struct lmp_buf *b);

#endif
