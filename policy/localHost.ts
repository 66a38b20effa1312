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

/** `bash -c`, with DOCKER_HOST when the server uses another engine than the default socket. */
export function localShellPrefix(dockerHost: string): string {
  return dockerHost === DEFAULT_LOCAL_DOCKER_HOST ? "bash -c" : `env DOCKER_HOST=${shellQuote(dockerHost)} bash -c`;
}

/** Writes stdin to `path` atomically (a reader never sees half a file). */
export function localWriteFileCommand(path: string): string {
  const target = shellQuote(path);
  const staged = shellQuote(`${path}.tmp`);
  return `mkdir -p "$(dirname ${target})" && cat > ${staged} && mv -f ${staged} ${target}`;
}
