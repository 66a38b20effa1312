/**
 * The lock file of a Python image: every distribution pinned to one version and the sha256 of the
 * one wheel pip may install (`name==version --hash=sha256:<hex>`, one per line, the format
 * `pip install --require-hashes --no-deps -r` reads). Pure: rendering from pip's installation
 * report and parsing with located messages; no I/O.
 */

/** One pinned distribution. */
export interface LockedPackage {
  /** Normalised distribution name (PEP 503: lower case, runs of -_. as one "-"). */
  name: string;
  /** Exact version. */
  version: string;
  /** sha256 of the wheel, hex. */
  sha256: string;
}

/** PEP 503 normal form of a distribution name. */
export function normaliseName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, "-");
}

const SHA256 = /^[a-f0-9]{64}$/;

/**
 * The packages a `pip install --dry-run --report` would install, with the archive hash pip
 * recorded for each. Throws when the report is not one, or an entry has no sha256.
 */
export function packagesFromPipReport(report: unknown): LockedPackage[] {
  const install = (report as { install?: unknown })?.install;
  if (!Array.isArray(install)) throw new Error("not a pip installation report (no install list)");
  return install.map((entry: unknown, index) => {
    const item = entry as {
      metadata?: { name?: string; version?: string };
      download_info?: { url?: string; archive_info?: { hash?: string; hashes?: Record<string, string> } };
    };
    const name = item.metadata?.name;
    const version = item.metadata?.version;
    if (typeof name !== "string" || typeof version !== "string") throw new Error(`report entry ${index} has no name and version`);
    const archive = item.download_info?.archive_info;
    const sha256 = archive?.hashes?.sha256 ?? (archive?.hash?.startsWith("sha256=") ? archive.hash.slice("sha256=".length) : undefined);
    if (sha256 === undefined || !SHA256.test(sha256)) throw new Error(`report entry ${name}==${version} has no sha256 archive hash`);
    if (!String(item.download_info?.url ?? "").endsWith(".whl")) throw new Error(`${name}==${version} is not a wheel: the image installs wheels only`);
    return { name: normaliseName(name), version, sha256 };
  });
}

/** The lock file text: the header as comments, then one line per package, sorted by name. */
export function renderLock(packages: readonly LockedPackage[], header: readonly string[]): string {
  const seen = new Map<string, LockedPackage>();
  for (const pkg of packages) {
    const earlier = seen.get(pkg.name);
    if (earlier && (earlier.version !== pkg.version || earlier.sha256 !== pkg.sha256)) {
      throw new Error(`${pkg.name} is locked twice: ${earlier.version} and ${pkg.version}`);
    }
    seen.set(pkg.name, pkg);
  }
  const lines = [...seen.values()]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((pkg) => `${pkg.name}==${pkg.version} --hash=sha256:${pkg.sha256}`);
  return [...header.map((line) => `# ${line}`.trimEnd()), ...lines, ""].join("\n");
}

const LOCK_LINE = /^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+) --hash=sha256:([a-f0-9]{64})$/;

/** The packages of a lock file, or every line that is not a pinned, hashed requirement. */
export function parseLock(text: string, file = "requirements.lock"): { packages: LockedPackage[] } | { problems: string[] } {
  const packages: LockedPackage[] = [];
  const problems: string[] = [];
  const names = new Map<string, number>();
  text.split("\n").forEach((raw, index) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const at = `${file}:${index + 1}`;
    const match = LOCK_LINE.exec(line);
    if (match === null) {
      problems.push(`${at}: expected "name==version --hash=sha256:<64 hex digits>", got "${line.slice(0, 80)}"`);
      return;
    }
    const name = normaliseName(match[1]);
    const first = names.get(name);
    if (first !== undefined) problems.push(`${at}: ${name} is already locked on line ${first}`);
    names.set(name, index + 1);
    packages.push({ name, version: match[2], sha256: match[3] });
  });
  if (packages.length === 0 && problems.length === 0) problems.push(`${file}: no packages`);
  return problems.length > 0 ? { problems } : { packages };
}
