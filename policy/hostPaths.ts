/** Where the stack's files live on a host (absolute paths on that host). */
export interface HostPaths {
  /** Caddyfile directory, bind-mounted read-only at /etc/caddy in the proxy. */
  caddyDir: string;
  /** Per-client backups, one sub-directory per slug. */
  backupsDir: string;
  /** Configuration of the host scripts (backup env files, ...). */
  etcDir: string;
  /** The stack's host scripts (`mai-caddy-apply`, `mai-backup`, ...). */
  binDir: string;
  /** Scratch space of the stack (staged uploads, state of host tools). */
  stateDir: string;
}
