/* Text for the common library's error codes. */
#include "lmp/base/error.h"

const char *lmp_strerror(int err) {
  switch (err) {
  case LMP_OK: return "success";
  case LMP_ENOMEM: return "out of memory";
  case LMP_EINVAL: return "invalid argument";
  case LMP_EFRAME: return "not an Avro single-object message";
  case LMP_ESCHEMA: return "unknown schema";
  case LMP_EDECODE: return "Avro body does not match its schema";
  case LMP_ETOOBIG: return "input too large";
  case LMP_EDB: return "database error";
  case LMP_EKAFKA: return "Kafka error";
  case LMP_EIO: return "I/O error";
  case LMP_ECONFIG: return "invalid configuration";
  case LMP_EREJECT: return "invalid event";
  case LMP_EFATAL: return "fatal error";
  case LMP_ERETRY: return "temporary failure; retry later";
  default: return "unknown error";
  }
}

int lmp_error_is_retry(int err) { return err == LMP_ERETRY || err == LMP_ENOMEM; }
