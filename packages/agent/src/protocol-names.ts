// The names the host and the guest agent must agree on, in one place for both sides (the host's
// QEMU command line and supervisor; the guest's agent-main.ts). native/guest-setup.c, being C,
// keeps its own copy of SETUP_PORT_NAME.

/** The virtio-serial port the agent's multiplexed channels travel on: QEMU names it, the guest finds it by name. */
export const AGENT_PORT_NAME = 'vmctl.agent'

/** The virtio-serial port on which guest-setup serves clone refreshes. */
export const SETUP_PORT_NAME = 'vmctl.setup'

/** The grpc.health.v1 service whose SERVING status means the agent is ready. */
export const AGENT_HEALTH_SERVICE = 'vmctl.agent'

/** The guest's agent listens on this vsock port (any port above 1023 would do). */
export const AGENT_VSOCK_PORT = 7000
