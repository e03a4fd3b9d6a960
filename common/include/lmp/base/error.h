/* Error codes shared by the common library: 0 is success, failures are negative.
 * Each code says what the caller must do: LMP_ERETRY and LMP_ENOMEM are faults of
 * the environment (try the same thing again later); every other code is final for
 * the input that caused it (for a consumed event: dead-letter it). */
#ifndef LMP_ERROR_H
#define LMP_ERROR_H

enum {
  LMP_OK = 0,
  LMP_ENOMEM = -1,    /* allocation failed: retry later */
  LMP_EINVAL = -2,    /* bad argument or value */
  LMP_EFRAME = -3,    /* message framing is not one the codec reads */
  LMP_ESCHEMA = -4,   /* unknown schema fingerprint or event type */
  LMP_EDECODE = -5,   /* Avro body does not decode against its schema */
  LMP_ETOOBIG = -6,   /* input or output over a bound */
  LMP_EDB = -7,       /* the database refused the statement for its content: final */
  LMP_EKAFKA = -8,    /* broker or client error */
  LMP_EIO = -9,       /* file or socket error */
  LMP_ECONFIG = -10,  /* configuration value refused */
  LMP_EREJECT = -11,  /* event is well formed but its values are invalid: dead-letter it */
  LMP_EFATAL = -12,   /* unrecoverable: the process must exit */
  LMP_ERETRY = -13,   /* the environment failed (database away, deadlock, serialization
                       * failure, timeout): the same work may succeed later */
};

/* A short English description of an lmp error code. */
const char *lmp_strerror(int err);
/* Whether err is a fault of the environment, so the work is retried, not refused. */
int lmp_error_is_retry(int err);

#endif
