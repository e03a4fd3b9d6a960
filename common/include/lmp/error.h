/* Error codes shared by the common library: 0 is success, failures are negative. */
#ifndef LMP_ERROR_H
#define LMP_ERROR_H

enum {
  LMP_OK = 0,
  LMP_ENOMEM = -1,    /* allocation failed */
  LMP_EINVAL = -2,    /* bad argument or value */
  LMP_EFRAME = -3,    /* message framing is not single-object Avro */
  LMP_ESCHEMA = -4,   /* unknown schema fingerprint or event type */
  LMP_EDECODE = -5,   /* Avro body does not decode against its schema */
  LMP_ETOOBIG = -6,   /* input over a configured bound */
  LMP_EDB = -7,       /* database unreachable or transaction failed (transient) */
  LMP_EKAFKA = -8,    /* broker or client error (transient) */
  LMP_EIO = -9,       /* file or socket error */
  LMP_ECONFIG = -10,  /* configuration value refused */
  LMP_EREJECT = -11,  /* event is well formed but its values are invalid: dead-letter it */
  LMP_EFATAL = -12,   /* unrecoverable: the process must exit */
};

/* A short English description of an lmp error code. */
const char *lmp_strerror(int err);

#endif
