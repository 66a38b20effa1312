/**
 * The docker provider's read-back form of a container, derived from `docker inspect` the way the
 * provider's Read does (kreuzwerker/terraform-provider-docker, which the Pulumi docker provider
 * bridges): after every `pulumi up`/`refresh` the state holds these values, and the next `up`
 * compares the program's declared inputs with them. A declared input whose read-back form differs
 * shows as a change on every `up` — a replacement for ForceNew inputs. Pure: no I/O.
 *
 * Sources (internal/provider/ of that repository):
 *  - resource_docker_container_funcs.go, resourceDockerContainerRead: which attributes are set
 *    from `ContainerInspect`, and how (memory / 1024 / 1024, health check durations with Go's
 *    time.Duration.String(), name without the leading "/", ...);
 *  - resource_docker_container_structures.go, flattenContainerPorts;
 *  - helpers.go, nanoInt64ToDecimalString (cpus; its test table in helpers_test.go:
 *    1e9 → "1.0", 1.5e9 → "1.5", 2e9 → "2.0", 2.25e9 → "2.25").
 * The same Read says it does not set `env` and `labels` ("taken over from the Docker image ... so
 * it's difficult to treat them well", provider issues #242 / PR #269), and leaves `volumes` and
 * `networks_advanced` alone: for those the state keeps what was declared, and what matters is
 * that the engine holds it, which is what their "engine form" here checks.
 */

/** The part of `docker inspect <container>` the read uses. */
export interface ContainerInspect {
  Name: string;
  Image: string;
  Config: {
    Env?: string[] | null;
    Labels?: Record<string, string> | null;
    Cmd?: string[] | null;
    User?: string;
    WorkingDir?: string;
    StopSignal?: string;
    StopTimeout?: number;
    Healthcheck?: { Test?: string[]; Interval?: number; Timeout?: number; StartPeriod?: number; Retries?: number } | null;
  };
  HostConfig: {
    NanoCpus?: number;
    CpuShares?: number;
    Memory?: number;
    MemorySwap?: number;
    MemoryReservation?: number;
    RestartPolicy?: { Name: string; MaximumRetryCount: number };
    LogConfig?: { Type: string; Config?: Record<string, string> | null };
    Sysctls?: Record<string, string> | null;
    NetworkMode?: string;
    Binds?: string[] | null;
    Init?: boolean | null;
  };
  NetworkSettings: {
    Ports?: Record<string, { HostIp: string; HostPort: string }[] | null> | null;
    Networks?: Record<string, unknown> | null;
  };
}

/** How an input's read-back value was obtained. */
export type ReadBackKind =
  /** Set by the provider's Read from inspect: must equal the declared input or `up` shows a diff. */
  | "read"
  /** Not read by the provider (state keeps the declared value); the engine form checks the engine holds it. */
  | "kept"
  /** The provider reads the image *id*; compared as the id the declared reference resolves to. */
  | "image-id";

export interface InputReadBack {
  key: string;
  kind: ReadBackKind;
  declared: unknown;
  readBack: unknown;
}

/**
 * Go's big.Rat(n, 1e9).FloatString(9) then the provider's trimming, as nanoInt64ToDecimalString
 * does it — including its quirks: a value whose 9-decimal form holds exactly nine "0" characters
 * is printed with one decimal (rounded half away from zero, so 0.05 CPU reads back as "0.1"),
 * otherwise trailing zeros are trimmed (so 10 CPUs read back as "10.").
 */
export function nanoInt64ToDecimalString(nano: number): string {
  if (nano === 0) return "0";
  const negative = nano < 0;
  const abs = BigInt(Math.abs(nano));
  const whole = abs / 1_000_000_000n;
  const frac = abs % 1_000_000_000n;
  const sign = negative ? "-" : "";
  const str = `${sign}${whole}.${frac.toString().padStart(9, "0")}`;
  if ((str.match(/0/g) ?? []).length === 9) {
    // FloatString(1): round the fraction to one digit, half away from zero.
    let tenths = (frac + 50_000_000n) / 100_000_000n;
    let w = whole;
    if (tenths === 10n) {
      w += 1n;
      tenths = 0n;
    }
    return `${sign}${w}.${tenths}`;
  }
  return str.replace(/0+$/, "");
}

