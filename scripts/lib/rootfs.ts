/**
 * Root file systems for the local images, made once and cached outside the repository: a
 * debootstrapped Debian tree (from the mirror this machine's apt uses), and the helpers to run
 * commands for it and keep only complete trees in the cache.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

/** Where slow-to-make inputs (the Debian root file system) are cached, outside the repository. */
export function cacheDir(): string {
  return path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), ".cache"), "mai-hosting");
}

/**
 * The Debian mirror this machine's apt uses, from one-line `sources.list` and deb822 `.sources`
 * texts: the first `deb` source with the `main` component for `suite`; failing that (a machine on
 * another release), the first with `main` whose URI is a Debian archive (`…/debian`).
 */
export function debianMirror(sources: readonly string[], suite: string): string | undefined {
  const found: { uri: string; suites: string[]; components: string[] }[] = [];
  for (const text of sources) {
    for (const line of text.split("\n")) {
      const words = line.replace(/#.*/, "").replace(/\[[^\]]*\]/, "").trim().split(/\s+/);
      if (words[0] === "deb" && words.length >= 4) found.push({ uri: words[1], suites: [words[2]], components: words.slice(3) });
    }
    for (const stanza of text.split(/\n\s*\n/)) {
      const field = (name: string): string[] => {
        const match = stanza.match(new RegExp(`^${name}:[ \\t]*(.*)$`, "mi"));
        return match ? match[1].trim().split(/\s+/) : [];
      };
      if (/^Enabled:\s*no\s*$/im.test(stanza) || !field("Types").includes("deb")) continue;
      for (const uri of field("URIs")) found.push({ uri, suites: field("Suites"), components: field("Components") });
    }
  }
  const withMain = found.filter((source) => source.components.includes("main"));
  return (
    withMain.find((source) => source.suites.includes(suite))?.uri ??
    withMain.find((source) => /\/debian\/?$/.test(source.uri))?.uri
  );
}

/** Reads apt's source lists on this machine. */
function aptSources(): string[] {
  const files = ["/etc/apt/sources.list"];
  const dir = "/etc/apt/sources.list.d";
  if (fs.existsSync(dir)) for (const name of fs.readdirSync(dir).sort()) if (/\.(list|sources)$/.test(name)) files.push(path.join(dir, name));
  return files.filter((file) => fs.existsSync(file)).map((file) => fs.readFileSync(file, "utf8"));
}

/** What a debootstrapped root file system is made of; its hash names the cache entry. */
export interface RootfsRecipe {
  /** Debian suite. */
  suite: string;
  /** debootstrap variant. */
  variant: string;
  /** Packages on top of the variant. */
  include: string[];
  /** tar patterns left out of the image. */
  exclude: string[];
}

/** A cached tree: its directory, the key in its name, and how to make it when missing. */
export interface CachedTree {
  /** Where the complete tree is (or will be). */
  dir: string;
  /** Short content key (part of `dir`). */
  key: string;
  /** Makes the tree when it is missing; returns a note for the report. */
  prepare: () => string;
}

/** Runs a child process; throws with its last output lines when it fails. */
export function run(command: string, args: string[], what: string, options: { cwd?: string } = {}): string {
  const result = spawnSync(command, args, { encoding: "utf8", maxBuffer: 256 * 1024 * 1024, cwd: options.cwd });
  if (result.error) throw new Error(`${what}: ${result.error.message}`);
  if (result.status !== 0) {
    const output = `${result.stdout ?? ""}${result.stderr ?? ""}`.trim().split("\n").slice(-15).join("\n");
    throw new Error(`${what} failed (exit ${result.status}):\n${output}`);
  }
  return result.stdout;
}

/**
 * Makes a tree in the cache only once: `build` fills a partial directory, which gets the final
 * name only when complete. Under the build lock nobody else builds: earlier partial trees and
 * trees of other recipes with the same prefix are leftovers and go.
 */
export function cachedTree(prefix: string, key: string, build: (partial: string) => string): CachedTree {
  const dir = path.join(cacheDir(), `${prefix}${key}`);
  const prepare = (): string => {
    if (fs.existsSync(dir)) return `${prefix.replace(/-$/, "")} from the cache (${dir})`;
    if (process.getuid?.() !== 0) throw new Error(`building ${prefix.replace(/-$/, "")} needs root (debootstrap, chroot)`);
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    for (const name of fs.readdirSync(path.dirname(dir))) {
      if (name.startsWith(prefix)) fs.rmSync(path.join(path.dirname(dir), name), { recursive: true, force: true });
    }
    const partial = `${dir}.partial-${process.pid}`;
    const started = Date.now();
    try {
      const note = build(partial);
      fs.renameSync(partial, dir); // only a complete tree ever carries the final name
      return `${note} in ${((Date.now() - started) / 1000).toFixed(1)} s (cached in ${dir})`;
    } catch (error) {
      fs.rmSync(partial, { recursive: true, force: true });
      throw error;
    }
  };
  return { dir, key, prepare };
}

/** Fills `target` with a Debian root file system by debootstrap. */
export function debootstrap(recipe: RootfsRecipe, target: string): string {
  if (spawnSync("debootstrap", ["--version"]).error) throw new Error("debootstrap is not installed: apt-get install debootstrap");
  const mirror = process.env.MAI_DEBIAN_MIRROR ?? debianMirror(aptSources(), recipe.suite) ?? "http://deb.debian.org/debian";
  console.error(`local-images: debootstrap ${recipe.suite} (${recipe.variant}, +${recipe.include.join(",")}) from ${mirror}...`);
  run("debootstrap", [`--variant=${recipe.variant}`, `--include=${recipe.include.join(",")}`, recipe.suite, target, mirror], "debootstrap");
  return "root file system built with debootstrap";
}

