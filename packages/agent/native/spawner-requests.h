/* The spawner's request reader (spawner-requests.c): the agent's requests, spawner.c lists them. */
#ifndef VMCTL_SPAWNER_REQUESTS_H
#define VMCTL_SPAWNER_REQUESTS_H

#include <stddef.h>

#define MAX_REQUEST (1 << 20)

/* Handles every complete request at the start of buf; returns how many bytes it used. */
size_t handle(char *buf, size_t used);

#endif
