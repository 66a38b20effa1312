/**
 * Declared docker inputs must already be in the form the docker provider reads back, or every
 * `pulumi up` replaces the container. The expected strings below are the provider's read-back
 * forms (nanoInt64ToDecimalString for cpus, Go's time.Duration.String for health check
 * durations), written out by hand from the provider's rules, not computed by our code.
 */
import { describe, expect, it } from "vitest";
import { validateClientFile } from "../config/clientFile";
import { CLIENT_HEALTHCHECK, clientLimits } from "../policy/clientContainer";
import { dockerCpus, dockerCpusProblem, dockerHealthcheck, goDuration } from "../policy/dockerCanonical";
import { PROXY_HEALTHCHECK } from "../policy/proxyPolicy";
import type { ClientSpec } from "../config/model";

describe("CPU amounts in the provider's read-back form", () => {
  it.each([
    [0.1, "0.1"],
    [0.25, "0.25"],
    [0.5, "0.5"],
    [0.75, "0.75"],
    [1, "1.0"],
    [1.5, "1.5"],
    [1.25, "1.25"],
    [2, "2.0"],
    [2.25, "2.25"],
    [2.01, "2.01"],
    [16, "16.0"],
    [10, "10."],
    [20, "20."],
    [10.5, "10.5"],
    [48, "48.0"],
  ])("%s vCPUs is declared as %j", (cpus, readBack) => {
    expect(dockerCpus(cpus)).toBe(readBack);
    expect(dockerCpusProblem(cpus)).toBeUndefined();
  });

  it("no CPU limit (0 nanoCPUs) reads back as \"0\"", () => {
    expect(dockerCpus(0)).toBe("0");
  });

  it.each([
    [0.05, '"0.1"'],
    [0.01, '"0.0"'],
    [10.05, '"10.1"'],
  ])("refuses %s vCPUs, which the provider would read back as %s", (cpus, readBack) => {
    expect(dockerCpusProblem(cpus)).toContain(`reads it back as ${readBack}`);
  });

  it("client limits use the canonical form", () => {
    const client = { resources: { cpus: 2, memoryMb: 4096, reservedCpus: 0.5, reservedMemoryMb: 1024 } } as ClientSpec;
    expect(clientLimits(client).cpus).toBe("2.0");
  });

  it("a client file with a CPU amount the provider cannot read back exactly is an error naming the field", () => {
    const result = validateClientFile("clients/acme.yaml", "name: Acme\nport: 3001\nresources:\n  cpus: 0.05\n");
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.issues).toEqual([
      expect.objectContaining({ file: "clients/acme.yaml", path: "resources.cpus", line: 4, message: expect.stringContaining("use 0.1 instead") }),
    ]);
  });
});

describe("durations in the provider's read-back form (Go's Duration.String)", () => {
  it.each([
    [5, "5s"],
    [30, "30s"],
    [90, "1m30s"],
    [90.5, "1m30.5s"],
    [120, "2m0s"],
    [60, "1m0s"],
    [3600, "1h0m0s"],
    [5400, "1h30m0s"],
    [1.5, "1.5s"],
    [0.5, "500ms"],
    [0, "0s"],
  ])("%s s is %j", (seconds, text) => {
    expect(goDuration(seconds)).toBe(text);
  });

  it("health checks of the clients and the proxy are declared canonically", () => {
    expect(CLIENT_HEALTHCHECK).toMatchObject({ interval: "30s", timeout: "5s", startPeriod: "2m0s", retries: 3 });
    expect(PROXY_HEALTHCHECK).toMatchObject({ interval: "30s", timeout: "5s", startPeriod: "10s", retries: 3 });
    expect(dockerHealthcheck({ tests: ["NONE"], intervalSeconds: 90, timeoutSeconds: 1.5, startPeriodSeconds: 5400, retries: 1 })).toEqual({
      tests: ["NONE"],
      interval: "1m30s",
      timeout: "1.5s",
      startPeriod: "1h30m0s",
      retries: 1,
    });
  });
});
