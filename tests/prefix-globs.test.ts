/**
 * A slug is a prefix of other slugs (`acme` of `acme-corp`): no runbook command and no host
 * script may match a client's files by `<slug>-*`. The runbook's commands are run as written on
 * real files of two such clients; the host scripts and docs are checked for the pattern.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { resourceServers } from "../plan/servers";
import { nextFreePort } from "../scripts/new-client";

const REPO = path.resolve(__dirname, "..");
const scratch: string[] = [];
afterAll(() => {
  for (const dir of scratch) fs.rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mai-prefix-"));
  scratch.push(dir);
  return dir;
}

/** Every shell command in the README's and the runbook's code blocks and inline code that removes export archives. */
function readmeExportRemovals(): string[] {
  const readme = ["README.md", "docs/runbook.md"].map((file) => fs.readFileSync(path.join(REPO, file), "utf8")).join("\n");
  const commands = [...readme.matchAll(/`([^`\n]*rm [^`\n]*\/srv\/mai\/exports[^`\n]*)`/g)].map((m) => m[1]);
  for (const block of readme.matchAll(/```sh\n([\s\S]*?)```/g)) {
    for (const line of block[1].split("\n")) if (/\brm\b.*\/srv\/mai\/exports/.test(line)) commands.push(line.trim());
  }
  return commands;
}

/** Runs a runbook command for `slug` against `exportsDir` instead of the server's /srv/mai/exports. */
function runOnServer(command: string, slug: string, exportsDir: string): void {
  const local = command
    .replace(/^ssh root@<server> /, "")
    .replace(/^'(.*)'$/, "$1")
    .replaceAll("<slug>", slug)
    .replaceAll("/srv/mai/exports", exportsDir);
  const result = spawnSync("bash", ["-c", local], { encoding: "utf8" });
  expect(result.status, `${local}\n${result.stderr}`).toBe(0);
}

describe("runbook commands", () => {
  it("the offboarding step removes exactly one client's exports, not those of a client whose slug it prefixes", () => {
    const commands = readmeExportRemovals();
    expect(commands.length).toBeGreaterThan(0);
    for (const command of commands) {
      const exportsDir = tempDir();
      const files = [
        "acme-20261124T010000Z.tar.zst",
        "acme-20261201T120000Z.tar.zst",
        "acme-corp-20261124T010000Z.tar.zst",
        "acme-corp-20261201T120000Z.tar.zst",
        "acme-2-20261124T010000Z.tar.zst",
        "acme-handover.tar.zst",
      ];
      for (const file of files) fs.writeFileSync(path.join(exportsDir, file), file);
      runOnServer(command, "acme", exportsDir);
      expect(fs.readdirSync(exportsDir).sort()).toEqual([
        "acme-2-20261124T010000Z.tar.zst",
        "acme-corp-20261124T010000Z.tar.zst",
        "acme-corp-20261201T120000Z.tar.zst",
        "acme-handover.tar.zst",
      ]);
      runOnServer(command, "acme-corp", exportsDir);
      expect(fs.readdirSync(exportsDir).sort()).toEqual(["acme-2-20261124T010000Z.tar.zst", "acme-handover.tar.zst"]);
    }
  });

  it("no document matches a client's files by a slug prefix", () => {
    const documents = ["README.md", "clients/README.md", ...fs.readdirSync(path.join(REPO, "docs")).map((f) => `docs/${f}`)];
    for (const document of documents) {
      const text = fs.readFileSync(path.join(REPO, document), "utf8");
      // `<slug>-*`, `<slug>*`, `mai-<slug>*`: a glob right after the slug placeholder (prose that
      // warns against it says "never `<slug>-*`").
      const globs = [...text.matchAll(/(?<!never `)<slug>-?\*/g)].map((m) => m[0]);
      expect(globs, document).toEqual([]);
    }
  });
});

describe("host scripts", () => {
  it("match a client's files by the exact name pattern, never by `$SLUG-*`", () => {
    for (const script of fs.readdirSync(path.join(REPO, "host")).filter((f) => f.endsWith(".sh"))) {
      const lines = fs.readFileSync(path.join(REPO, "host", script), "utf8").split("\n");
      const offending = lines
        .map((line, index) => ({ line: line.trim(), number: index + 1 }))
        .filter(({ line }) => !line.startsWith("#"))
        .filter(({ line }) => /\$\{?(SLUG|slug)\}?"?-\*/.test(line));
      expect(offending, script).toEqual([]);
    }
  });
});

describe("other prefix matches", () => {
  it("the plan puts a server's provider on that server, not on a server whose name prefixes it", () => {
    const resources = [
      { urn: "urn:p1", type: "pulumi:providers:docker", name: "nbg1-a-docker" },
      { urn: "urn:p2", type: "pulumi:providers:docker", name: "nbg1-docker" },
    ];
    for (const servers of [["nbg1", "nbg1-a"], ["nbg1-a", "nbg1"]]) {
      const result = resourceServers(resources as never, servers, {});
      expect(result.get("urn:p1")).toBe("nbg1-a");
      expect(result.get("urn:p2")).toBe("nbg1");
    }
  });

  it("new-client never hands out a port a host service listens on", () => {
    expect(nextFreePort([8079])).toBe(8081);
    expect(nextFreePort([8442])).toBe(8444);
    expect(nextFreePort([8001])).toBe(8002);
  });
});
