/**
 * Builds the local stack's images with nothing but Debian packages, the Go module proxy and the
 * Docker engine (no registry): each image is a file tree piped into `docker import`. An image is
 * rebuilt only when the hash of everything it is made of (files, recipe, image settings) differs
 * from the hash stored in its label, so a second run is a no-op in seconds.
 */
import { execFileSync, spawn, spawnSync } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { CADDY_VERSION } from "../../policy/caddyRelease";
import { IMAGE_CONTENT_LABEL, LOCAL_OPEN_WEBUI_IMAGE, LOCAL_PROXY_IMAGE, LOCAL_WORKSPACE_IMAGE } from "../../policy/localImages";
import { acquireFileLock } from "./fileLock";
import { OPEN_WEBUI_IMAGE_CHANGES, OPEN_WEBUI_ROOTFS_RECIPE, openWebuiRootfs } from "./openWebuiImage";
import { type CachedTree, type RootfsRecipe, cachedTree, debootstrap } from "./rootfs";

export { cacheDir, debianMirror } from "./rootfs";

const repoRoot = path.join(__dirname, "..", "..");

/** Lock that keeps two builds (tests, the CLI) from racing on the same tags. */
export const IMAGE_BUILD_LOCK = path.join(os.tmpdir(), "mai-hosting-images.lock");

/** One thing in an image's file tree. */
export type TreeEntry =
  | { path: string; kind: "dir"; mode: number }
  | { path: string; kind: "file"; source: string; mode: number }
  | { path: string; kind: "text"; content: string; mode: number }
  | { path: string; kind: "symlink"; target: string };

/** Hash of a file tree: paths, modes, link targets and file contents, in a stable order. */
export function hashTree(entries: readonly TreeEntry[]): string {
  const hash = createHash("sha256");
  for (const entry of [...entries].sort((a, b) => a.path.localeCompare(b.path))) {
    if (entry.kind === "symlink") hash.update(`L ${entry.path} -> ${entry.target}\n`);
    else if (entry.kind === "dir") hash.update(`D ${entry.path} ${entry.mode.toString(8)}\n`);
    else {
      const content = entry.kind === "file" ? fs.readFileSync(entry.source) : Buffer.from(entry.content);
      hash.update(`F ${entry.path} ${entry.mode.toString(8)} ${createHash("sha256").update(content).digest("hex")}\n`);
    }
  }
  return hash.digest("hex");
}

/** Writes a tree into `dir` (which must exist). */
function stageTree(entries: readonly TreeEntry[], dir: string): void {
  for (const entry of entries) {
    const target = path.join(dir, entry.path);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    if (entry.kind === "dir") fs.mkdirSync(target, { recursive: true });
    else if (entry.kind === "symlink") fs.symlinkSync(entry.target, target);
    else if (entry.kind === "file") fs.copyFileSync(entry.source, target);
    else fs.writeFileSync(target, entry.content);
    // After creation: mkdir and writeFile apply the umask, and 1777 needs an explicit chmod.
    if (entry.kind !== "symlink") fs.chmodSync(target, entry.mode);
  }
}

/** Whether an ELF executable runs without a dynamic loader (no PT_INTERP program header). */
export function isStaticElf(file: string): boolean {
  // The ELF header and program headers sit at the start of the file: read only those.
  const fd = fs.openSync(file, "r");
  const data = Buffer.alloc(64 * 1024);
  try {
    fs.readSync(fd, data, 0, data.length, 0);
  } finally {
    fs.closeSync(fd);
  }
  if (data.length < 64 || data.readUInt32BE(0) !== 0x7f454c46 || data[4] !== 2) return false; // 64-bit ELF only
  const little = data[5] === 1;
  const u16 = (offset: number): number => (little ? data.readUInt16LE(offset) : data.readUInt16BE(offset));
  const u32 = (offset: number): number => (little ? data.readUInt32LE(offset) : data.readUInt32BE(offset));
  const programHeaders = Number(little ? data.readBigUInt64LE(0x20) : data.readBigUInt64BE(0x20));
  const entrySize = u16(0x36);
  const count = u16(0x38);
  const PT_INTERP = 3;
  if (programHeaders + count * entrySize > data.length) return false;
  for (let i = 0; i < count; i++) if (u32(programHeaders + i * entrySize) === PT_INTERP) return false;
  return true;
}

