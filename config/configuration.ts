/**
 * The one entry point from configuration files to the validated model, shared by the Pulumi
 * program and the CLIs. It checks everything (stack settings, every client file, cross-file rules,
 * capacity) and throws one `ConfigError` carrying all issues, so a single run shows every mistake.
 */
import * as fs from "fs";
import * as path from "path";
import { assessCapacity, type CapacityReport } from "../policy/capacity";
import {
  ALLOWED_CLIENT_ENV_KEY,
  type ValidClientFile,
  defaultAdminEmail,
  hostnameProblem,
  idnaLabelProblem,
  isClientFileName,
  slugFromFileName,
  validateClientFile,
} from "./clientFile";
import { clientEnvRefusal } from "../policy/clientEnvPolicy";
import { isInZone } from "../policy/dns";
import { hostServicePorts } from "../policy/hostPorts";
import { type ConfigIssue, ConfigError, secretKind } from "./configIssues";
import type { ClientSpec, ServerSpec, StackSettings } from "./model";
import { checkMoveFields } from "../policy/move";
import { PROJECT, SECRET_CONFIG_KEYS, allowedClientEnvFromValues, parseStackSettings } from "./stackSettings";
import { formatMemory, memoryMb } from "./units";
import { type FieldPath, formatPath, parseYamlMapping, readYamlFile } from "./yamlSource";

/** The `mai-hosting` stack config values, wherever they were read from. */
export interface StackConfigSource {
  /** File named in messages, e.g. `Pulumi.prod.yaml`. */
  file: string;
  /** Values keyed WITHOUT the `mai-hosting:` prefix; YAML-typed or Pulumi config strings. */
  values: Record<string, unknown>;
  /** Line of a config path (without prefix) in `file`, when the values were read from it. */
  lineOf?: (fieldPath: FieldPath) => number | undefined;
}

/** One client file's content. */
export interface ClientSource {
  /** Path as given (relative to the working directory), e.g. `clients/acme.yaml`. */
  file: string;
  /** File content (possibly cut at the size limit; see `sizeBytes`). */
  text: string;
  /** Real file size in bytes, when `text` was cut while reading. */
  sizeBytes?: number;
}

/** Everything the program needs, validated and with all defaults applied. */
export interface Configuration {
  /** Stack-wide settings. */
  settings: StackSettings;
  /** Every client (active and suspended), ordered by slug. */
  clients: ClientSpec[];
  /** Capacity of each server against its active clients, in the stack's server order. */
  capacity: CapacityReport[];
  /** Acceptable but noteworthy findings (e.g. CPU overcommit). */
  warnings: string[];
}

const STACK_ISSUE_RANK = 0;
const CLIENT_ISSUE_RANK = 1;

