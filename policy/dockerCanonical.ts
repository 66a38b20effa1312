/**
 * Docker inputs in the docker provider's own canonical form.
 *
 * After every create the provider reads the container back from the engine and stores what it
 * read. An input declared in any other spelling than the one the provider reads back is a diff on
 * the next `pulumi up`, and for replace-on-change inputs (`cpus`) a replacement of the container:
 * every client restarted by a no-op update. So every value whose spelling the provider rewrites
 * is produced here, once, in the form the provider's read functions print
 * (kreuzwerker/terraform-provider-docker, `internal/provider/resource_docker_container_funcs.go`).
 * Pure: no Pulumi imports.
 */

const NANOS_PER_SECOND = 1_000_000_000n;

/**
 * `cpus` as the provider reads it back from `HostConfig.NanoCpus` (`nanoInt64ToDecimalString`):
 * the value printed with nine decimals; when that text holds exactly nine "0" characters it is
 * printed with one decimal instead, otherwise trailing zeros are trimmed. So 2 reads back as
 * "2.0", 0.25 as "0.25", 1.5 as "1.5" and 10 as "10." (ten "0" characters: trimmed, not
 * shortened). The rule is the provider's; reproducing it, quirks included, is the point.
 */
export function dockerCpus(cpus: number): string {
  const nanos = BigInt(Math.round(cpus * 1e9));
  if (nanos === 0n) return "0";
  const nine = formatFixed(nanos, NANOS_PER_SECOND, 9);
  if ((nine.match(/0/g) ?? []).length === 9) return formatFixed(nanos, NANOS_PER_SECOND, 1);
  return nine.replace(/0+$/, "");
}

/**
 * Why a CPU amount cannot be declared so that the provider reads back the same amount, or
 * undefined. The provider's one-decimal shortcut rounds some values (0.05 reads back as "0.1",
 * 10.05 as "10.1"): such a container would be replaced on every update, so they are refused.
 */
export function dockerCpusProblem(cpus: number): string | undefined {
  const readBack = dockerCpus(cpus);
  if (Number(readBack) === cpus) return undefined;
  const nearest = Number(readBack);
  return `${cpus} vCPUs cannot be set exactly: Docker's provider reads it back as ${JSON.stringify(readBack)} and would recreate the container on every update; use ${nearest > 0 ? nearest : 0.1} instead`;
}

/**
 * A duration as Go's `time.Duration.String()` prints it, which is how the provider reads back
 * health check intervals, timeouts and start periods: 90 s is "1m30s", 120 s "2m0s", 5400 s
 * "1h30m0s", 1.5 s "1.5s", 0.5 s "500ms".
 */
export function goDuration(seconds: number): string {
  const nanos = BigInt(Math.round(seconds * 1e9));
  if (nanos === 0n) return "0s";
  const sign = nanos < 0n ? "-" : "";
  const abs = nanos < 0n ? -nanos : nanos;
  if (abs < NANOS_PER_SECOND) {
    // Below one second Go picks the largest unit that keeps an integer part: ms, µs or ns.
    if (abs < 1_000n) return `${sign}${abs}ns`;
    if (abs < 1_000_000n) return `${sign}${trimFraction(formatFixed(abs, 1_000n, 3))}µs`;
    return `${sign}${trimFraction(formatFixed(abs, 1_000_000n, 6))}ms`;
  }
  const hours = abs / (3600n * NANOS_PER_SECOND);
  const minutes = (abs / (60n * NANOS_PER_SECOND)) % 60n;
  const secondsPart = trimFraction(formatFixed(abs % (60n * NANOS_PER_SECOND), NANOS_PER_SECOND, 9));
  if (hours > 0n) return `${sign}${hours}h${minutes}m${secondsPart}s`;
  if (minutes > 0n) return `${sign}${minutes}m${secondsPart}s`;
  return `${sign}${secondsPart}s`;
}

/** A container health check whose durations are in the provider's read-back form. */
export interface DockerHealthcheck {
  tests: string[];
  interval: string;
  timeout: string;
  startPeriod: string;
  retries: number;
}

/** Builds a health check from durations in seconds; every duration comes out canonical. */
export function dockerHealthcheck(check: {
  tests: string[];
  intervalSeconds: number;
  timeoutSeconds: number;
  startPeriodSeconds: number;
  retries: number;
}): DockerHealthcheck {
  return {
    tests: [...check.tests],
    interval: goDuration(check.intervalSeconds),
    timeout: goDuration(check.timeoutSeconds),
    startPeriod: goDuration(check.startPeriodSeconds),
    retries: check.retries,
  };
}

/**
 * `no-new-privileges` as the engine stores and the provider reads back `HostConfig.SecurityOpt`:
 * verbatim, so this spelling (the one Docker documents) is the one to declare.
 */
export const NO_NEW_PRIVILEGES = "no-new-privileges:true";

/** Linux capability names Docker knows, without the `CAP_` prefix (capabilities(7)). */
const CAPABILITY_NAMES = new Set([
  "AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "BPF", "CHECKPOINT_RESTORE", "CHOWN",
  "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER", "KILL", "LEASE",
  "LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE", "MKNOD", "NET_ADMIN", "NET_BIND_SERVICE",
  "NET_BROADCAST", "NET_RAW", "PERFMON", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_ADMIN",
  "SYS_BOOT", "SYS_CHROOT", "SYS_MODULE", "SYS_NICE", "SYS_PACCT", "SYS_PTRACE", "SYS_RAWIO",
  "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "SYSLOG", "WAKE_ALARM",
]);

/**
 * Container capabilities in the form the engine keeps them. Docker 20.10 stores `CapAdd` and
 * `CapDrop` exactly as sent (only its CLI normalises), later engines normalise to `CAP_<NAME>`
 * and `ALL`; the provider reads back whatever is stored. Declaring the normalised form reads back
 * the same on both, so an unchanged container shows no diff (capabilities force replacement).
 * Throws on a name that is not a capability: a typo would otherwise reach the engine at `up`.
 */
export function dockerCapabilities(spec: { drop: readonly string[]; add: readonly string[] }): { drops: string[]; adds: string[] } {
  const canonical = (name: string): string => {
    const bare = name.trim().toUpperCase().replace(/^CAP_/, "");
    if (bare === "ALL") return "ALL";
    if (!CAPABILITY_NAMES.has(bare)) throw new Error(`unknown Linux capability ${JSON.stringify(name)}`);
    return `CAP_${bare}`;
  };
  return { drops: spec.drop.map(canonical).sort(), adds: spec.add.map(canonical).sort() };
}

/** `value / unit` with exactly `decimals` decimals, rounded half away from zero (big.Rat.FloatString). */
function formatFixed(value: bigint, unit: bigint, decimals: number): string {
  const scale = 10n ** BigInt(decimals);
  const scaled = (value * scale * 2n + unit) / (unit * 2n); // round half up (value is positive)
  const integer = scaled / scale;
  const fraction = (scaled % scale).toString().padStart(decimals, "0");
  return decimals === 0 ? integer.toString() : `${integer}.${fraction}`;
}

/** "1.500" -> "1.5", "2.000" -> "2" (Go's duration formatting trims trailing zeros and the point). */
function trimFraction(text: string): string {
  return text.includes(".") ? text.replace(/0+$/, "").replace(/\.$/, "") : text;
}