/** Go's time.Duration.String() for a number of nanoseconds (e.g. 120e9 → "2m0s", 5e8 → "500ms"). */
export function goDurationString(nanos: number): string {
  if (nanos === 0) return "0s";
  const negative = nanos < 0;
  let n = Math.abs(nanos);
  const sign = negative ? "-" : "";
  if (n < 1e9) {
    // Sub-second: the largest unit that keeps a leading digit, with a decimal fraction.
    const [unit, size] = n < 1e3 ? ["ns", 1] : n < 1e6 ? ["µs", 1e3] : ["ms", 1e6];
    return `${sign}${trimFraction(n / (size as number))}${unit}`;
  }
  const hours = Math.floor(n / 3600e9);
  n -= hours * 3600e9;
  const minutes = Math.floor(n / 60e9);
  n -= minutes * 60e9;
  const seconds = trimFraction(n / 1e9);
  if (hours > 0) return `${sign}${hours}h${minutes}m${seconds}s`;
  if (minutes > 0) return `${sign}${minutes}m${seconds}s`;
  return `${sign}${seconds}s`;
}

function trimFraction(value: number): string {
  return Number(value.toFixed(9)).toString();
}

/**
 * flattenContainerPorts: port keys sorted by port *number* only (sort.Sort, not stable, over a Go
 * map's random iteration order — so 443/tcp and 443/udp come in either order between reads), one
 * entry per binding: { internal, external, ip, protocol }. In the version cited the entries of one
 * key share one map that each binding overwrites, so two bindings of one port (0.0.0.0 and ::)
 * read back as two copies of the last one; other versions keep each. Neither is mirrored: more
 * than one binding per port, or two protocols on one port number, throws here.
 */
export function flattenContainerPorts(ports: ContainerInspect["NetworkSettings"]["Ports"]): { internal: number; external: number; ip: string; protocol: string }[] {
  const keys = Object.keys(ports ?? {}).filter((k) => (ports![k] ?? []).length > 0);
  const numbers = keys.map((k) => k.split("/")[0]);
  if (new Set(numbers).size !== numbers.length) {
    throw new Error(`read-back of ports ${keys.join(", ")}: order between protocols of one port is not stable in the provider`);
  }
  return keys
    .sort((a, b) => Number(a.split("/")[0]) - Number(b.split("/")[0]))
    .map((key) => {
      const bindings = ports![key]!;
      if (bindings.length > 1) throw new Error(`read-back of port ${key}: ${bindings.length} bindings; the provider's form depends on its version`);
      const [internal, protocol] = key.split("/");
      return { internal: Number(internal), external: Number(bindings[0].HostPort), ip: bindings[0].HostIp, protocol };
    });
}

const MB = 1024 * 1024;

/** `Binds` entries ("src:dst:mode", as the provider writes them) back in the declared `volumes` shape. */
function bindsAsVolumes(binds: string[] | null | undefined): Record<string, unknown>[] {
  return (binds ?? []).map((bind) => {
    const [source, containerPath, mode] = bind.split(":");
    return {
      ...(source.startsWith("/") ? { hostPath: source } : { volumeName: source }),
      containerPath,
      ...(mode === "ro" ? { readOnly: true } : {}),
    };
  });
}

/** Order of list entries whose order the provider does not keep (sets): by their sorted-key JSON. */
const sortedKeys = (v: unknown): string =>
  JSON.stringify(v, (_k, x) => (x && typeof x === "object" && !Array.isArray(x) ? Object.fromEntries(Object.keys(x).sort().map((k) => [k, x[k]])) : x));
const byJson = (a: unknown, b: unknown) => (sortedKeys(a) < sortedKeys(b) ? -1 : 1);

/**
 * The read-back form of every declared container input. Throws for a declared input it has no
 * rule for, so a new input cannot escape the read-back test.
 */