/** Validates the stack config and all client files together; throws `ConfigError` with every issue. */
export function resolveConfiguration(stack: StackConfigSource, clientSources: ClientSource[]): Configuration {
  const issues: ConfigIssue[] = [];
  const stackLineOf = stack.lineOf ?? (() => undefined);

  const settingsResult = parseStackSettings(stack);
  if (!settingsResult.ok) issues.push(...settingsResult.issues);
  const settings = settingsResult.ok ? settingsResult.settings : undefined;
  // Client files are checked against the stack's allowances even when another stack setting is wrong.
  const allowances = settings?.allowedClientEnv ?? allowedClientEnvFromValues(stack.values);
  const allowedFor = (file: string): readonly string[] => {
    const named = slugFromFileName(file);
    return "slug" in named ? (allowances[named.slug] ?? []) : [];
  };

  // Single-file checks; partial results still take part in the port check.
  const valid: ValidClientFile[] = [];
  const ports: Array<{ slug: string; file: string; port: number; lineOf?: (fieldPath: FieldPath) => number | undefined }> = [];
  const seenSlugs = new Map<string, string>();
  const sources = [...clientSources].sort((a, b) => compareText(a.file, b.file));
  for (const source of sources) {
    const result = validateClientFile(source.file, source.text, source.sizeBytes, allowedFor(source.file));
    const slug = result.ok ? result.client.slug : result.partial?.slug;
    if (slug !== undefined) {
      const first = seenSlugs.get(slug);
      if (first !== undefined) {
        issues.push({ file: source.file, path: "", message: `same slug "${slug}" as ${first}; keep one of the two files` });
        continue;
      }
      seenSlugs.set(slug, source.file);
    }
    if (result.ok) {
      valid.push(result.client);
      ports.push({ slug: result.client.slug, file: source.file, port: result.client.content.port, lineOf: result.client.lineOf });
    } else {
      issues.push(...result.issues);
      if (result.partial?.port !== undefined) {
        ports.push({ slug: slug ?? source.file, file: source.file, port: result.partial.port, lineOf: result.partial.lineOf });
      }
    }
  }
  valid.sort((a, b) => compareText(a.slug, b.slug));
  ports.sort((a, b) => compareText(a.slug, b.slug));

  // Cross-file: ports.
  const portOwners = new Map<number, { slug: string; file: string }>();
  for (const entry of ports) {
    const owner = portOwners.get(entry.port);
    if (owner === undefined) {
      portOwners.set(entry.port, entry);
    } else {
      issues.push({
        file: entry.file,
        line: entry.lineOf?.(["port"]),
        path: "port",
        message: `port ${entry.port} is already used by ${owner.file} ("${owner.slug}"); every client needs its own port`,
      });
    }
  }

  let clients: ClientSpec[] = [];
  let capacity: CapacityReport[] | undefined;
  const warnings: string[] = [];
  if (settings !== undefined) {
    const resolved = valid.map((client) => resolveClient(client, settings, stack.file));
    for (const result of resolved) {
      issues.push(...result.issues);
      warnings.push(...result.warnings);
    }
    clients = resolved.map((result) => result.spec);
    issues.push(...hostnameCollisions(valid, clients));
    issues.push(...zoneNameIssues(valid, clients, settings.domain));
    warnings.push(...allowanceWarnings(valid, settings, stack.file));

    const lineOfFile = new Map(valid.map((client) => [client.file, client.lineOf]));
    const assessment = assessCapacity(clients, settings, stack.file);
    capacity = assessment.reports;
    for (const found of assessment.issues) {
      if (found.file === stack.file) {
        issues.push({ ...found, line: stackLineOf(found.path.split(".")), path: `${PROJECT}:${found.path}` });
      } else {
        issues.push({ ...found, line: lineOfFile.get(found.file)?.(found.path.split(".")) });
      }
    }
  }

  if (issues.length > 0 || settings === undefined || capacity === undefined) {
    throw new ConfigError(orderIssues(issues, stack.file));
  }
  return { settings, clients, capacity, warnings: [...warnings, ...capacity.flatMap((report) => report.warnings)] };
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Stack file first, then client files by name; within a file by line (stable). */
function orderIssues(issues: ConfigIssue[], stackFile: string): ConfigIssue[] {
  return issues
    .map((found, index) => ({ found, index }))
    .sort((a, b) => {
      const rankA = a.found.file === stackFile ? STACK_ISSUE_RANK : CLIENT_ISSUE_RANK;
      const rankB = b.found.file === stackFile ? STACK_ISSUE_RANK : CLIENT_ISSUE_RANK;
      if (rankA !== rankB) return rankA - rankB;
      if (a.found.file !== b.found.file) return compareText(a.found.file, b.found.file);
      const lineA = a.found.line ?? 0;
      const lineB = b.found.line ?? 0;
      return lineA !== lineB ? lineA - lineB : a.index - b.index;
    })
    .map(({ found }) => found);
}

/**
 * The server a client runs on: the one its file names, else the stack's default server. A name the
 * stack does not have is an error, except in a stack of local servers only: that stack stands in
 * for the whole fleet (it shares `clients/` with production), so such a client runs on its
 * default server and a warning says so.
 */
export function placeClient(
  requested: string | undefined,
  servers: readonly ServerSpec[],
  defaultServer: string | undefined,
): { server: string; unknown?: "error" | "fallback" | "missing" } {
  if (requested !== undefined && servers.some((server) => server.name === requested)) return { server: requested };
  if (defaultServer === undefined) return { server: servers[0].name, unknown: "missing" };
  if (requested === undefined) return { server: defaultServer };
  return { server: defaultServer, unknown: servers.every((server) => server.kind === "local") ? "fallback" : "error" };
}

/** Applies stack defaults to one valid client file and checks reservations against limits. */
function resolveClient(
  client: ValidClientFile,
  settings: StackSettings,
  stackFile: string,
): { spec: ClientSpec; issues: ConfigIssue[]; warnings: string[] } {
  const issues: ConfigIssue[] = [];
  const warnings: string[] = [];
  const content = client.content;
  const given = content.resources ?? {};
  const defaults = settings.defaultResources;

  const placement = placeClient(content.server, settings.servers, settings.defaultServer);
  const serverNames = settings.servers.map((server) => server.name).join(", ");
  if (placement.unknown === "missing") {
    issues.push({
      file: client.file,
      line: client.lineOf(["server"]),
      path: "server",
      message:
        content.server === undefined
          ? `missing; the stack has several servers (${serverNames}) and no default: name the server here, or set ${PROJECT}:defaultServer in ${stackFile}`
          : `unknown server "${content.server}"; expected one of the stack's servers: ${serverNames} (${PROJECT}:servers in ${stackFile})`,
    });
  } else if (placement.unknown === "error") {
    issues.push({
      file: client.file,
      line: client.lineOf(["server"]),
      path: "server",
      message: `unknown server "${content.server}"; expected one of the stack's servers: ${serverNames} (${PROJECT}:servers in ${stackFile})`,
    });
  } else if (placement.unknown === "fallback") {
    warnings.push(
      `${client.file}: server "${content.server}" is not a server of this stack (${serverNames}); the client runs on "${placement.server}" (a stack of local servers stands in for every server)`,
    );
  }
  const server = settings.servers.find((candidate) => candidate.name === placement.server)!;
  const takenBy = hostServicePorts(server, settings.servers).find((taken) => taken.port === content.port);
  if (takenBy !== undefined) {
    issues.push({
      file: client.file,
      line: client.lineOf(["port"]),
      path: "port",
      message: `port ${content.port} is taken by ${takenBy.owner}: Docker could not publish the workspace there, or the two would share it; choose another port`,
    });
  }
  if (content.moveFrom !== undefined && placement.unknown === undefined) {
    for (const problem of checkMoveFields([{ slug: client.slug, server: placement.server, moveFrom: content.moveFrom, status: content.status }], settings.servers.map((s) => s.name))) {
      issues.push({ file: client.file, line: client.lineOf(["moveFrom"]), path: "moveFrom", message: problem.message });
    }
  }

  const resources = {
    cpus: given.cpus ?? defaults.cpus,
    memoryMb: given.memory === undefined ? defaults.memoryMb : memoryMb(given.memory),
    reservedCpus: given.reservations?.cpus ?? defaults.reservedCpus,
    reservedMemoryMb: given.reservations?.memory === undefined ? defaults.reservedMemoryMb : memoryMb(given.reservations.memory),
    pidsLimit: given.pids ?? defaults.pidsLimit,
  };
  const origin = (value: unknown, defaultPath: string) =>
    value === undefined ? ` (stack default ${PROJECT}:defaultResources.${defaultPath})` : "";
  const reservationIssue = (kind: "cpus" | "memory", text: string) => {
    // Blame the value the user wrote: the reservation if given, else the limit.
    const reservationGiven = given.reservations?.[kind] !== undefined;
    const fieldPath = reservationGiven ? ["resources", "reservations", kind] : ["resources", kind];
    issues.push({ file: client.file, line: client.lineOf(fieldPath), path: formatPath(fieldPath), message: text });
  };
  if (resources.reservedCpus > resources.cpus) {
    reservationIssue(
      "cpus",
      `CPU reservation ${resources.reservedCpus}${origin(given.reservations?.cpus, "reservations.cpus")} exceeds the CPU limit ${resources.cpus}${origin(given.cpus, "cpus")}; ` +
        "a reservation must not exceed its limit",
    );
  }
  if (resources.reservedMemoryMb > resources.memoryMb) {
    reservationIssue(
      "memory",
      `memory reservation ${formatMemory(resources.reservedMemoryMb)}${origin(given.reservations?.memory, "reservations.memory")} exceeds the memory limit ${formatMemory(resources.memoryMb)}${origin(given.memory, "memory")}; ` +
        "a reservation must not exceed its limit",
    );
  }

  // Docker refuses a CPU limit above the machine's CPU count: a local machine that says how many
  // it has lowers larger limits (the examples ask for more than a small laptop has).
  if (server.kind === "local" && server.cpus !== undefined && resources.cpus > server.cpus) {
    warnings.push(
      `${client.file}: CPU limit ${resources.cpus} lowered to the ${server.cpus} CPUs of local server "${server.name}" (${PROJECT}:servers.${server.name}.cpus)`,
    );
    resources.cpus = server.cpus;
    resources.reservedCpus = Math.min(resources.reservedCpus, server.cpus);
  }

  const defaultHostname = `${client.slug}.${settings.domain}`;
  const defaultProblem = hostnameProblem(defaultHostname);
  if (defaultProblem !== undefined) {
    issues.push({ file: client.file, path: "", message: `the default host name ${defaultHostname} is not valid: ${defaultProblem}; use a shorter file name` });
  }
  const spec: ClientSpec = {
    slug: client.slug,
    file: client.file,
    name: content.name,
    admin: content.admin ?? defaultAdminEmail(defaultHostname),
    port: content.port,
    hostname: content.hostname ?? defaultHostname,
    defaultHostname,
    status: content.status,
    ...(content.moveFrom === undefined ? {} : { moveFrom: content.moveFrom }),
    image: content.image ?? settings.defaultImage,
    resources,
    env: { ...(content.env ?? {}) },
    ...(content.openrouter === undefined ? {} : { openrouter: { ...content.openrouter } }),
    server: placement.server,
  };
  return { spec, issues, warnings };
}

/**
 * Every served name must belong to one client. Default names (`<slug>.<domain>`) are unique by
 * construction, so a collision always involves an explicit `hostname`: blame that file.
 */
function hostnameCollisions(valid: ValidClientFile[], clients: ClientSpec[]): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const owners = new Map<string, { file: string; how: string }>();
  for (const client of clients) owners.set(client.defaultHostname, { file: client.file, how: "its default host name" });
  clients.forEach((client, index) => {
    if (valid[index].content.hostname === undefined) return;
    const owner = owners.get(client.hostname);
    if (owner !== undefined && owner.file !== client.file) {
      issues.push({
        file: client.file,
        line: valid[index].lineOf(["hostname"]),
        path: "hostname",
        message: `${client.hostname} is already served by ${owner.file} (${owner.how}); every host name belongs to one client`,
      });
    } else if (owner === undefined) {
      owners.set(client.hostname, { file: client.file, how: "its hostname" });
    }
  });
  return issues;
}

