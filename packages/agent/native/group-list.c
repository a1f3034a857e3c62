/*
 * Parses the groups the agent sends with a command's GID (group-list.h): the list rides in the GID
 * field ("GID,GROUP,..."), so the request's framing is unchanged. The agent and the spawner come
 * from one runtime disk (hashed into the template's key together): no other spawner reads it.
 */
#include "group-list.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int group_list(const char *field, gid_t **groups, int *count) {
  *groups = NULL, *count = 0;
  const char *at = strchr(field, ',');
  if (!at) return 0;
  int room = 0;
  for (const char *c = at; *c; c++) room += *c == ',';
  gid_t *list = calloc((size_t)room, sizeof *list);
  if (!list) return errno = ENOMEM, -1;
  int n = 0;
  while (*at == ',') {
    char *end;
    errno = 0;
    unsigned long gid = strtoul(at + 1, &end, 10);
    if (end == at + 1 || errno || gid > (gid_t)-2 || (*end && *end != ',')) break;
    list[n++] = (gid_t)gid;
    at = end;
  }
  if (*at) return free(list), errno = EINVAL, -1;
  *groups = list, *count = n;
  return 0;
}
