/* The daemons of the flow and their HTTP ports in the local stack, from deploy/daemons. */
#ifndef LMP_DAEMONS_H
#define LMP_DAEMONS_H

struct lmp_daemon {
  const char *name; /* NULL ends the table */
  int port;         /* public: probes, metrics, public routes */
  int admin_port;   /* admin routes */
};

extern const struct lmp_daemon lmp_daemons[];

#endif