/**
 * Names a client's own `hostname` may not take: the zone apex and its `www` (the domain's own
 * website and mail, not a client's), a punycode or otherwise IDNA-reserved label under our zone (a
 * look-alike of another name there), and a name above or below another client's name (one site
 * could set cookies for the other's workspace).
 */
function zoneNameIssues(valid: ValidClientFile[], clients: ClientSpec[], domain: string): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const served = clients.flatMap((client, index) =>
    [...new Set([client.defaultHostname, client.hostname])].map((name) => ({
      name,
      client,
      // Two explicit names in conflict: the later file is blamed, once.
      blameableFrom: name === client.hostname && valid[index].content.hostname !== undefined ? index : -1,
    })),
  );
  clients.forEach((client, index) => {
    if (valid[index].content.hostname === undefined) return;
    const issue = (message: string) =>
      issues.push({ file: client.file, line: valid[index].lineOf(["hostname"]), path: "hostname", message });
    const hostname = client.hostname;
    if (hostname === domain || hostname === `www.${domain}`) {
      const what = hostname === domain ? "the zone apex: the domain itself" : "the zone's own web address";
      issue(`${hostname} is ${what} (its website and mail are the domain owner's, not a client's); use the default ${client.defaultHostname} or another name below ${domain}`);
      return;
    }
    if (isInZone(hostname, domain)) {
      const labels = hostname.slice(0, hostname.length - domain.length - 1).split(".");
      const reserved = labels.map(idnaLabelProblem).find((problem) => problem !== undefined);
      if (reserved !== undefined) {
        issue(`${reserved}; choose a plain name under ${domain}`);
        return;
      }
    }
    for (const other of served) {
      if (other.client.slug === client.slug || (other.blameableFrom >= 0 && other.blameableFrom > index)) continue;
      const below = hostname.endsWith(`.${other.name}`);
      const above = other.name.endsWith(`.${hostname}`);
      if (!below && !above) continue;
      issue(
        `${hostname} is ${below ? "below" : "above"} ${other.name}, which ${other.client.file} serves: either site could set cookies for the other's workspace; choose a name of its own`,
      );
      return;
    }
  });
  return issues;
}

