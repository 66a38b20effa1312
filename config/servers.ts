/**
 * The stack's `servers` setting: a mapping from a server name to where that server is and what
 * it offers. Without it the stack has one Hetzner server named `host` built from the top-level
 * `serverType` and `location` (the layout before several servers existed, whose resource names
 * this keeps). Pure: no Pulumi imports.
 *
 * ```yaml
 * mai-hosting:servers:
 *   nbg1-a: { serverType: ccx53, location: nbg1 }     # kind: hetzner is the default
 *   local: { kind: local, httpPort: 8080, httpsPort: 8443 }
 *   # reserved, refused for now: an existing host over SSH
 *   # old-box: { kind: ssh, address: 203.0.113.9, user: root, port: 22 }
 * ```
 */
import { z } from "zod";
import { checkedString, cpuAmount, expecting, integerIn, mapping, serverNameProblem, zodIssuesToConfigIssues } from "./clientFile";

export { MAX_SERVER_NAME_LENGTH, serverNameProblem } from "./clientFile";
import { describeValue } from "./configIssues";
import type { ConfigIssue } from "./configIssues";
import type { LocalServerSpec, ServerSpec } from "./model";
import { SERVER_TYPE_NAMES } from "./serverTypes";
import type { FieldPath } from "./yamlSource";
import { MAX_UNIX_SOCKET_PATH_BYTES } from "../policy/caddyfile";
import { localHostPaths } from "../policy/localHost";
import { proxyAdminSocket } from "../policy/proxyPolicy";

/** Name of the one server of a stack without `servers`; its resources keep the single-server names. */
export const DEFAULT_SERVER_NAME = "host";

/** Docker Engine of a local server unless its settings name another. */
export const DEFAULT_LOCAL_DOCKER_HOST = "unix:///var/run/docker.sock";

/** Where a local server keeps its host files unless its settings name another directory. */
export function defaultLocalStateDir(serverName: string): string {
  return `/var/tmp/mai-hosting/${serverName}`;
}

/** What `kind: ssh` will take once it is built; named in the refusal so the format is known. */
export const SSH_SERVER_FIELDS = "address, user, port";

function hetznerSchema(locations: readonly string[]) {
  return mapping(
    {
      kind: z.literal("hetzner", { error: expecting('"hetzner", "local" or "ssh"') }).optional(),
      serverType: z
        .enum(SERVER_TYPE_NAMES as [string, ...string[]], { error: expecting(`a Hetzner CCX server type (${SERVER_TYPE_NAMES.join(", ")})`) })
        .optional(),
      location: z.enum(locations as [string, ...string[]], { error: expecting(`a Hetzner location (${locations.join(", ")})`) }).optional(),
    },
    "a mapping with serverType and/or location",
  );
}

const localSchema = mapping(
  {
    kind: z.literal("local"),
    httpPort: integerIn(1, 65535).default(8080),
    httpsPort: integerIn(1, 65535).default(8443),
    stateDir: checkedString("an absolute directory path", (value) =>
      value.startsWith("/") && !value.includes("\0") && !/\s/.test(value)
        ? undefined
        : `expected an absolute directory path without spaces, like "/var/tmp/mai-hosting/local", got ${describeValue(value)}`,
    ).optional(),
    dockerHost: checkedString("a Docker Engine endpoint", (value) =>
      /^(unix:\/\/\/\S+|tcp:\/\/\S+)$/.test(value)
        ? undefined
        : `expected a Docker Engine endpoint like "${DEFAULT_LOCAL_DOCKER_HOST}" or "tcp://127.0.0.1:2375", got ${describeValue(value)}`,
    ).optional(),
    cpus: cpuAmount().optional(),
  },
  "a mapping with kind: local and httpPort, httpsPort, stateDir, dockerHost and/or cpus",
);

/** Result of `parseServers`. */
export interface ParsedServers {
  servers: ServerSpec[];
  issues: ConfigIssue[];
}

/**
 * Validates the `servers` mapping (already decoded from YAML or JSON). `defaults` fill a Hetzner
 * server's missing serverType and location; `issueAt` turns a field path into a located issue.
 */
