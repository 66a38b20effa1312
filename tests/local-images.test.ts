/**
 * The pure pieces of `npm run local:images` (mirror discovery, static-binary check, content
 * hash) and the cross-process lock the image builds and engine tests share.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { CADDY_VERSION } from "../policy/caddyRelease";
import { LOCAL_IMAGES, LOCAL_OPEN_WEBUI_IMAGE, LOCAL_PROXY_IMAGE, LOCAL_WORKSPACE_IMAGE, OPEN_WEBUI_VERSION } from "../policy/localImages";
import { acquireFileLock } from "../scripts/lib/fileLock";
import { debianMirror, hashTree, isStaticElf, type TreeEntry } from "../scripts/lib/localImageBuild";
import { requireEngine, requireImages } from "./support/engine";

const scratch: string[] = [];
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mai-local-images-test-"));
  scratch.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of scratch.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

describe("image tags", () => {
  it("tags the proxy with the pinned Caddy release, Open WebUI with its pinned release, and lists every image", () => {
    expect(LOCAL_PROXY_IMAGE).toBe(`mai-local/caddy:${CADDY_VERSION}`);
    expect(LOCAL_OPEN_WEBUI_IMAGE).toBe(`mai-local/open-webui:${OPEN_WEBUI_VERSION}`);
    expect(LOCAL_IMAGES).toEqual([LOCAL_PROXY_IMAGE, LOCAL_WORKSPACE_IMAGE, LOCAL_OPEN_WEBUI_IMAGE]);
  });

  it("are the images the committed local stack runs (a Caddy upgrade cannot leave it behind)", () => {
    const stack = fs.readFileSync(path.join(__dirname, "..", "Pulumi.local.yaml"), "utf8");
    expect(stack).toContain(`mai-hosting:proxyImage: ${LOCAL_PROXY_IMAGE}\n`);
    expect(stack).toContain(`mai-hosting:defaultImage: ${LOCAL_OPEN_WEBUI_IMAGE}\n`);
  });
});

describe("debianMirror", () => {
  it("reads the main archive of the suite from deb822 .sources files, not the security suite", () => {
    const sources = [
      "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\nComponents: main\n",
      "Types: deb\n# comment\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main contrib\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
    ];
    expect(debianMirror(sources, "bookworm")).toBe("http://mirror.example/debian");
  });

  it("reads one-line sources.list entries with options, skipping comments, deb-src and disabled stanzas", () => {
    const list =
      "# deb http://old.example/debian bookworm main\ndeb-src http://src.example/debian bookworm main\n" +
      "deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main non-free\n";
    expect(debianMirror([list], "bookworm")).toBe("http://one.example/debian");
    expect(debianMirror(["Types: deb\nEnabled: no\nURIs: http://off.example/debian\nSuites: bookworm\nComponents: main\n"], "bookworm")).toBeUndefined();
  });

  it("prefers the suite's archive over third-party repositories listed first", () => {
    const vendor = "Types: deb\nURIs: https://deb.vendor.example/node_20.x\nSuites: nodistro\nComponents: main\n";
    const debian = "deb http://ftp.example/debian bookworm main\n";
    expect(debianMirror([vendor, debian], "bookworm")).toBe("http://ftp.example/debian");
    expect(debianMirror([vendor], "bookworm")).toBeUndefined();
  });

  it("falls back to a Debian archive of another release (same mirror serves every suite)", () => {
    expect(debianMirror(["deb https://vendor.example/apt stable main\ndeb http://ftp.example/debian/ trixie main\n"], "bookworm")).toBe(
      "http://ftp.example/debian/",
    );
  });
});

describe("isStaticElf", () => {
  it("tells a static binary from a dynamically linked one", () => {
    expect(isStaticElf(process.execPath)).toBe(false); // node needs the dynamic loader
    const busybox = ["/bin/busybox", "/usr/bin/busybox"].find((candidate) => fs.existsSync(candidate));
    expect(busybox, "busybox-static must be installed (apt-get install busybox-static)").toBeDefined();
    expect(isStaticElf(busybox!)).toBe(true);
  });

  it("rejects files that are not 64-bit ELF executables", () => {
    const file = path.join(tempDir(), "script.sh");
    fs.writeFileSync(file, "#!/bin/sh\necho hi\n");
    expect(isStaticElf(file)).toBe(false);
  });
});

describe("hashTree", () => {
  it("changes with a file's content, mode, a link target or a new entry, and not with order", () => {
    const dir = tempDir();
    const source = path.join(dir, "app.py");
    fs.writeFileSync(source, "print('one')\n");
    const tree: TreeEntry[] = [
      { path: "app", kind: "dir", mode: 0o755 },
      { path: "app/app.py", kind: "file", source, mode: 0o644 },
      { path: "bin/sh", kind: "symlink", target: "busybox" },
    ];
    const base = hashTree(tree);
    expect(hashTree([...tree].reverse())).toBe(base);
    expect(hashTree([tree[0], { ...tree[1], mode: 0o755 } as TreeEntry, tree[2]])).not.toBe(base);
    expect(hashTree([tree[0], tree[1], { path: "bin/sh", kind: "symlink", target: "dash" }])).not.toBe(base);
    expect(hashTree([...tree, { path: "etc/hosts", kind: "text", content: "", mode: 0o644 }])).not.toBe(base);
    fs.writeFileSync(source, "print('two')\n");
    expect(hashTree(tree)).not.toBe(base);
  });
});

describe("acquireFileLock", () => {
  it("excludes other processes until released, and times out with a clear message", async () => {
    const lockFile = path.join(tempDir(), "test.lock");
    const held = await acquireFileLock(lockFile, 5_000);
    // Another process (plain flock, as shell tools take it) cannot get it meanwhile.
    expect(spawnSync("flock", ["--nonblock", lockFile, "true"]).status).toBe(1);
    await expect(acquireFileLock(lockFile, 1_000, "the test")).rejects.toThrow(`${lockFile} stayed locked by the test for 1 s`);
    await held.release();
    expect(spawnSync("flock", ["--nonblock", lockFile, "true"]).status).toBe(0);
  });

  it("is freed when the holding process dies", () => {
    const lockFile = path.join(tempDir(), "crash.lock");
    const script = `
      const { acquireFileLock } = require(${JSON.stringify(path.join(__dirname, "..", "scripts", "lib", "fileLock.ts"))});
      acquireFileLock(${JSON.stringify(lockFile)}, 5000).then(() => process.kill(process.pid, "SIGKILL"));
    `;
    const child = spawnSync(process.execPath, ["--import", "tsx", "-e", script], { timeout: 15_000 });
    expect(child.signal).toBe("SIGKILL");
    // The holder's stdin pipe closed with it; the flock child exits and the lock is free (allow it a moment).
    expect(spawnSync("flock", ["--wait", "5", lockFile, "true"]).status).toBe(0);
  });
});

describe("requireEngine / requireImages", () => {
  it("fail with how to start an engine and build the images, instead of skipping", () => {
    const saved = process.env.DOCKER_HOST;
    process.env.DOCKER_HOST = `unix://${path.join(tempDir(), "no-engine.sock")}`;
    try {
      expect(() => requireEngine()).toThrow(/No Docker engine answers .*apt-get install docker.io.*dockerd .*npm run local:images/);
    } finally {
      if (saved === undefined) delete process.env.DOCKER_HOST;
      else process.env.DOCKER_HOST = saved;
    }
    expect(() => requireImages(["mai-local/no-such-image:0"])).toThrow("Missing local image(s) mai-local/no-such-image:0: build them with `npm run local:images`");
  });
});