/** What the workspace stand-in's root file system is made of; its hash names the cache entry. */
export const WORKSPACE_ROOTFS_RECIPE: RootfsRecipe = {
  suite: "bookworm",
  variant: "minbase",
  include: ["python3", "curl", "sqlite3", "ca-certificates"],
  // Left out of the image: apt's downloaded lists and packages, and what the engine provides at run time.
  exclude: ["./dev/*", "./proc/*", "./sys/*", "./var/lib/apt/lists/*", "./var/cache/apt/*"],
};

/** One image to build. */
interface ImageRecipe {
  tag: string;
  /** Everything the image is made of, for the content label. */
  contentHash: string;
  /** `docker import --change` instructions (the content label is added on top). */
  changes: string[];
  /** Writes the image's tar stream: [command, args] of a `tar -c` process. */
  tarCommand: (stageDir: string) => string[];
  /** Files to write into the staging directory before tar runs. */
  staged: readonly TreeEntry[];
  /** A slow input to prepare first (the root file system); returns a note for the report. */
  prepare?: () => string;
}

/** What happened to one image. */
export interface BuildOutcome {
  /** Image tag. */
  tag: string;
  /** Whether it was (re)built or already up to date. */
  action: "built" | "up to date";
  /** Wall seconds spent on this image (including its slow inputs). */
  seconds: number;
  /** Image size in MB as the engine reports it. */
  sizeMb: number;
  /** Extra detail (e.g. that the root file system came from the cache). */
  note?: string;
}

