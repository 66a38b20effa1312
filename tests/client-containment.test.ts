/**
 * How a client's container is confined (policy/clientContainer.ts): capabilities, no-new-privileges,
 * init, read-only backups, and the pids limit, from the client file through the validated model to
 * the host command that applies it. The command runs here against a stand-in `docker` that records
 * its arguments; the real engine's behaviour is covered by the engine tests.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { MAX_PIDS_LIMIT, MIN_PIDS_LIMIT } from "../config/clientFile";
import { formatIssue, ConfigError } from "../config/configIssues";
import { resolveConfiguration } from "../config/configuration";
import { DEFAULT_PIDS_LIMIT, parseStackSettings } from "../config/stackSettings";
import { CLIENT_ADDED_CAPABILITIES, clientContainment, clientMounts, pidsLimitCommand } from "../policy/clientContainer";
import { NO_NEW_PRIVILEGES, dockerCapabilities } from "../policy/dockerCanonical";
import { lifecycle } from "../policy/lifecycle";

const STACK = {
  file: "Pulumi.test.yaml",
  values: {
    domain: "localhost",
    servers: { local: { kind: "local" } },
    defaultImage: "mai-local/workspace:1",
  } as Record<string, unknown>,
};

function resolve(clientText: string, stackValues: Record<string, unknown> = {}) {
  return resolveConfiguration({ ...STACK, values: { ...STACK.values, ...stackValues } }, [{ file: "clients/acme.yaml", text: clientText }]);
}

function issues(action: () => unknown): string[] {
  try {
    action();
  } catch (error) {
    if (error instanceof ConfigError) return error.issues.map(formatIssue);
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("container confinement", () => {
  it("drops every capability, adds none back, forbids privilege gain, runs an init process, keeps the root file system read-only", () => {
    expect(CLIENT_ADDED_CAPABILITIES).toEqual([]);
    expect(clientContainment()).toEqual({
      init: true,
      securityOpts: ["no-new-privileges:true"],
      capabilities: { drops: ["ALL"], adds: [] },
      readOnly: true,
      // Docker's own tmpfs options, written out: the engine stores and returns the text as given.
      tmpfs: { "/tmp": "rw,noexec,nosuid,nodev" },
    });
  });

  it("writes capabilities the way the engine stores them (CAP_ prefix, upper case), so read-back equals input", () => {
    expect(dockerCapabilities({ drop: ["all"], add: ["chown", "cap_setuid", "NET_BIND_SERVICE"] })).toEqual({
      drops: ["ALL"],
      adds: ["CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_SETUID"],
    });
    expect(() => dockerCapabilities({ drop: ["ALL"], add: ["CAP_NET_RAWW"] })).toThrow(/unknown Linux capability "CAP_NET_RAWW"/);
    // Docker stores security options verbatim; this is the spelling Docker documents.
    expect(NO_NEW_PRIVILEGES).toBe("no-new-privileges:true");
  });

  it("replaces a container whose init or tmpfs setting changes: the provider's in-place update would never apply them", () => {
    expect(lifecycle.container.replaceOnChanges).toEqual(expect.arrayContaining(["init", "tmpfs"]));
  });

  it("mounts the backups directory read-only: workspace code cannot rewrite its backups or usage snapshots", () => {
    expect(clientMounts("acme", "/srv/mai/backups", "mai-acme-data")).toEqual([
      { volumeName: "mai-acme-data", containerPath: "/app/backend/data" },
      { hostPath: "/srv/mai/backups/acme", containerPath: "/app/backups", readOnly: true },
    ]);
  });
});

describe("pids limit setting", () => {
  it("defaults to the built-in limit, takes the stack's default, and a client file's own value", () => {
    expect(resolve("name: Acme\nport: 3001\n").clients[0].resources.pidsLimit).toBe(DEFAULT_PIDS_LIMIT);
    expect(DEFAULT_PIDS_LIMIT).toBe(1024);
    expect(resolve("name: Acme\nport: 3001\n", { defaultResources: { pids: 300 } }).clients[0].resources.pidsLimit).toBe(300);
    expect(resolve("name: Acme\nport: 3001\nresources:\n  pids: 2048\n", { defaultResources: { pids: 300 } }).clients[0].resources.pidsLimit).toBe(2048);
  });

  it("reads `pulumi config set --path defaultResources.pids 512` (stored as text) as a number", () => {
    const result = parseStackSettings({ ...STACK, values: { ...STACK.values, defaultResources: JSON.stringify({ pids: "512" }) } });
    expect(result.ok && result.settings.defaultResources.pidsLimit).toBe(512);
  });

  it.each(["0", "10", "100000", "-1", "1.5", '"512"', "unlimited"])("refuses pids: %s with the range it expects", (value) => {
    const found = issues(() => resolve(`name: Acme\nport: 3001\nresources:\n  pids: ${value}\n`));
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(new RegExp(`^clients/acme\\.yaml:4: resources\\.pids: expected an integer from ${MIN_PIDS_LIMIT} to ${MAX_PIDS_LIMIT}`));
  });

  it("refuses an unusable stack default, naming the stack setting", () => {
    const result = parseStackSettings({ ...STACK, values: { ...STACK.values, defaultResources: { pids: 5 } } });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.issues.map(formatIssue).join("\n")).toContain(`mai-hosting:defaultResources.pids: expected an integer from ${MIN_PIDS_LIMIT} to ${MAX_PIDS_LIMIT}`);
  });
});

/** Runs `script` with a stand-in `docker` first on PATH; it logs its arguments and answers inspect with `held`. */
function runWithDocker(script: string, held: string) {
  const bin = fs.mkdtempSync(path.join(os.tmpdir(), "mai-fake-docker-"));
  const log = path.join(bin, "calls");
  try {
    fs.writeFileSync(
      path.join(bin, "docker"),
      `#!/bin/sh\n{ printf '[%s]' "$@"; echo; } >> ${log}\n[ "$1" = inspect ] && echo ${held}\nexit 0\n`,
      { mode: 0o755 },
    );
    const result = spawnSync("bash", ["-c", script], { encoding: "utf8", env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
    return { ...result, calls: fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim().split("\n") : [] };
  } finally {
    fs.rmSync(bin, { recursive: true, force: true });
  }
}

describe("pids limit command", () => {
  const id = "3f2a9c0d1e4b5a6978c0d1e2f3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6";

  it("updates the container by id and confirms the engine holds the limit", () => {
    const result = runWithDocker(pidsLimitCommand(id, 1024), "1024");
    expect(result.status).toBe(0);
    expect(result.calls).toEqual([`[update][--pids-limit][1024][${id}]`, `[inspect][-f][{{.HostConfig.PidsLimit}}][${id}]`]);
    expect(result.stdout.trim()).toBe("pids limit 1024");
  });

  it("fails, naming both values, when the engine does not hold the limit (e.g. no pids cgroup)", () => {
    const result = runWithDocker(pidsLimitCommand(id, 1024), "0");
    expect(result.status).toBe(1);
    expect(result.stderr).toContain("the engine holds 0, expected 1024");
  });

  it("quotes whatever it is given as the container, and refuses a limit that is no limit", () => {
    const result = runWithDocker(pidsLimitCommand("a b; touch /tmp/x", 64), "64");
    expect(result.calls[0]).toBe("[update][--pids-limit][64][a b; touch /tmp/x]");
    expect(result.status).toBe(0);
    expect(() => pidsLimitCommand(id, 0)).toThrow(/not a pids limit/);
    expect(() => pidsLimitCommand(id, -1)).toThrow(/not a pids limit/);
  });
});