/**
 * One warning per variable a client sets by allowance (so none is allowed silently), and one per
 * allowance naming a client the stack does not have (a future client of that name would get it).
 */
function allowanceWarnings(valid: ValidClientFile[], settings: StackSettings, stackFile: string): string[] {
  const warnings: string[] = [];
  const allowances = settings.allowedClientEnv ?? {};
  for (const client of valid) {
    for (const name of allowances[client.slug] ?? []) {
      const value = client.content.env?.[name];
      const refusal = value === undefined ? undefined : clientEnvRefusal(name, value);
      if (refusal === undefined) continue;
      warnings.push(`${client.file}: env.${name} ${refusal.reason}; allowed for "${client.slug}" by ${PROJECT}:${ALLOWED_CLIENT_ENV_KEY} in ${stackFile}`);
    }
  }
  const slugs = new Set(valid.map((client) => client.slug));
  for (const slug of Object.keys(allowances)) {
    if (!slugs.has(slug)) {
      warnings.push(`${stackFile}: ${PROJECT}:${ALLOWED_CLIENT_ENV_KEY}.${slug} names no client file; remove it (a future client "${slug}" would get its allowances)`);
    }
  }
  return warnings;
}

/** Reads the client files of `dir` (`.yaml`/`.yml`, not hidden, sorted); throws `ConfigError` when unreadable. */
export function readClientSources(dir: string): ClientSource[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const message =
      code === "ENOENT" ? "directory not found; expected a directory of client files (<slug>.yaml)" : `cannot read the directory (${code ?? "error"})`;
    throw new ConfigError([{ file: dir, path: "", message }]);
  }
  const sources: ClientSource[] = [];
  const issues: ConfigIssue[] = [];
  // Hidden files are editor artefacts (`.#acme.yaml` locks, swap files), never clients.
  for (const name of names.filter((entry) => isClientFileName(entry) && !entry.startsWith(".")).sort()) {
    const file = path.join(dir, name);
    try {
      // Never follow a link or read a device: a client file in a pull request could otherwise make
      // CI print another file's content (the process environment, a key) in a validation error.
      const entry = fs.lstatSync(file);
      if (entry.isSymbolicLink()) {
        issues.push({ file, path: "", message: "is a symbolic link; client files must be regular files (the link was not followed)" });
        continue;
      }
      if (entry.isDirectory()) continue; // a folder is not a client file
      if (!entry.isFile()) {
        issues.push({ file, path: "", message: "is not a regular file; client files must be regular files (nothing was read)" });
        continue;
      }
      const { text, sizeBytes } = readYamlFile(file);
      sources.push({ file, text, sizeBytes });
    } catch (error) {
      issues.push({ file, path: "", message: `cannot read the file (${(error as NodeJS.ErrnoException).code ?? "error"})` });
    }
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return sources;
}