export function readBackContainer(
  inspect: ContainerInspect,
  declared: Record<string, any>,
  imageIdOf: (reference: string) => string,
): InputReadBack[] {
  const h = inspect.HostConfig;
  const hc = inspect.Config.Healthcheck;
  const read: Record<string, () => unknown> = {
    name: () => inspect.Name.replace(/^\/+/, ""),
    restart: () => h.RestartPolicy?.Name,
    cpus: () => nanoInt64ToDecimalString(h.NanoCpus ?? 0),
    cpuShares: () => h.CpuShares,
    memory: () => Math.trunc((h.Memory ?? 0) / MB),
    memorySwap: () => ((h.MemorySwap ?? 0) > 0 ? Math.trunc(h.MemorySwap! / MB) : h.MemorySwap),
    // Not in the Read of the version cited; read like `memory` by the versions that have the input.
    memoryReservation: () => Math.trunc((h.MemoryReservation ?? 0) / MB),
    logDriver: () => h.LogConfig?.Type,
    logOpts: () => h.LogConfig?.Config ?? {},
    sysctls: () => h.Sysctls ?? {},
    networkMode: () => h.NetworkMode,
    init: () => h.Init ?? false,
    command: () => inspect.Config.Cmd,
    user: () => inspect.Config.User,
    workingDir: () => inspect.Config.WorkingDir,
    stopSignal: () => inspect.Config.StopSignal,
    stopTimeout: () => inspect.Config.StopTimeout,
    ports: () => flattenContainerPorts(inspect.NetworkSettings.Ports),
    healthcheck: () =>
      hc && {
        tests: hc.Test,
        interval: goDurationString(hc.Interval ?? 0),
        timeout: goDurationString(hc.Timeout ?? 0),
        startPeriod: goDurationString(hc.StartPeriod ?? 0),
        retries: hc.Retries,
      },
  };
  const kept: Record<string, (declaredValue: any) => unknown> = {
    // Declared entries as the engine holds them (the image may add its own, e.g. PATH).
    envs: (value: string[]) => (inspect.Config.Env ?? []).filter((e) => value.includes(e)).sort(),
    labels: (value: { label: string }[]) =>
      Object.entries(inspect.Config.Labels ?? {})
        .filter(([k]) => value.some((l) => l.label === k))
        .map(([label, v]) => ({ label, value: v }))
        .sort(byJson),
    volumes: () => bindsAsVolumes(inspect.HostConfig.Binds).sort(byJson),
    networksAdvanced: () => Object.keys(inspect.NetworkSettings.Networks ?? {}).sort().map((name) => ({ name })),
  };
  const normaliseKept: Record<string, (value: any) => unknown> = {
    envs: (value: string[]) => [...value].sort(),
    labels: (value: unknown[]) => [...value].sort(byJson),
    volumes: (value: Record<string, unknown>[]) => value.map((v) => (v.readOnly ? v : Object.fromEntries(Object.entries(v).filter(([k]) => k !== "readOnly")))).sort(byJson),
    networksAdvanced: (value: { name: string }[]) => [...value].sort(byJson),
  };

  return Object.entries(declared)
    .filter(([, value]) => value !== undefined)
    .map(([key, value]): InputReadBack => {
      if (key === "image") return { key, kind: "image-id", declared: imageIdOf(value), readBack: inspect.Image };
      if (read[key]) return { key, kind: "read", declared: value, readBack: read[key]() };
      if (kept[key]) return { key, kind: "kept", declared: normaliseKept[key](value), readBack: kept[key](value) };
      throw new Error(`no read-back rule for container input "${key}": add one from the provider's Read`);
    });
}

/** The part of `docker network inspect` / `docker volume inspect` compared with declared inputs. */
export interface NetworkOrVolumeInspect {
  Name: string;
  Driver: string;
  Labels?: Record<string, string> | null;
  Internal?: boolean;
  Options?: Record<string, string> | null;
}

/**
 * Declared inputs of a network or volume against what the engine holds (name, driver, labels as
 * `[{label, value}]`, internal, options). Throws for a declared input without a rule.
 */
export function readBackNetworkOrVolume(inspect: NetworkOrVolumeInspect, declared: Record<string, any>): InputReadBack[] {
  const labels = () =>
    Object.entries(inspect.Labels ?? {})
      .map(([label, value]) => ({ label, value }))
      .sort(byJson);
  const read: Record<string, () => unknown> = {
    name: () => inspect.Name,
    driver: () => inspect.Driver,
    labels,
    internal: () => inspect.Internal ?? false,
    options: () => inspect.Options ?? {},
    driverOpts: () => inspect.Options ?? {},
  };
  return Object.entries(declared)
    .filter(([, value]) => value !== undefined)
    .map(([key, value]): InputReadBack => {
      if (!read[key]) throw new Error(`no read-back rule for network/volume input "${key}"`);
      return { key, kind: "read", declared: key === "labels" ? [...value].sort(byJson) : value, readBack: read[key]() };
    });
}
