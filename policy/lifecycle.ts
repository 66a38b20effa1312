/**
 * Lifecycle policy of the stack's resources: what is protected from destroy, what outlives its
 * Pulumi resource, and what is replaced delete-first. Pure data so that tests can assert on it
 * (the mock runtime does not show resource options to `newResource`).
 */

/** The subset of Pulumi resource options this policy sets; structurally a `CustomResourceOptions`. */
export interface LifecycleOptions {
  protect?: boolean;
  retainOnDelete?: boolean;
  deleteBeforeReplace?: boolean;
  ignoreChanges?: string[];
  replaceOnChanges?: string[];
}

export const lifecycle = {
  /**
   * The server carries every client: `pulumi destroy` or a config slip must not take it down.
   * Hetzner replaces a server when its user data, image or SSH keys change; those only matter at
   * first boot, so later edits are ignored instead of silently rebuilding the host. To apply them
   * on purpose, rebuild explicitly (docs/runbook.md, "Server changes").
   */
  server: { protect: true, ignoreChanges: ["userData", "image", "sshKeys"] },
  /**
   * The public IPs are what DNS points at; they outlive any server replacement. `assigneeType`
   * is no longer declared (the hcloud provider wants it only together with `assigneeId`); IPs
   * created with it keep the value in their state, and ignoring the field makes sure that
   * dropping it can never plan a change on a protected IP.
   */
  primaryIp: { protect: true, ignoreChanges: ["assigneeType"] },
  /** Client databases: removing a client file or replacing its container never deletes data. */
  dataVolume: { retainOnDelete: true },
  /** Caddy's certificates and ACME account: losing them means re-issuing for every client. */
  proxyVolume: { retainOnDelete: true },
  /**
   * Containers have fixed names and host ports; Docker's provider would start the replacement
   * before removing the old one and collide on both (pulumi-docker#1356). The provider's update
   * only sends restart policy, CPU shares, memory, swap and cpuset to the engine: a changed memory
   * reservation, health check, init setting or tmpfs would plan as an in-place update and never
   * reach the running container, so those replace it instead.
   */
  container: { deleteBeforeReplace: true, replaceOnChanges: ["memoryReservation", "healthcheck", "init", "tmpfs"] },
} satisfies Record<string, LifecycleOptions>;

/**
 * Options of a client's Docker objects (volume, network, container) on the server they live on.
 * A Docker provider of another server alone changes nothing on the real engine (it asks the new
 * provider to diff the same inputs and only repoints the state), so a move would create nothing on
 * the new server. With the server as `replacementTrigger` the engine recreates each object there;
 * the volume's old copy stays on the source (retainOnDelete). A trigger the state has never
 * recorded replaces nothing, so existing clients are untouched when this is first deployed.
 */
export function placedOn(server: string): { replacementTrigger: string } {
  return { replacementTrigger: server };
}