/** The stack config as read from `Pulumi.<stack>.yaml`, plus what only the file can tell. */
export type StackFile = StackConfigSource & {
  /** Dotted paths of encrypted (`secure:`) values in the project namespace, e.g. `openrouterApiKeys.acme`. */
  secretPaths: string[];
  /** Problems with secrets in the file (e.g. a key stored in plain text). */
  issues: ConfigIssue[];
};

/**
 * Reads a Pulumi stack file for the CLIs. Encrypted values are not decrypted: only their paths are
 * listed. Other namespaces (`hcloud:token`, `cloudflare:apiToken`) are only checked for
 * credentials stored in plain text.
 */
export function readStackFile(file: string): StackFile {
  let read: { text: string; sizeBytes: number };
  try {
    read = readYamlFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const message =
      code === "ENOENT"
        ? `stack config not found; expected ${path.basename(file)} in the working directory (pulumi stack init creates it)`
        : `cannot read the file (${code ?? "error"})`;
    throw new ConfigError([{ file, path: "", message }]);
  }
  const parsed = parseYamlMapping(file, read.text, { sizeBytes: read.sizeBytes, expected: "stack file sections (config: ...)" });
  if (!parsed.ok) throw new ConfigError(parsed.issues);

  const config = parsed.mapping.value.config ?? {};
  if (typeof config !== "object" || config === null || Array.isArray(config)) {
    throw new ConfigError([{ file, line: parsed.mapping.lineOf(["config"]), path: "config", message: "expected a mapping of config keys" }]);
  }

  const values: Record<string, unknown> = {};
  const originalKey = new Map<string, string>();
  const foreignIssues: ConfigIssue[] = [];
  for (const [key, value] of Object.entries(config as Record<string, unknown>)) {
    const separator = key.indexOf(":");
    // Pulumi reads keys without a namespace as the project's own.
    const namespace = separator < 0 ? PROJECT : key.slice(0, separator);
    if (namespace !== PROJECT) {
      foreignIssues.push(...plainCredentialIssues(file, key, value, (rest) => parsed.mapping.lineOf(["config", key, ...rest])));
      continue;
    }
    const name = separator < 0 ? key : key.slice(separator + 1);
    values[name] = value;
    originalKey.set(name, key);
  }
  const lineOf = (fieldPath: FieldPath): number | undefined => {
    const [first, ...rest] = fieldPath;
    const key = originalKey.get(String(first));
    return key === undefined ? undefined : parsed.mapping.lineOf(["config", key, ...rest]);
  };

  const secretPaths: string[] = [];
  const issues: ConfigIssue[] = [];
  const walk = (value: unknown, fieldPath: Array<string | number>, isSecretKey: boolean) => {
    if (isEncrypted(value)) {
      secretPaths.push(fieldPath.join("."));
    } else if (typeof value === "object" && value !== null) {
      for (const [key, inner] of Object.entries(value)) walk(inner, [...fieldPath, Array.isArray(value) ? Number(key) : key], isSecretKey);
    } else if (isSecretKey && value !== null && value !== "") {
      issues.push({
        file,
        line: lineOf(fieldPath),
        path: `${PROJECT}:${formatPath(fieldPath)}`,
        message: `is stored in plain text (value not shown); remove it and set it with: pulumi config set --secret --path '${formatPath(fieldPath)}' <value>`,
      });
    }
  };
  for (const [name, value] of Object.entries(values)) {
    walk(value, [name], (SECRET_CONFIG_KEYS as readonly string[]).includes(name));
  }
  issues.push(...foreignIssues);
  return { file, values, lineOf, secretPaths: secretPaths.sort(), issues };
}