export function parseServers(
  value: unknown,
  defaults: { serverType: string; location: string; locations: readonly string[] },
  file: string,
  lineOf: (fieldPath: FieldPath) => number | undefined,
  prefix: (path: string) => string,
): ParsedServers {
  const issues: ConfigIssue[] = [];
  const issue = (fieldPath: FieldPath, message: string) =>
    issues.push({ file, line: lineOf(fieldPath), path: prefix(fieldPath.map(String).join(".")), message });

  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    issue(["servers"], `expected a mapping of server names to settings, like { nbg1-a: { serverType: ccx53 } }, got ${describeValue(value)}`);
    return { servers: [], issues };
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 0) issue(["servers"], "expected at least one server (or leave servers out for one Hetzner server)");

  const servers: ServerSpec[] = [];
  for (const [name, raw] of entries) {
    const nameProblem = serverNameProblem(name);
    if (nameProblem !== undefined) {
      issue(["servers", name], nameProblem);
      continue;
    }
    const settings = raw ?? {};
    const kind = typeof settings === "object" && !Array.isArray(settings) ? (settings as { kind?: unknown }).kind ?? "hetzner" : "hetzner";
    if (kind === "ssh") {
      issue(
        ["servers", name, "kind"],
        `"ssh" (an existing host reached over SSH, with ${SSH_SERVER_FIELDS}) is reserved and not supported yet; use kind "hetzner" (the default) or "local"`,
      );
      continue;
    }
    const schema = kind === "local" ? localSchema : hetznerSchema(defaults.locations);
    const parsed = schema.safeParse(settings);
    if (!parsed.success) {
      for (const found of zodIssuesToConfigIssues(file, schema, parsed.error.issues, lineOf, ["servers", name])) {
        issues.push({ ...found, path: prefix(found.path) });
      }
      continue;
    }
    if (kind === "local") {
      const local = parsed.data as z.output<typeof localSchema>;
      const spec: LocalServerSpec = {
        name,
        kind: "local",
        httpPort: local.httpPort,
        httpsPort: local.httpsPort,
        stateDir: (local.stateDir ?? defaultLocalStateDir(name)).replace(/\/+$/, ""),
        dockerHost: local.dockerHost ?? DEFAULT_LOCAL_DOCKER_HOST,
        ...(local.cpus === undefined ? {} : { cpus: local.cpus }),
      };
      servers.push(spec);
      if (local.httpPort === local.httpsPort) issue(["servers", name, "httpsPort"], `must differ from httpPort (${local.httpPort})`);
      // The proxy's admin socket lives below the state directory (policy/proxyPolicy.ts).
      const socketBytes = Buffer.byteLength(proxyAdminSocket(localHostPaths(spec.stateDir)));
      if (socketBytes > MAX_UNIX_SOCKET_PATH_BYTES) {
        const room = MAX_UNIX_SOCKET_PATH_BYTES - (socketBytes - Buffer.byteLength(spec.stateDir));
        issue(
          ["servers", name, "stateDir"],
          `too long: the proxy's admin socket below it would have a ${socketBytes}-byte path, and a unix socket path has at most ${MAX_UNIX_SOCKET_PATH_BYTES}; use a directory of at most ${room} bytes`,
        );
      }
    } else {
      const hetzner = parsed.data as { serverType?: string; location?: string };
      servers.push({ name, kind: "hetzner", serverType: hetzner.serverType ?? defaults.serverType, location: hetzner.location ?? defaults.location });
    }
  }

  // Local servers share this machine: each needs its own engine, ports and directory.
  const locals = servers.filter((server): server is LocalServerSpec => server.kind === "local");
  const claimed = new Map<string, string>();
  for (const server of locals) {
    const claims: Array<[FieldPath, string, string]> = [
      [["servers", server.name, "dockerHost"], `engine ${server.dockerHost}`, "the same Docker Engine"],
      [["servers", server.name, "httpPort"], `port ${server.httpPort}`, `port ${server.httpPort} on 127.0.0.1`],
      [["servers", server.name, "httpsPort"], `port ${server.httpsPort}`, `port ${server.httpsPort} on 127.0.0.1`],
      [["servers", server.name, "stateDir"], `dir ${server.stateDir}`, `the state directory ${server.stateDir}`],
    ];
    for (const [fieldPath, key, what] of claims) {
      const owner = claimed.get(key);
      if (owner !== undefined && owner !== server.name) {
        issue(fieldPath, `${what} is already used by local server "${owner}"; give each local server its own`);
      } else {
        claimed.set(key, server.name);
      }
    }
  }
  return { servers, issues };
}

/**
 * Where clients without `server:` run: the stack's `defaultServer` setting, else its only server,
 * else the server named `host` (a single-server stack that grew keeps its clients where they are).
 * Never "the first in the file": Pulumi hands the program its config objects with their keys in
 * name order, so adding a server that sorts first would silently move every such client.
 */
export function chooseDefaultServer(servers: readonly ServerSpec[], requested: string | undefined): { name?: string } | { problem: string } {
  const names = servers.map((server) => server.name);
  if (requested !== undefined) {
    return names.includes(requested) ? { name: requested } : { problem: `"${requested}" is not one of the stack's servers (${names.join(", ")})` };
  }
  if (names.length === 1) return { name: names[0] };
  if (names.includes(DEFAULT_SERVER_NAME)) return { name: DEFAULT_SERVER_NAME };
  // No default: every client must name its server (configuration.ts says so per file).
  return {};
}

/** The server list of a stack without `servers`: one Hetzner server named `host`. */
export function defaultServers(serverType: string, location: string): ServerSpec[] {
  return [{ name: DEFAULT_SERVER_NAME, kind: "hetzner", serverType, location }];
}
