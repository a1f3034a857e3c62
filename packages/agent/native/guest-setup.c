/*
 * guest-setup: vmctl's native helper in the guest, started by the init before the agent.
 *
 *   guest-setup
 *
 * Mounts the root for commands (mount-root.c) at once, or, when the init's environment says
 * vmctl_defer_root=1 (a VM that a template is saved from), after the first refresh, that is in
 * each VM restored from the template, which is then its own (clone-refresh.c). Keeps serving
 * refreshes on the `vmctl.setup` port (snapshots of running VMs are refreshed too).
 *
 * One static C process, no fork or exec after a restore: the guest's clock, RNG, hostname and
 * root are done while the Node agent is still waking up. Exits 3 when the VM has no vmctl.setup port
 * (the init then stops restarting it).
 */
#include <stdlib.h>
#include <string.h>

#include "guest-setup.h"

static void after_refresh(void) {
  if (root_wanted()) mount_root();
}

int main(void) {
  const char *defer = getenv("vmctl_defer_root");
  // vmctl_stage=0 (a kernel argument): no staging, for an A/B of it (docs/first-command.md).
  const char *stage = getenv("vmctl_stage");
  if (root_wanted() && !(stage && strcmp(stage, "0") == 0)) stage_system_mounts();
  if (root_wanted() && !(defer && *defer)) mount_root();
  serve_refresh("vmctl.setup", after_refresh);
  return 3;
}
