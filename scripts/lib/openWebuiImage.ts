/**
 * The local Open WebUI image: a Debian bookworm root file system (its Python 3.11, which the
 * pinned release supports), a virtual environment with exactly the wheels of
 * images/open-webui/requirements.lock, and the release's own "slim" mode (USE_SLIM_DOCKER): chat
 * through OpenAI-compatible APIs with SQLite, without torch, sentence-transformers, chromadb or any
 * model download. Runs as an unprivileged user and starts under a read-only root file system.
 *
 * The lock is the release's `requirements-slim.txt` resolved for this Python, plus open-webui
 * itself installed without its (full, several GB) dependency list; `relockOpenWebui` remakes it.
 */
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { OPEN_WEBUI_VERSION } from "../../policy/localImages";
import { type CachedTree, type RootfsRecipe, cachedTree, debootstrap, run } from "./rootfs";
import { packagesFromPipReport, parseLock, renderLock } from "./pythonLock";

const repoRoot = path.join(__dirname, "..", "..");

/** The committed lock: every wheel the image installs, pinned and hashed. */
export const OPEN_WEBUI_LOCK_FILE = path.join(repoRoot, "images", "open-webui", "requirements.lock");

/** Debian packages of the image: Python, curl for the health check, sqlite3 for operators. */
export const OPEN_WEBUI_ROOTFS_RECIPE: RootfsRecipe = {
  suite: "bookworm",
  variant: "minbase",
  include: ["python3", "python3-venv", "curl", "sqlite3", "ca-certificates"],
  // Manual pages and message catalogues serve nobody in a container.
  exclude: ["./dev/*", "./proc/*", "./sys/*", "./tmp/*", "./var/lib/apt/lists/*", "./var/cache/apt/*", "./usr/share/man/*", "./usr/share/locale/*"],
};

/** Where the virtual environment lives in the image. */
export const OPEN_WEBUI_VENV = "/opt/open-webui";

/** The unprivileged user the app runs as (owner of the data directory). */
export const OPEN_WEBUI_USER = { name: "app", uid: 10001, gid: 10001 };

/** Open WebUI's data directory in the image (the client's volume is mounted here). */
export const OPEN_WEBUI_DATA_DIR = "/app/backend/data";

