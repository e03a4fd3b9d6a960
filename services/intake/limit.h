/* Rate limits of the front door. */
#ifndef INTAKE_LIMIT_H
#define INTAKE_LIMIT_H

/* Takes one submission from who's allowance of per_min a minute (kind names the
 * family: "partner" or "address"). Returns 0 when it was there, else the seconds
 * until it will be (for Retry-After). Thread-safe. */
int intake_limit_take(const char *kind, const char *who, int per_min);

#endif