const PATH_ENV = "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** The pinned Caddy binary (built once by scripts/install-caddy.sh, cached). */
function caddyBinary(): string {
  return execFileSync("bash", [path.join(repoRoot, "scripts", "install-caddy.sh")], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
}

function busyboxBinary(): string {
  const candidates = ["/bin/busybox", "/usr/bin/busybox"];
  const found = candidates.find((candidate) => fs.existsSync(candidate));
  if (!found || !isStaticElf(found)) {
    throw new Error(
      `the proxy image needs a statically linked busybox (${found ? `${found} is dynamically linked` : "none found"}): apt-get install busybox-static`,
    );
  }
  return found;
}

function proxyRecipe(): ImageRecipe {
  const busybox = busyboxBinary();
  const applets = execFileSync(busybox, ["--list"], { encoding: "utf8" })
    .split("\n")
    .map((name) => name.trim())
    .filter((name) => /^[A-Za-z0-9_.[-]+$/.test(name) && name !== "busybox");
  const dir = (p: string, mode = 0o755): TreeEntry => ({ path: p, kind: "dir", mode });
  const caCertificates = "/etc/ssl/certs/ca-certificates.crt";
  const entries: TreeEntry[] = [
    ...["bin", "usr/bin", "etc/caddy", "etc/ssl/certs", "data", "config", "srv"].map((p) => dir(p)),
    dir("root", 0o700),
    dir("tmp", 0o1777),
    { path: "bin/busybox", kind: "file", source: busybox, mode: 0o755 },
    ...applets.map((name): TreeEntry => ({ path: `bin/${name}`, kind: "symlink", target: "busybox" })),
    { path: "usr/bin/caddy", kind: "file", source: caddyBinary(), mode: 0o755 },
    { path: "etc/caddy/Caddyfile", kind: "file", source: path.join(repoRoot, "images", "caddy", "Caddyfile"), mode: 0o644 },
    { path: "etc/passwd", kind: "text", content: "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", mode: 0o644 },
    { path: "etc/group", kind: "text", content: "root:x:0:\nnogroup:x:65534:\n", mode: 0o644 },
    { path: "etc/nsswitch.conf", kind: "text", content: "hosts: files dns\n", mode: 0o644 },
    // Trust store for outgoing TLS (ACME, HTTPS upstreams), as the official image has.
    ...(fs.existsSync(caCertificates) ? [{ path: "etc/ssl/certs/ca-certificates.crt", kind: "file", source: caCertificates, mode: 0o644 } as TreeEntry] : []),
  ];
  // Same settings as the official Caddy image.
  const changes = [
    PATH_ENV,
    "ENV XDG_CONFIG_HOME=/config",
    "ENV XDG_DATA_HOME=/data",
    "ENV HOME=/root",
    "WORKDIR /srv",
    "EXPOSE 80 443 443/udp 2019",
    'CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]',
  ];
  return {
    tag: LOCAL_PROXY_IMAGE,
    contentHash: createHash("sha256").update(JSON.stringify({ tree: hashTree(entries), changes, caddy: CADDY_VERSION })).digest("hex"),
    changes,
    staged: entries,
    tarCommand: (stage) => ["tar", "--numeric-owner", "--owner=0", "--group=0", "-C", stage, "-c", "."],
  };
}

/** The cached Debian root file system of the workspace stand-in; built with debootstrap when missing. */
function workspaceRootfs(): CachedTree {
  const key = createHash("sha256").update(JSON.stringify(WORKSPACE_ROOTFS_RECIPE)).digest("hex").slice(0, 16);
  return cachedTree("workspace-rootfs-", key, (partial) => debootstrap(WORKSPACE_ROOTFS_RECIPE, partial));
}

function workspaceRecipe(): ImageRecipe {
  const rootfs = workspaceRootfs();
  const app: TreeEntry[] = [
    { path: "app", kind: "dir", mode: 0o755 },
    { path: "app/workspace.py", kind: "file", source: path.join(repoRoot, "images", "workspace", "workspace.py"), mode: 0o644 },
    { path: "app/backend", kind: "dir", mode: 0o755 },
    { path: "app/backend/data", kind: "dir", mode: 0o755 },
  ];
  const changes = [
    PATH_ENV,
    "ENV LANG=C.UTF-8",
    "ENV DATA_DIR=/app/backend/data",
    "ENV PORT=8080",
    "WORKDIR /app/backend",
    "EXPOSE 8080",
    'CMD ["python3", "-u", "/app/workspace.py"]',
  ];
  return {
    tag: LOCAL_WORKSPACE_IMAGE,
    contentHash: createHash("sha256")
      .update(JSON.stringify({ rootfs: rootfs.key, recipe: WORKSPACE_ROOTFS_RECIPE, app: hashTree(app), changes }))
      .digest("hex"),
    changes,
    staged: app,
    prepare: rootfs.prepare,
    tarCommand: (stage) => [
      "tar",
      "--numeric-owner",
      ...WORKSPACE_ROOTFS_RECIPE.exclude.map((pattern) => `--exclude=${pattern}`),
      "-C",
      rootfs.dir,
      "-c",
      ".",
      "-C",
      stage,
      "app",
    ],
  };
}

/** The real app (scripts/lib/openWebuiImage.ts): its whole tree is the cached root file system. */
function openWebuiRecipe(): ImageRecipe {
  const rootfs = openWebuiRootfs();
  const changes = [...OPEN_WEBUI_IMAGE_CHANGES];
  return {
    tag: LOCAL_OPEN_WEBUI_IMAGE,
    contentHash: createHash("sha256").update(JSON.stringify({ rootfs: rootfs.contentKey, recipe: OPEN_WEBUI_ROOTFS_RECIPE, changes })).digest("hex"),
    changes,
    staged: [],
    prepare: rootfs.prepare,
    tarCommand: () => ["tar", "--numeric-owner", ...OPEN_WEBUI_ROOTFS_RECIPE.exclude.map((pattern) => `--exclude=${pattern}`), "-C", rootfs.dir, "-c", "."],
  };
}

function docker(args: string[]): string {
  return execFileSync("docker", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
}

/** The image's id and content label, or undefined when the engine has no such image. */
function existingImage(tag: string): { id: string; contentHash: string } | undefined {
  try {
    const [id, contentHash] = docker(["image", "inspect", "-f", `{{.Id}} {{index .Config.Labels "${IMAGE_CONTENT_LABEL}"}}`, tag]).split(" ");
    return { id, contentHash };
  } catch {
    return undefined;
  }
}

/** Pipes `tar -c` into `docker import`. */
function importTree(recipe: ImageRecipe, stage: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const [tarCmd, ...tarArgs] = recipe.tarCommand(stage);
    const changes = [...recipe.changes, `LABEL ${IMAGE_CONTENT_LABEL}=${recipe.contentHash}`].flatMap((change) => ["--change", change]);
    const tar = spawn(tarCmd, tarArgs, { stdio: ["ignore", "pipe", "pipe"] });
    const importer = spawn("docker", ["import", ...changes, "-", recipe.tag], { stdio: ["pipe", "pipe", "pipe"] });
    let errors = "";
    tar.stderr.on("data", (chunk: Buffer) => (errors += chunk.toString()));
    importer.stderr.on("data", (chunk: Buffer) => (errors += chunk.toString()));
    importer.stdout.resume();
    tar.stdout.pipe(importer.stdin);
    importer.stdin.on("error", () => undefined); // reported through the exit codes
    const exits = [tar, importer].map((child) => new Promise<number | null>((done) => child.on("close", done)));
    tar.on("error", reject);
    importer.on("error", reject);
    void Promise.all(exits).then(([tarCode, importCode]) => {
      if (tarCode === 0 && importCode === 0) resolve();
      else reject(new Error(`importing ${recipe.tag} failed (tar exit ${tarCode}, docker import exit ${importCode}): ${errors.trim()}`));
    });
  });
}

async function buildImage(recipe: ImageRecipe): Promise<BuildOutcome> {
  const started = Date.now();
  const seconds = (): number => (Date.now() - started) / 1000;
  const sizeMb = (): number => Math.round(Number(docker(["image", "inspect", "-f", "{{.Size}}", recipe.tag])) / 1e6);
  const before = existingImage(recipe.tag);
  if (before?.contentHash === recipe.contentHash) return { tag: recipe.tag, action: "up to date", seconds: seconds(), sizeMb: sizeMb() };

  const note = recipe.prepare?.();
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), "mai-image-"));
  fs.chmodSync(stage, 0o755); // it becomes the image's "/" in the proxy image
  try {
    stageTree(recipe.staged, stage);
    await importTree(recipe, stage);
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
  // The replaced image is ours (it had the content label); drop it unless a container still uses it.
  if (before?.contentHash) spawnSync("docker", ["image", "rm", before.id], { stdio: "ignore" });
  return { tag: recipe.tag, action: "built", seconds: seconds(), sizeMb: sizeMb(), note };
}