/**
 * Config key names that hold credentials in any provider's namespace (`hcloud:token`,
 * `cloudflare:apiToken`, `aws:secretKey`, `gcp:credentials`, `azure:clientSecret`,
 * `kubernetes:kubeconfig`, ...): the last word of the name, case and separators aside (a
 * `publicKey` is none).
 */
const CREDENTIAL_NAME = /(token|password|passwd|passphrase|secret|(?<!public)key|credentials?|kubeconfig|auth)$/;

/** Whether the config key (or nested field) `name` holds a credential. */
export function isCredentialName(name: string): boolean {
  return CREDENTIAL_NAME.test(name.toLowerCase().replace(/[^a-z0-9]/g, ""));
}

/**
 * Plain-text credentials under another namespace than the project's: Pulumi encrypts what
 * `pulumi config set --secret` stores (`{ secure: ... }`); anything else is readable by everyone
 * with the repository. Keys and nested fields are judged by their names, values by their look.
 */
function plainCredentialIssues(
  file: string,
  key: string,
  value: unknown,
  lineOf: (rest: Array<string | number>) => number | undefined,
): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const walk = (inner: unknown, rest: Array<string | number>, credential: boolean) => {
    if (isEncrypted(inner) || inner === null || inner === undefined || inner === "") return;
    if (typeof inner === "object") {
      // A list's items are what its name says; a mapping's fields say for themselves.
      for (const [field, nested] of Object.entries(inner)) {
        if (Array.isArray(inner)) walk(nested, [...rest, Number(field)], credential);
        else walk(nested, [...rest, field], isCredentialName(field));
      }
      return;
    }
    const looksSecret = typeof inner === "string" && secretKind(inner) !== undefined;
    if (!credential && !looksSecret) return;
    const inside = formatPath(rest);
    const fieldPath = rest.length === 0 ? key : `${key}${inside.startsWith("[") ? "" : "."}${inside}`;
    const command = rest.length === 0 ? `pulumi config set --secret ${key} <value>` : `pulumi config set --secret --path '${fieldPath}' <value>`;
    issues.push({
      file,
      line: lineOf(rest),
      path: fieldPath,
      message: `is stored in plain text (value not shown): everyone who can read ${path.basename(file)} has this credential; remove it, rotate it, and set it with: ${command}`,
    });
  };
  const name = key.slice(key.indexOf(":") + 1);
  walk(value, [], isCredentialName(name));
  return issues;
}

