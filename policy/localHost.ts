/**
 * The local host's layout and shell pieces: pure functions of its settings, so the program's
 * local commands are deterministic and testable without Pulumi.
 */
import type { HostPaths } from "./hostPaths";
import { DEFAULT_LOCAL_DOCKER_HOST } from "../config/servers";

/** Every host path of a local server, under its state directory. */
export function localHostPaths(stateDir: string): HostPaths {
  return {
    caddyDir: `${stateDir}/caddy`,
    backupsDir: `${stateDir}/backups`,
    etcDir: `${stateDir}/etc`,
    binDir: `${stateDir}/bin`,
    stateDir: `${stateDir}/state`,
  };
}

/** Quotes `value` for a POSIX shell. */
export function shellQuote(value: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * `bash -c`, with DOCKER_HOST when the server uses another engine than the default socket, and,
 * given the host's paths, the host scripts' directories under them: two local servers on one
 * machine must not share the scripts' machine-wide defaults (/run/lock, /srv/mai/exports), or a
 * move between them would wait on its own client lock.
 */
export function localShellPrefix(dockerHost: string, paths?: HostPaths): string {
  const env = [
    ...(dockerHost === DEFAULT_LOCAL_DOCKER_HOST ? [] : [`DOCKER_HOST=${shellQuote(dockerHost)}`]),
    ...(paths
      ? [
          `MAI_STATE_DIR=${shellQuote(paths.stateDir)}`,
          `MAI_LOCK_DIR=${shellQuote(`${paths.stateDir}/lock`)}`,
          `MAI_EXPORT_ROOT=${shellQuote(`${paths.stateDir}/exports`)}`,
          `MAI_BACKUP_ROOT=${shellQuote(paths.backupsDir)}`,
          `MAI_CONFIG_DIR=${shellQuote(paths.etcDir)}`,
        ]
      : []),
  ];
  return env.length === 0 ? "bash -c" : `env ${env.join(" ")} bash -c`;
}

/** Writes stdin to `path` atomically (a reader never sees half a file). */
export function localWriteFileCommand(path: string): string {
  const target = shellQuote(path);
  const staged = shellQuote(`${path}.tmp`);
  return `mkdir -p "$(dirname ${target})" && cat > ${staged} && mv -f ${staged} ${target}`;
}