/** Builds every local image that is missing or out of date; holds the build lock meanwhile. */
export async function buildLocalImages(report: (line: string) => void = (line) => console.log(line)): Promise<BuildOutcome[]> {
  const engine = spawnSync("docker", ["info", "--format", "{{.ServerVersion}}"], { encoding: "utf8", timeout: 20_000 });
  if (engine.status !== 0) {
    const reason = engine.error ? "the docker command is not installed" : (engine.stderr ?? "").trim().split("\n")[0];
    throw new Error(`no Docker engine answers (${reason}): install docker.io and start it as root with \`dockerd >/var/log/dockerd.log 2>&1 &\``);
  }
  const lock = await acquireFileLock(IMAGE_BUILD_LOCK, 10 * 60_000, "another image build");
  try {
    const outcomes: BuildOutcome[] = [];
    for (const recipe of [proxyRecipe, workspaceRecipe, openWebuiRecipe]) {
      const outcome = await buildImage(recipe());
      outcomes.push(outcome);
      report(
        `local-images: ${outcome.tag} ${outcome.action} (${outcome.seconds.toFixed(1)} s, ${outcome.sizeMb} MB)${outcome.note ? `; ${outcome.note}` : ""}`,
      );
    }
    return outcomes;
  } finally {
    await lock.release();
  }
}
