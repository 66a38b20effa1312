/**
 * The provider's read-back formatting, mirrored in support/dockerReadBack.ts, against the
 * provider's own expectations (kreuzwerker/terraform-provider-docker helpers_test.go,
 * TestNanoInt64ToDecimalString) and Go's documented time.Duration.String() output.
 */
import { describe, expect, it } from "vitest";
import { flattenContainerPorts, goDurationString, nanoInt64ToDecimalString, readBackContainer, type ContainerInspect } from "./support/dockerReadBack";

describe("nanoInt64ToDecimalString (cpus)", () => {
  it("matches the provider's test table", () => {
    for (const [nano, expected] of [
      [0, "0"],
      [1_000_000_000, "1.0"],
      [1_500_000_000, "1.5"],
      [2_000_000_000, "2.0"],
      [2_250_000_000, "2.25"],
    ] as const) {
      expect(nanoInt64ToDecimalString(nano)).toBe(expected);
    }
  });

  it("keeps the function's quirks: nine zeros print one rounded decimal, more whole digits lose them", () => {
    expect(nanoInt64ToDecimalString(500_000_000)).toBe("0.5");
    expect(nanoInt64ToDecimalString(50_000_000)).toBe("0.1"); // 0.050000000 has nine "0"s: FloatString(1)
    expect(nanoInt64ToDecimalString(10_000_000_000)).toBe("10."); // ten "0"s: trailing zeros trimmed
    expect(nanoInt64ToDecimalString(1_250_000_000)).toBe("1.25");
  });
});

describe("goDurationString (health check durations)", () => {
  it("formats like time.Duration.String()", () => {
    expect(goDurationString(30e9)).toBe("30s");
    expect(goDurationString(5e9)).toBe("5s");
    expect(goDurationString(120e9)).toBe("2m0s");
    expect(goDurationString(90.5e9)).toBe("1m30.5s");
    expect(goDurationString(3600e9)).toBe("1h0m0s");
    expect(goDurationString(1.5e9)).toBe("1.5s");
    expect(goDurationString(500e6)).toBe("500ms");
    expect(goDurationString(0)).toBe("0s");
  });
});

describe("flattenContainerPorts", () => {
  it("orders port keys by number and reads ip, host port and protocol of each binding", () => {
    expect(
      flattenContainerPorts({
        "9000/tcp": [{ HostIp: "127.0.0.1", HostPort: "9001" }],
        "8080/tcp": [{ HostIp: "127.0.0.1", HostPort: "8001" }],
        "7000/tcp": null, // exposed by the image, not published: no entry
      }),
    ).toEqual([
      { internal: 8080, external: 8001, ip: "127.0.0.1", protocol: "tcp" },
      { internal: 9000, external: 9001, ip: "127.0.0.1", protocol: "tcp" },
    ]);
  });

  it("refuses the cases whose read-back order is not stable in the provider", () => {
    expect(() => flattenContainerPorts({ "443/tcp": [{ HostIp: "0.0.0.0", HostPort: "443" }], "443/udp": [{ HostIp: "0.0.0.0", HostPort: "443" }] })).toThrow(/not stable/);
    expect(() => flattenContainerPorts({ "80/tcp": [{ HostIp: "0.0.0.0", HostPort: "80" }, { HostIp: "::", HostPort: "80" }] })).toThrow(/2 bindings/);
  });
});

describe("readBackContainer", () => {
  const inspect: ContainerInspect = {
    Name: "/mai-acme",
    Image: "sha256:abc",
    Config: { Env: ["PATH=/usr/bin", "A=1"], Labels: { "mai.client": "acme", "from.image": "x" } },
    HostConfig: { NanoCpus: 2e9, Memory: 4096 * 1024 * 1024, MemorySwap: 4096 * 1024 * 1024, Binds: ["mai-acme-data:/app/backend/data:rw"] },
    NetworkSettings: { Networks: { "mai-acme": {} } },
  };

  it("reads what the provider reads and keeps what it does not", () => {
    const checks = readBackContainer(
      inspect,
      {
        name: "mai-acme",
        image: "example:1",
        cpus: "2",
        memory: 4096,
        envs: ["A=1"],
        labels: [{ label: "mai.client", value: "acme" }],
        volumes: [{ volumeName: "mai-acme-data", containerPath: "/app/backend/data" }],
        networksAdvanced: [{ name: "mai-acme" }],
      },
      () => "sha256:abc",
    );
    const byKey = Object.fromEntries(checks.map((c) => [c.key, c]));
    expect(byKey.name).toMatchObject({ kind: "read", readBack: "mai-acme" });
    expect(byKey.cpus).toMatchObject({ kind: "read", declared: "2", readBack: "2.0" });
    expect(byKey.image).toMatchObject({ kind: "image-id", declared: "sha256:abc", readBack: "sha256:abc" });
    expect(byKey.envs).toMatchObject({ kind: "kept", readBack: ["A=1"] });
    expect(byKey.labels.readBack).toEqual([{ label: "mai.client", value: "acme" }]);
    expect(byKey.volumes.readBack).toEqual([{ volumeName: "mai-acme-data", containerPath: "/app/backend/data" }]);
    expect(byKey.networksAdvanced.readBack).toEqual([{ name: "mai-acme" }]);
  });

  it("throws for a declared input without a read-back rule", () => {
    expect(() => readBackContainer(inspect, { gpus: "all" }, () => "")).toThrow(/no read-back rule for container input "gpus"/);
  });
});