/** A Pulumi-encrypted config value as it appears in a stack file: `{ secure: "v1:..." }`. */
export function isEncrypted(value: unknown): value is { secure: string } {
  return (
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value) &&
    Object.keys(value).length === 1 &&
    typeof (value as { secure?: unknown }).secure === "string"
  );
}

/**
 * Reads a stack file and a client directory and resolves them: what `npm run check` and the plan
 * both validate. Throws one ConfigError with every issue of both; when the stack file is unusable,
 * each client file is still checked on its own so its mistakes are not hidden behind the stack's.
 */
export function loadConfigurationFiles(stackPath: string, clientsDir: string): { stackFile: StackFile; configuration: Configuration } {
  const issues: ConfigIssue[] = [];
  const collect = <T>(read: () => T): T | undefined => {
    try {
      return read();
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      issues.push(...error.issues);
      return undefined;
    }
  };
  const stackFile = collect(() => readStackFile(stackPath));
  const sources = collect(() => readClientSources(clientsDir));
  if (stackFile !== undefined) issues.push(...stackFile.issues);

  let configuration: Configuration | undefined;
  if (stackFile !== undefined && sources !== undefined) {
    configuration = collect(() => resolveConfiguration(stackFile, sources));
  } else if (sources !== undefined) {
    for (const source of sources) {
      const result = validateClientFile(source.file, source.text, source.sizeBytes);
      if (!result.ok) issues.push(...result.issues);
    }
  }
  if (issues.length > 0 || configuration === undefined || stackFile === undefined) throw new ConfigError(issues);
  return { stackFile, configuration };
}

/**
 * Slugs of active clients without an OpenRouter key: neither `openrouterApiKeys.<slug>` is set nor
 * a managed key is possible (the client asks for one with `openrouter.monthlyLimitUsd` and the
 * stack has `openrouterProvisioningKey`). Sorted.
 */
export function missingClientKeys(clients: ClientSpec[], secretPaths: string[]): string[] {
  const present = new Set(secretPaths);
  const canProvision = present.has("openrouterProvisioningKey");
  return clients
    .filter((client) => client.status === "active")
    .filter((client) => !present.has(`openrouterApiKeys.${client.slug}`))
    .filter((client) => !(canProvision && client.openrouter?.monthlyLimitUsd !== undefined))
    .map((client) => client.slug)
    .sort();
}

/**
 * Whether a client may run without an OpenRouter key: only in a stack of local servers, which is
 * for trying the hosting out (the workspace runs, no model answers). Production stacks refuse.
 */
export function keysOptional(settings: Pick<StackSettings, "servers">): boolean {
  return settings.servers.every((server) => server.kind === "local");
}

/** The warning for a client without a key in a stack of local servers (shared by the program and the plan). */
export function localMissingKeyWarning(slug: string, stack?: string): string {
  return `client "${slug}" has no OpenRouter key (a local stack runs it without one: no model answers): ${clientKeyCommand(slug, stack)}`;
}

/** The command that stores a client's OpenRouter key as a secret (optionally for a named stack). */
export function clientKeyCommand(slug: string, stack?: string): string {
  const stackOption = stack === undefined ? "" : ` --stack ${stack}`;
  return `pulumi config set${stackOption} --secret --path 'openrouterApiKeys.${slug}' <key>`;
}
