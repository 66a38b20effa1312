/**
 * The committed local stack (Pulumi.local.yaml) with the repository's example clients, under
 * Pulumi's mocks: the same program on the machine's own Docker Engine. No Hetzner, no Cloudflare,
 * Caddy on the host network bound to the loopback with the internal CA, host steps as local
 * commands, and no OpenRouter key needed.
 */
import * as fs from "fs";
import * as path from "path";
import { beforeAll, describe, expect, it } from "vitest";
import { runtimeConfigFromStackFile } from "../plan/stackConfig";
import { CADDY_VERSION } from "../policy/caddyRelease";
import { type DeclaredResource, type ProgramRun, runProgram } from "./support/programHarness";

const ROOT = path.join(__dirname, "..");
const STACK = runtimeConfigFromStackFile(fs.readFileSync(path.join(ROOT, "Pulumi.local.yaml"), "utf8"), "Pulumi.local.yaml");
const STATE_DIR = "/var/tmp/mai-hosting/local";
let run: ProgramRun;

const ofType = (type: string) => run.resources.filter((r) => r.type === type);
const named = (name: string): DeclaredResource => {
  const found = run.resources.find((r) => r.name === name);
  if (!found) throw new Error(`no resource ${name}; have: ${run.resources.map((r) => r.name).join(", ")}`);
  return found;
};

beforeAll(async () => {
  run = await runProgram({ config: STACK.values, secretKeys: STACK.secretKeys, clientsDir: path.join(ROOT, "clients") });
});

describe("local stack", () => {
  it("declares nothing at Hetzner or Cloudflare and no remote command", () => {
    const types = new Set(run.resources.map((r) => r.type));
    expect([...types].filter((type) => /^(hcloud|cloudflare):|^command:remote:/.test(type))).toEqual([]);
  });

  it("talks to the local socket and runs host steps as local bash commands against the same engine", () => {
    expect(named("local-docker").inputs.host).toBe("unix:///var/run/docker.sock");
    const commands = ofType("command:local:Command");
    expect(commands.length).toBeGreaterThan(0);
    for (const command of commands) {
      expect(command.inputs.interpreter).toEqual(["/bin/bash", "-c"]);
      expect(command.inputs.environment).toEqual({ DOCKER_HOST: "unix:///var/run/docker.sock" });
    }
  });

  it("runs one container per active client, plus Caddy; none for the suspended client", () => {
    const names = ofType("docker:index/container:Container").map((c) => c.inputs.name).sort();
    expect(names).toEqual(["mai-acme", "mai-mueller-steuerberatung", "mai-proxy"]);
  });

  it("runs Caddy from the locally built image on the host network", () => {
    expect(named("local-proxy-image").inputs.name).toBe(`mai-local/caddy:${CADDY_VERSION}`);
    const proxy = named("local-proxy-container").inputs;
    expect(proxy.networkMode).toBe("host");
    expect(proxy).not.toHaveProperty("ports");
    expect(proxy.volumes).toContainEqual({ hostPath: `${STATE_DIR}/caddy`, containerPath: "/etc/caddy", readOnly: true });
  });

  it("serves <slug>.localhost on 127.0.0.1 only, on the configured ports, with the internal CA", async () => {
    const caddyfile = named("local-proxy-caddyfile");
    expect(caddyfile.inputs.create).toContain(`${STATE_DIR}/caddy/Caddyfile.next`);
    const text: string = await caddyfile.inputs.stdin;
    expect(text.startsWith(`{\n\tdefault_bind 127.0.0.1\n\tadmin unix/${STATE_DIR}/state/caddy-admin/admin.sock\n\thttp_port 8080\n\thttps_port 8443\n\tlocal_certs\n`)).toBe(true);
    expect(text).not.toContain("email");
    expect(text).toMatch(/^mueller-steuerberatung\.localhost \{\n[\s\S]*?reverse_proxy 127\.0\.0\.1:3001 \{/m);
    expect(text).toContain("redir https://chat.acme-industrie.de:8443{uri} 308");
    expect(text).toMatch(/^nordlicht-design\.localhost \{[\s\S]*?HTML 503/m);
  });

  it("reloads through the apply script in the state directory, pointed at its Caddyfile directory", () => {
    expect(named("local-proxy-reload").inputs.create).toBe(
      `CADDY_HOST_DIR=${STATE_DIR}/caddy CADDY_IMAGE=mai-local/caddy:${CADDY_VERSION} bash ${STATE_DIR}/bin/mai-caddy-apply`,
    );
  });

  it("installs the backup scripts under the state directory but no systemd timer", () => {
    expect(ofType("mai:index:ClientBackup")).toEqual([]);
    expect(named("local-backup-tooling-install").inputs.create).not.toContain("systemctl");
    expect(named("acme-container").inputs.volumes).toContainEqual({ hostPath: `${STATE_DIR}/backups/acme`, containerPath: "/app/backups", readOnly: true });
  });

  it("starts clients without an OpenRouter key (the stack sets none) and without a managed key", () => {
    expect(ofType("pulumi-nodejs:dynamic/openrouter:Key")).toEqual([]);
    const envs = (named("mueller-steuerberatung-container").inputs.envs as { value: string[] }).value;
    expect(envs).toContain("OPENAI_API_KEY=");
  });

  it("lowers a CPU limit above the machine's to it, so Docker accepts the container", () => {
    expect(named("acme-container").inputs.cpus).toBe("2.0");
  });

  it("gives each client's URL with the proxy's port, and the server's shell", () => {
    expect(run.outputs.clientEndpoints).toMatchObject({
      "mueller-steuerberatung": { url: "https://mueller-steuerberatung.localhost:8443", port: 3001, server: "local", status: "active" },
      acme: { url: "https://chat.acme-industrie.de:8443", server: "local" },
    });
    expect(run.outputs.serverIpv4).toBeUndefined();
    expect(run.outputs.servers).toMatchObject({ local: { kind: "local" } });
  });
});
