/**
 * The stack setting `servers` and the client field `server`: defaults, the local kind, the
 * reserved ssh kind, what a Hetzner server requires, and where each client is placed.
 */
import { describe, expect, it } from "vitest";
import { ConfigError, formatIssue } from "../config/configIssues";
import { type ClientSource, type Configuration, resolveConfiguration } from "../config/configuration";

const HETZNER_VALUES = {
  domain: "mai-hosting.eu",
  cloudflareZoneId: "0123456789abcdef0123456789abcdef",
  sshPublicKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPSC1l/62VRwD1a2oO5ETlwMnjE84napWFyJKnqj306o ops@mai-hosting.eu"],
  adminCidrs: ["203.0.113.10/32"],
  defaultImage: "ghcr.io/mai-hosting/mai:1.4.2",
  acmeEmail: "ops@mai-hosting.eu",
};
const LOCAL_VALUES = { domain: "localhost", defaultImage: "mai-local/workspace:1", servers: { local: { kind: "local" } } };

const client = (slug: string, text: string): ClientSource => ({ file: `clients/${slug}.yaml`, text });
const resolve = (values: Record<string, unknown>, clients: ClientSource[] = []): Configuration =>
  resolveConfiguration({ file: "Pulumi.test.yaml", values }, clients);
function issues(values: Record<string, unknown>, clients: ClientSource[] = []): string[] {
  try {
    resolve(values, clients);
  } catch (error) {
    if (error instanceof ConfigError) return error.issues.map(formatIssue);
    throw error;
  }
  throw new Error("expected the configuration to be refused");
}

