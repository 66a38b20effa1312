/**
 * Inputs compared the way the provider compares them. The docker provider stores what it reads
 * back from the engine (policy/dockerCanonical.ts), so two declarations that spell the same value
 * differently ("2" and "2.0" vCPUs, "120s" and "2m0s") are no change on a real engine: the plan
 * must not report one either, or a fix of the spelling would look like a restart of every
 * client. Pure: no Pulumi imports.
 */
import { dockerCpus, goDuration } from "../policy/dockerCanonical";

const CONTAINER = "docker:index/container:Container";
const DURATION_FIELDS = ["interval", "timeout", "startPeriod"] as const;
const UNIT_SECONDS: Record<string, number> = { h: 3600, m: 60, s: 1, ms: 1e-3, us: 1e-6, "µs": 1e-6, ns: 1e-9 };

/** Seconds of a Go duration ("1h30m", "2m0s", "90s", "500ms"), or undefined when it is not one. */
export function parseGoDuration(text: string): number | undefined {
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)/g)];
  if (parts.length === 0 || parts.map((part) => part[0]).join("") !== text) return undefined;
  return parts.reduce((total, [, amount, unit]) => total + Number(amount) * UNIT_SECONDS[unit], 0);
}

/** `value` of input `field` of a resource of `type` in the form the provider reads back. */
export function providerForm(type: string, field: string, value: unknown): unknown {
  if (type !== CONTAINER) return value;
  if (field === "cpus" && typeof value === "string" && /^\d+(\.\d*)?$/.test(value)) return dockerCpus(Number(value));
  if (field === "healthcheck" && value && typeof value === "object" && !Array.isArray(value)) {
    const check = { ...(value as Record<string, unknown>) };
    for (const key of DURATION_FIELDS) {
      const seconds = typeof check[key] === "string" ? parseGoDuration(check[key] as string) : undefined;
      if (seconds !== undefined) check[key] = goDuration(seconds);
    }
    return check;
  }
  return value;
}

/** Whether the provider rewrites the spelling of this input (so it is compared in provider form). */
export function hasProviderForm(type: string, field: string): boolean {
  return type === CONTAINER && (field === "cpus" || field === "healthcheck");
}
