/* A batch of consumed messages (or a sweep's, or a tick's) and the pipeline's FIFO of
 * them: made at the tail, retired from the head, a failed sweep or tick removed from
 * the tail; freed with everything it holds. Loop thread only. */
#include <stdlib.h>

#include "lmp/base/buf.h"
#include "lmp/base/log.h"
#include "runtime/rt.h"

/* A new batch at the FIFO's tail; it takes raws and msgs (n of each). */
struct batch *lmp__batch_new(struct rt *rt, enum batch_kind kind, struct lmp_raw *raws, void **msgs, size_t n) {
  struct batch *b = calloc(1, sizeof(*b));
  unsigned char *retried = calloc(n ? n : 1, 1);
  if (b == NULL || retried == NULL) {
    lmp_error(NULL, "out of memory for a batch");
    free(b);
    free(retried);
    for (size_t i = 0; i < n; i++)
      rt->ops->release(msgs[i]);
    free(msgs);
    free(raws);
    return NULL; /* offsets not committed: these messages come back after a restart */
  }
  b->kind = kind;
  b->parked_waiting = -1;
  b->raws = raws;
  b->msgs = msgs;
  b->n = n;
  b->ops = rt->ops;
  b->retried = retried;
  b->started_ns = uv_hrtime();
  if (rt->tail)
    rt->tail->next = b;
  else
    rt->head = b;
  rt->tail = b;
  rt->nbatches++;
  return b;
}

void lmp__batch_unlink_head(struct rt *rt) {
  struct batch *b = rt->head;
  rt->head = b->next;
  if (rt->head == NULL)
    rt->tail = NULL;
  rt->nbatches--;
  lmp__batch_free(b);
}

/* The ids of every row the batches ahead of a sweep carry, as a text[] literal: their
 * rows are with the producer, or acknowledged and about to be deleted. The ids are
 * the runtime's own UUIDs. NULL when there are none, or out of memory (then a late
 * acknowledgement may see its row sent twice, which the inbox absorbs). */
char *lmp__batches_in_flight(const struct rt *rt) {
  struct lmp_buf ids = {0};
  for (const struct batch *x = rt->head; x; x = x->next)
    for (size_t i = 0; i < x->nrows; i++)
      if (lmp_buf_printf(&ids, "%s%s", ids.len ? "," : "{", x->rows[i].event_id) < 0) {
        lmp_buf_free(&ids);
        return NULL;
      }
  if (ids.len && lmp_buf_puts(&ids, "}") < 0)
    lmp_buf_free(&ids);
  return lmp_buf_steal(&ids);
}

/* Removes a batch that never committed (a failed sweep or tick): always the youngest. */
void lmp__batch_unlink_tail(struct rt *rt, struct batch *b) {
  struct batch **p = &rt->head;
  while (*p != b)
    p = &(*p)->next;
  *p = NULL;
  rt->tail = NULL;
  for (struct batch *x = rt->head; x; x = x->next)
    rt->tail = x;
  rt->nbatches--;
  lmp__batch_free(b);
}

void lmp__batch_free(struct batch *b) {
  if (b == NULL)
    return;
  for (size_t i = 0; i < b->n && b->msgs; i++)
    b->ops->release(b->msgs[i]);
  free(b->msgs);
  free(b->raws);
  free(b->retried);
  lmp__rows_truncate(b, 0);
  free(b->rows);
  for (size_t i = 0; i < b->ndel; i++)
    free(b->del_ids[i]);
  free(b->del_ids);
  for (size_t i = 0; i < b->npark; i++)
    free(b->park[i].event_id);
  free(b->park);
  free(b->in_flight);
  free(b);
}