describe("servers", () => {
  it("without servers: one Hetzner server named host from serverType and location", () => {
    const { settings } = resolve({ ...HETZNER_VALUES, serverType: "ccx33", location: "fsn1" });
    expect(settings.servers).toEqual([{ name: "host", kind: "hetzner", serverType: "ccx33", location: "fsn1" }]);
  });

  it("a Hetzner server takes the top-level serverType and location unless it names its own", () => {
    const { settings } = resolve({ ...HETZNER_VALUES, serverType: "ccx43", servers: { "nbg1-a": {}, "hel1-b": { serverType: "ccx23", location: "hel1" } } });
    expect(settings.servers).toEqual([
      { name: "nbg1-a", kind: "hetzner", serverType: "ccx43", location: "nbg1" },
      { name: "hel1-b", kind: "hetzner", serverType: "ccx23", location: "hel1" },
    ]);
  });

  it("accepts servers as Pulumi's runtime config gives them (a JSON string)", () => {
    const { settings } = resolve({ ...HETZNER_VALUES, servers: JSON.stringify({ "nbg1-a": { serverType: "ccx23" } }) });
    expect(settings.servers[0]).toMatchObject({ name: "nbg1-a", serverType: "ccx23" });
  });

  it("a local server gets loopback ports, a state directory and the local socket by default", () => {
    const { settings } = resolve(LOCAL_VALUES);
    expect(settings.servers).toEqual([
      { name: "local", kind: "local", httpPort: 8080, httpsPort: 8443, stateDir: "/var/tmp/mai-hosting/local", dockerHost: "unix:///var/run/docker.sock" },
    ]);
    // A local-only stack needs no Cloudflare zone, SSH keys, admin networks or ACME e-mail.
    expect(settings.cloudflareZoneId).toBeUndefined();
    expect(settings.sshPublicKeys).toEqual([]);
  });

  it("refuses bad names, bad local settings and local servers sharing an engine or ports, all at once", () => {
    expect(
      issues({
        ...LOCAL_VALUES,
        servers: {
          Bad_Name: {},
          local: { kind: "local", httpPort: 8443, stateDir: "relative/dir", dockerHost: "http://x" },
          second: { kind: "local", httpPort: 9080, httpsPort: 9443, stateDir: "/tmp/second" },
          third: { kind: "weird" },
        },
      }),
    ).toEqual([
      'Pulumi.test.yaml: mai-hosting:servers.Bad_Name: expected a server name of 1-30 characters a-z, 0-9 and "-" (a DNS label, e.g. "nbg1-a"), got "Bad_Name"',
      'Pulumi.test.yaml: mai-hosting:servers.local.stateDir: expected an absolute directory path without spaces, like "/var/tmp/mai-hosting/local", got "relative/dir"',
      'Pulumi.test.yaml: mai-hosting:servers.local.dockerHost: expected a Docker Engine endpoint like "unix:///var/run/docker.sock" or "tcp://127.0.0.1:2375", got "http://x"',
      'Pulumi.test.yaml: mai-hosting:servers.third.kind: expected "hetzner", "local" or "ssh", got "weird"',
    ]);
    expect(issues({ ...LOCAL_VALUES, servers: { a: { kind: "local" }, b: { kind: "local", stateDir: "/tmp/b" } } })).toEqual([
      'Pulumi.test.yaml: mai-hosting:servers.b.dockerHost: the same Docker Engine is already used by local server "a"; give each local server its own',
      'Pulumi.test.yaml: mai-hosting:servers.b.httpPort: port 8080 on 127.0.0.1 is already used by local server "a"; give each local server its own',
      'Pulumi.test.yaml: mai-hosting:servers.b.httpsPort: port 8443 on 127.0.0.1 is already used by local server "a"; give each local server its own',
    ]);
  });

  it("refuses a state directory too long for the proxy's admin socket below it (unix socket paths: 107 bytes)", () => {
    // <stateDir>/state/caddy-admin/admin.sock: 29 bytes after the directory.
    const longest = `/${"s".repeat(77)}`;
    expect(resolve({ ...LOCAL_VALUES, servers: { local: { kind: "local", stateDir: longest } } }).settings.servers[0]).toMatchObject({ stateDir: longest });
    expect(issues({ ...LOCAL_VALUES, servers: { local: { kind: "local", stateDir: `${longest}x` } } })).toEqual([
      "Pulumi.test.yaml: mai-hosting:servers.local.stateDir: too long: the proxy's admin socket below it would have a 108-byte path, and a unix socket path has at most 107; use a directory of at most 78 bytes",
    ]);
  });

  it("refuses kind ssh (reserved) naming the fields it will take", () => {
    expect(issues({ ...HETZNER_VALUES, servers: { "old-box": { kind: "ssh", address: "203.0.113.9", user: "root", port: 22 } } })).toEqual([
      'Pulumi.test.yaml: mai-hosting:servers.old-box.kind: "ssh" (an existing host reached over SSH, with address, user, port) is reserved and not supported yet; use kind "hetzner" (the default) or "local"',
    ]);
  });

  it("a Hetzner server needs the zone, SSH keys, admin networks and ACME e-mail, and a real domain", () => {
    expect(issues({ domain: "localhost", defaultImage: "ghcr.io/mai-hosting/mai:1.4.2", servers: { "nbg1-a": {} } })).toEqual([
      "Pulumi.test.yaml: mai-hosting:cloudflareZoneId: missing; expected the Cloudflare zone id of the domain (32 lower-case hex characters) (needed for the Hetzner server nbg1-a)",
      "Pulumi.test.yaml: mai-hosting:sshPublicKeys: missing; expected a list of OpenSSH public keys (root logins use them) (needed for the Hetzner server nbg1-a)",
      'Pulumi.test.yaml: mai-hosting:adminCidrs: missing; expected a list of CIDRs allowed to reach SSH, like "203.0.113.7/32" (needed for the Hetzner server nbg1-a)',
      "Pulumi.test.yaml: mai-hosting:acmeEmail: missing; expected an e-mail address for Let's Encrypt notices (needed for the Hetzner server nbg1-a)",
      'Pulumi.test.yaml: mai-hosting:domain: "localhost" is only for a stack of local servers; the Hetzner servers (nbg1-a) need a domain in Cloudflare',
    ]);
  });
});

