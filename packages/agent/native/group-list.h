/*
 * The supplementary groups of a command the spawner runs as a user (spawner.c), sent by the agent
 * in the request's GID field (spawner.ts, from the command root's /etc/group: passwd.ts).
 */
#ifndef VMCTL_GROUP_LIST_H
#define VMCTL_GROUP_LIST_H

#include <sys/types.h>

/**
 * The groups after the first number of a GID field "GID,GROUP,...", in a new array (the caller
 * frees it) with their count in *count: none (NULL, 0) for a bare "GID". Returns -1 with errno
 * EINVAL for a field that is not such a list, ENOMEM when memory is out.
 */
int group_list(const char *field, gid_t **groups, int *count);

#endif
