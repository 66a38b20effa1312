/**
 * The Hetzner Cloud CCX line (dedicated vCPUs): the only server types the stack accepts, because
 * the capacity maths assumes CPUs that are not shared with other Hetzner customers.
 */

/** One Hetzner CCX server type. */
export interface ServerType {
  /** Hetzner name, e.g. `ccx53`. */
  name: string;
  /** Dedicated vCPUs. */
  cpus: number;
  /** RAM in MiB (Hetzner's "GB" are GiB). */
  memoryMb: number;
}

/** Hetzner CCX types, smallest first. */
export const SERVER_TYPES: readonly ServerType[] = [
  { name: "ccx13", cpus: 2, memoryMb: 8 * 1024 },
  { name: "ccx23", cpus: 4, memoryMb: 16 * 1024 },
  { name: "ccx33", cpus: 8, memoryMb: 32 * 1024 },
  { name: "ccx43", cpus: 16, memoryMb: 64 * 1024 },
  { name: "ccx53", cpus: 32, memoryMb: 128 * 1024 },
  { name: "ccx63", cpus: 48, memoryMb: 192 * 1024 },
];

/** Names of the accepted server types, in size order. */
export const SERVER_TYPE_NAMES: readonly string[] = SERVER_TYPES.map((type) => type.name);

/** The CCX type called `name`, or undefined when it is not one. */
export function findServerType(name: string): ServerType | undefined {
  return SERVER_TYPES.find((type) => type.name === name);
}
