/* Structured logs: one JSON object per line on stderr, carrying the request id. */
#ifndef LMP_LOG_H
#define LMP_LOG_H

enum lmp_log_level { LMP_LOG_DEBUG, LMP_LOG_INFO, LMP_LOG_WARN, LMP_LOG_ERROR };

/* Names the program in every line; returns LMP_ECONFIG for an unknown level name. */
int lmp_log_init(const char *service, const char *level);
int lmp_log_level_parse(const char *name, enum lmp_log_level *out);

/* request_id may be NULL when the line concerns no onboarding. */
void lmp_log(enum lmp_log_level level, const char *request_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define lmp_debug(rid, ...) lmp_log(LMP_LOG_DEBUG, rid, __VA_ARGS__)
#define lmp_info(rid, ...) lmp_log(LMP_LOG_INFO, rid, __VA_ARGS__)
#define lmp_warn(rid, ...) lmp_log(LMP_LOG_WARN, rid, __VA_ARGS__)
#define lmp_error(rid, ...) lmp_log(LMP_LOG_ERROR, rid, __VA_ARGS__)

#endif
