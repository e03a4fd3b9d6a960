/* Submissions per partner and per client address: token buckets, shared by the HTTP
 * workers. A bucket holds a minute's allowance and refills continuously, so a burst
 * up to the allowance goes through and a steady flood is held to the rate. */
#include "limit.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define BUCKETS 4096 /* keys tracked at once; the longest idle one makes room */

struct bucket {
  char key[80];
  double tokens;
  double at; /* seconds, monotonic: when tokens was last brought up to date */
};

static struct bucket buckets[BUCKETS];
static size_t nbuckets;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct bucket *bucket_of(const char *key, double now, int per_min) {
  struct bucket *oldest = NULL;
  for (size_t i = 0; i < nbuckets; i++) {
    if (strcmp(buckets[i].key, key) == 0)
      return &buckets[i];
    if (oldest == NULL || buckets[i].at < oldest->at)
      oldest = &buckets[i];
  }
  /* A bucket idle for a minute is full again: forgetting it changes nothing. */
  struct bucket *b = nbuckets < BUCKETS ? &buckets[nbuckets++] : oldest;
  snprintf(b->key, sizeof(b->key), "%s", key);
  b->tokens = per_min;
  b->at = now;
  return b;
}

int intake_limit_take(const char *kind, const char *who, int per_min) {
  char key[80];
  snprintf(key, sizeof(key), "%s:%s", kind, who);
  double now = now_s(), rate = per_min / 60.0;
  pthread_mutex_lock(&lock);
  struct bucket *b = bucket_of(key, now, per_min);
  b->tokens += (now - b->at) * rate;
  if (b->tokens > per_min)
    b->tokens = per_min;
  b->at = now;
  int wait = 0;
  if (b->tokens >= 1)
    b->tokens -= 1;
  else
    wait = (int)((1 - b->tokens) / rate) + 1;
  pthread_mutex_unlock(&lock);
  return wait;
}