describe("a client's server", () => {
  const twoServers = { ...HETZNER_VALUES, servers: { "nbg1-a": {}, "fsn1-b": { location: "fsn1" } } };

  it("follows the file's server:, and without one runs on the stack's defaultServer, never on whichever server the file lists first", () => {
    const withDefault = { ...twoServers, defaultServer: "fsn1-b" };
    const { clients } = resolve(withDefault, [client("acme", "name: A\nport: 3001\n"), client("globex", "name: G\nport: 3002\nserver: nbg1-a\n")]);
    expect(clients.map((c) => `${c.slug}@${c.server}`)).toEqual(["acme@fsn1-b", "globex@nbg1-a"]);
  });

  it("without defaultServer, a server named host is the default (a single-server stack that grew keeps its clients)", () => {
    const grown = { ...HETZNER_VALUES, servers: { "fsn1-b": { location: "fsn1" }, host: {} } };
    const { clients } = resolve(grown, [client("acme", "name: A\nport: 3001\n")]);
    expect(clients.map((c) => c.server)).toEqual(["host"]);
  });

  it("with several servers and no default, a client without server: is refused (Pulumi does not keep the file's order)", () => {
    expect(issues(twoServers, [client("acme", "name: A\nport: 3001\n")])).toEqual([
      "clients/acme.yaml: server: missing; the stack has several servers (nbg1-a, fsn1-b) and no default: name the server here, or set mai-hosting:defaultServer in Pulumi.test.yaml",
    ]);
    expect(issues({ ...twoServers, defaultServer: "hel1-c" }, [client("acme", "name: A\nport: 3001\nserver: nbg1-a\n")])).toEqual([
      'Pulumi.test.yaml: mai-hosting:defaultServer: "hel1-c" is not one of the stack\'s servers (nbg1-a, fsn1-b)',
    ]);
  });

  it("refuses an unknown server in a stack with Hetzner servers, naming file, line, field and the servers", () => {
    expect(issues(twoServers, [client("globex", "name: G\nport: 3002\nserver: hel1-c\n")])).toEqual([
      'clients/globex.yaml:3: server: unknown server "hel1-c"; expected one of the stack\'s servers: nbg1-a, fsn1-b (mai-hosting:servers in Pulumi.test.yaml)',
    ]);
    expect(issues(twoServers, [client("globex", "name: G\nport: 3002\nserver: Nope!\n")])[0]).toMatch(/globex\.yaml:3: server: expected a server name/);
  });

  it("in a stack of local servers only, runs a client pinned to a production server on the first server, with a warning", () => {
    const configuration = resolve(LOCAL_VALUES, [client("globex", "name: G\nport: 3002\nserver: nbg1-a\n")]);
    expect(configuration.clients[0].server).toBe("local");
    expect(configuration.warnings).toEqual([
      'clients/globex.yaml: server "nbg1-a" is not a server of this stack (local); the client runs on "local" (a stack of local servers stands in for every server)',
    ]);
  });

  it("on a local server that states its CPUs, lowers larger CPU limits (Docker refuses them) and says so", () => {
    const values = { ...LOCAL_VALUES, servers: { local: { kind: "local", cpus: 2 } } };
    const configuration = resolve(values, [client("acme", "name: A\nport: 3001\nresources:\n  cpus: 4\n  reservations:\n    cpus: 3\n")]);
    expect(configuration.clients[0].resources).toMatchObject({ cpus: 2, reservedCpus: 2 });
    expect(configuration.warnings).toContain('clients/acme.yaml: CPU limit 4 lowered to the 2 CPUs of local server "local" (mai-hosting:servers.local.cpus)');
    expect(configuration.capacity[0]).toMatchObject({ serverName: "local", checked: false, activeClients: 1 });
  });
});