/** `docker import --change` settings of the image. */
export const OPEN_WEBUI_IMAGE_CHANGES: readonly string[] = [
  `ENV PATH=${OPEN_WEBUI_VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
  "ENV LANG=C.UTF-8",
  `ENV DATA_DIR=${OPEN_WEBUI_DATA_DIR}`,
  // The release's own slim mode: no local embedding model, vector store only on demand.
  "ENV USE_SLIM_DOCKER=true",
  // No version check, no Hugging Face downloads, no pip installs of plugin requirements at start.
  "ENV OFFLINE_MODE=true",
  // Open WebUI copies its static files here at every start: outside the (possibly read-only) venv.
  "ENV STATIC_DIR=/tmp/open-webui/static",
  "ENV PYTHONDONTWRITEBYTECODE=1",
  // Caches a library might write stay out of the data volume (and so out of backups).
  "ENV HOME=/tmp",
  // `open-webui serve` keeps a generated secret key in the working directory when none is given.
  `WORKDIR ${OPEN_WEBUI_DATA_DIR}`,
  `USER ${OPEN_WEBUI_USER.uid}:${OPEN_WEBUI_USER.gid}`,
  "EXPOSE 8080",
  'CMD ["open-webui", "serve", "--host", "0.0.0.0", "--port", "8080"]',
];

/** The lock file's packages; throws with every bad line. */
export function readOpenWebuiLock(file = OPEN_WEBUI_LOCK_FILE): ReturnType<typeof parseLock> & { text: string } {
  if (!fs.existsSync(file)) return { problems: [`${path.relative(repoRoot, file)} is missing`], text: "" };
  const text = fs.readFileSync(file, "utf8");
  return { ...parseLock(text, path.relative(repoRoot, file)), text };
}

/** Commands run inside a tree, with a clean environment (no pip settings of this machine leak in). */
function inChroot(root: string, argv: string[], what: string, env: Record<string, string> = {}): string {
  const base: Record<string, string> = {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    HOME: "/root",
    LANG: "C.UTF-8",
    PIP_DISABLE_PIP_VERSION_CHECK: "1",
    PIP_NO_CACHE_DIR: "1",
    PIP_NO_INPUT: "1",
    ...env,
  };
  return run("chroot", [root, "/usr/bin/env", "-i", ...Object.entries(base).map(([k, v]) => `${k}=${v}`), ...argv], what);
}

/**
 * Lets pip inside `root` reach the package index for the duration of `fn`: this machine's name
 * servers and trust store (which may hold a proxy's CA), and its index setting when one is given.
 * Nothing of it stays in the tree.
 */
function withIndexAccess<T>(root: string, fn: (env: Record<string, string>) => T): T {
  const resolv = path.join(root, "etc", "resolv.conf");
  const savedResolv = fs.existsSync(resolv) ? fs.readFileSync(resolv) : undefined;
  const caInTree = path.join(root, "tmp", "mai-build-ca.crt");
  const env: Record<string, string> = {};
  try {
    if (fs.existsSync("/etc/resolv.conf")) {
      fs.rmSync(resolv, { force: true });
      fs.copyFileSync("/etc/resolv.conf", resolv);
    }
    const hostCa = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"].find((file) => fs.existsSync(file));
    if (hostCa) {
      fs.copyFileSync(hostCa, caInTree);
      env.PIP_CERT = "/tmp/mai-build-ca.crt";
    }
    if (process.env.PIP_INDEX_URL) env.PIP_INDEX_URL = process.env.PIP_INDEX_URL;
    return fn(env);
  } finally {
    fs.rmSync(caInTree, { force: true });
    fs.rmSync(resolv, { force: true });
    if (savedResolv !== undefined) fs.writeFileSync(resolv, savedResolv);
  }
}

function shortHash(value: unknown): string {
  return createHash("sha256").update(JSON.stringify(value)).digest("hex").slice(0, 16);
}

/** Debian with Python, the app user and an empty virtual environment: the base of the image and of a relock. */
export function openWebuiBase(): CachedTree {
  const key = shortHash({ recipe: OPEN_WEBUI_ROOTFS_RECIPE, venv: OPEN_WEBUI_VENV, user: OPEN_WEBUI_USER });
  return cachedTree("open-webui-base-", key, (partial) => {
    const note = debootstrap(OPEN_WEBUI_ROOTFS_RECIPE, partial);
    const { name, uid, gid } = OPEN_WEBUI_USER;
    inChroot(partial, ["groupadd", "--gid", String(gid), name], "groupadd");
    inChroot(partial, ["useradd", "--uid", String(uid), "--gid", String(gid), "--home-dir", "/nonexistent", "--no-create-home", "--shell", "/usr/sbin/nologin", name], "useradd");
    inChroot(partial, ["python3", "-m", "venv", OPEN_WEBUI_VENV], "python3 -m venv");
    return `${note}, with a virtual environment`;
  });
}

/** The image's complete root file system: the base plus every locked wheel and the data directory. */
export function openWebuiRootfs(): CachedTree & { contentKey: string } {
  const base = openWebuiBase();
  const lock = readOpenWebuiLock();
  if ("problems" in lock) throw new Error(`the Open WebUI lock is not usable:\n${lock.problems.join("\n")}\nRemake it with: npm run local:images -- --relock-open-webui`);
  const pinned = lock.packages.find((pkg) => pkg.name === "open-webui");
  if (pinned?.version !== OPEN_WEBUI_VERSION) {
    throw new Error(
      `images/open-webui/requirements.lock pins open-webui ${pinned?.version ?? "not at all"}, policy/localImages.ts ${OPEN_WEBUI_VERSION}: remake the lock with npm run local:images -- --relock-open-webui`,
    );
  }
  const key = shortHash({ base: base.key, lock: lock.text, data: OPEN_WEBUI_DATA_DIR });
  const tree = cachedTree("open-webui-rootfs-", key, (partial) => {
    base.prepare();
    run("cp", ["-a", base.dir, partial], "copying the base root file system");
    fs.copyFileSync(OPEN_WEBUI_LOCK_FILE, path.join(partial, "tmp", "requirements.lock"));
    const pip = `${OPEN_WEBUI_VENV}/bin/pip`;
    console.error(`local-images: downloading ${lock.packages.length} locked wheels (open-webui ${OPEN_WEBUI_VERSION})...`);
    withIndexAccess(partial, (env) =>
      inChroot(partial, [pip, "download", "--no-deps", "--require-hashes", "--only-binary=:all:", "--dest", "/tmp/wheels", "-r", "/tmp/requirements.lock"], "pip download", env),
    );
    const downloadedBytes = fs.readdirSync(path.join(partial, "tmp", "wheels")).reduce((sum, file) => sum + fs.statSync(path.join(partial, "tmp", "wheels", file)).size, 0);
    // --no-deps: open-webui's declared dependencies are the full set; the lock is what it needs.
    inChroot(partial, [pip, "install", "--no-index", "--no-deps", "--require-hashes", "--only-binary=:all:", "--find-links", "/tmp/wheels", "-r", "/tmp/requirements.lock"], "pip install");
    // The release runs here, and every module the server imports at start is there (a lock that
    // misses one fails now, not in a container). Its files go with /tmp below.
    const smoke = { FROM_INIT_PY: "true", DATA_DIR: "/tmp/smoke", STATIC_DIR: "/tmp/smoke/static", WEBUI_SECRET_KEY: "build-smoke-test", USE_SLIM_DOCKER: "true", OFFLINE_MODE: "true" };
    const version = inChroot(partial, [`${OPEN_WEBUI_VENV}/bin/open-webui`, "main", "--version"], "open-webui main --version", smoke).trim();
    if (!version.endsWith(` ${OPEN_WEBUI_VERSION}`)) throw new Error(`the installed open-webui says "${version}", expected ${OPEN_WEBUI_VERSION}`);
    inChroot(partial, [`${OPEN_WEBUI_VENV}/bin/python`, "-c", "import open_webui.main"], "importing open_webui.main", smoke);
    for (const entry of fs.readdirSync(path.join(partial, "tmp"))) fs.rmSync(path.join(partial, "tmp", entry), { recursive: true, force: true });
    const data = path.join(partial, OPEN_WEBUI_DATA_DIR);
    fs.mkdirSync(data, { recursive: true, mode: 0o755 });
    fs.chownSync(data, OPEN_WEBUI_USER.uid, OPEN_WEBUI_USER.gid);
    return `Open WebUI ${OPEN_WEBUI_VERSION} installed (${lock.packages.length} wheels, ${(downloadedBytes / 1e6).toFixed(1)} MB downloaded)`;
  });
  return { ...tree, contentKey: key };
}

/**
 * Remakes images/open-webui/requirements.lock for OPEN_WEBUI_VERSION: downloads the release's
 * wheel, resolves its `requirements-slim.txt` with the image's own Python, and writes every
 * wheel with its hash. Returns a summary line.
 */
export function relockOpenWebui(): string {
  const base = openWebuiBase();
  base.prepare();
  const work = path.join(base.dir, "tmp", `mai-relock-${process.pid}`);
  fs.mkdirSync(work, { recursive: true });
  const inTree = `/tmp/${path.basename(work)}`;
  const pip = `${OPEN_WEBUI_VENV}/bin/pip`;
  try {
    return withIndexAccess(base.dir, (env) => {
      inChroot(base.dir, [pip, "download", "--no-deps", "--only-binary=:all:", "--dest", `${inTree}/release`, `open-webui==${OPEN_WEBUI_VERSION}`], "pip download open-webui", env);
      const wheel = fs.readdirSync(path.join(work, "release")).find((file) => file.endsWith(".whl"));
      if (!wheel) throw new Error(`pip downloaded no wheel of open-webui ${OPEN_WEBUI_VERSION}`);
      const extract = `import sys, zipfile; sys.stdout.write(zipfile.ZipFile(sys.argv[1]).read("requirements-slim.txt").decode())`;
      const slim = inChroot(base.dir, ["python3", "-c", extract, `${inTree}/release/${wheel}`], "reading requirements-slim.txt from the wheel");
      fs.writeFileSync(path.join(work, "requirements-slim.txt"), slim);
      inChroot(
        base.dir,
        [pip, "install", "--dry-run", "--ignore-installed", "--only-binary=:all:", "--quiet", "--report", `${inTree}/report.json`, "-r", `${inTree}/requirements-slim.txt`],
        "resolving requirements-slim.txt",
        env,
      );
      const packages = packagesFromPipReport(JSON.parse(fs.readFileSync(path.join(work, "report.json"), "utf8")));
      const release = { name: "open-webui", version: OPEN_WEBUI_VERSION, sha256: createHash("sha256").update(fs.readFileSync(path.join(work, "release", wheel))).digest("hex") };
      const text = renderLock(
        [release, ...packages],
        [
          `Every wheel of the local Open WebUI image (CPython 3.11, Debian bookworm, x86_64), installed with`,
          `pip install --no-deps --require-hashes. open-webui ${OPEN_WEBUI_VERSION} itself plus its requirements-slim.txt,`,
          `resolved. Generated by: npm run local:images -- --relock-open-webui (do not edit by hand).`,
        ],
      );
      fs.writeFileSync(OPEN_WEBUI_LOCK_FILE, text);
      return `wrote ${path.relative(repoRoot, OPEN_WEBUI_LOCK_FILE)}: open-webui ${OPEN_WEBUI_VERSION} and ${packages.length} dependencies`;
    });
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
