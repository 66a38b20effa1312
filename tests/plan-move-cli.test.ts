/**
 * `npm run plan -- --base` on a two-server stack, as a process, against a throw-away git
 * repository: a client added on one server changes nothing on the other; a changed `server:`
 * with `moveFrom` is shown as a move (steps, downtime, the client's resources recreated on the
 * target, the source volume retained); a changed `server:` without `moveFrom` fails the plan.
 */
import * as fs from "fs";
import * as path from "path";
import { describe, expect, it, onTestFinished } from "vitest";
import { createPlanRepo, type PlanRepo } from "./support/planRepo";

/** Fake ciphertexts: the plan never decrypts, so any `secure:` string works. */
const CIPHERTEXT = "v1:cGxhbi1tb3ZlLXRlc3Qta2V5LWNpcGhlcnRleHQ=";

type Change = { op: string; type: string; name: string; urn: string; fields: string[]; client?: string; retained?: boolean; move?: { from: string; to: string } };

/**
 * A repository of the test's own, removed when the test ends: a test that times out on a busy
 * machine and goes on in the background only ever touches its own files.
 */
function ownRepo(): PlanRepo & { plan(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }>; edit(file: string, change: (text: string) => string): void } {
  const keys = ["acme", "mueller-steuerberatung", "newco"].map((slug) => `    ${slug}:\n      secure: ${CIPHERTEXT}\n`).join("");
  const repo = createPlanRepo(
    "plan-move-cli-",
    "  mai-hosting:servers:\n    host:\n      serverType: ccx53\n    nbg1-b:\n      serverType: ccx33\n" + `  mai-hosting:openrouterApiKeys:\n${keys}`,
  );
  onTestFinished(() => repo.remove());
  return {
    ...repo,
    plan: (...args: string[]) => repo.plan("--base", "HEAD", ...args),
    edit(file, change) {
      const full = path.join(repo.clientsDir, file);
      fs.writeFileSync(full, change(fs.readFileSync(full, "utf8")));
    },
  };
}

describe("plan --base on two servers", () => {
  it("adding a client on server nbg1-b plans no change on server host", async () => {
    const { plan, clientsDir } = ownRepo();
    fs.writeFileSync(path.join(clientsDir, "newco.yaml"), "name: New Co\nport: 3010\nserver: nbg1-b\n");
    {
      const result = await plan("--json");
      expect(result.code).toBe(0);
      const json = JSON.parse(result.stdout) as { changes: Change[]; resources: Array<{ urn: string; server: string | null }> };
      const serverOf = new Map(json.resources.map((r) => [r.urn, r.server]));
      expect(json.changes.length).toBeGreaterThan(0);
      expect(json.changes.filter((c) => serverOf.get(c.urn) === "host")).toEqual([]);
      expect(json.changes.filter((c) => c.client !== "newco").every((c) => c.name.startsWith("nbg1-b-proxy-"))).toBe(true);
      expect(json.changes.filter((c) => c.client === "newco").every((c) => c.op === "create")).toBe(true);
    }
  });

  it("a changed server with moveFrom is a move: steps, downtime, recreated on the target, source volume retained", async () => {
    const { plan, edit } = ownRepo();
    edit("acme.yaml", (text) => `${text.trimEnd()}\nserver: nbg1-b\nmoveFrom: host\n`);
    {
      const result = await plan("--json");
      expect(result.code).toBe(0);
      const json = JSON.parse(result.stdout) as { changes: Change[]; moves: Array<{ slug: string; from: string; to: string; steps: string[]; downtime: string }>; summary: Record<string, string[]> };
      expect(json.moves).toEqual([expect.objectContaining({ slug: "acme", from: "host", to: "nbg1-b", downtime: expect.stringMatching(/^DOWNTIME: acme is offline/) })]);
      expect(json.summary).toMatchObject({ moved: ["acme (host -> nbg1-b)"], added: [], removed: [], dataLost: [] });
      expect(json.summary.retained).toContain("acme-data");
      const acme = json.changes.filter((c) => c.client === "acme");
      for (const name of ["acme-container", "acme-data", "acme-network"]) {
        expect(acme.find((c) => c.name === name)).toMatchObject({ op: "replace", fields: expect.arrayContaining(["replacementTrigger"]), move: { from: "host", to: "nbg1-b" } });
      }
      expect(acme.find((c) => c.name === "acme-move-run")).toMatchObject({ op: "create", type: "command:local:Command" });
      expect(acme.filter((c) => c.type === "cloudflare:index/dnsRecord:DnsRecord").every((c) => c.op === "update" && c.fields.includes("content"))).toBe(true);
      // Only the moving client and the two proxies' configuration change.
      expect(json.changes.filter((c) => c.client !== "acme").every((c) => /^(nbg1-b-)?proxy-/.test(c.name))).toBe(true);

      const text = (await plan()).stdout;
      expect(text).toContain("Moves (1)");
      expect(text).toContain("acme: host -> nbg1-b");
      expect(text).toMatch(/2\. stop mai-acme on host \(the workspace goes offline\)/);
      expect(text).toContain("client acme (moves host -> nbg1-b)");
      expect(text).toContain("1 moved (acme (host -> nbg1-b))");
      const md = (await plan("--markdown")).stdout;
      expect(md).toContain("**Move `acme`: host → nbg1-b.** DOWNTIME:");
    }
  });

  it("a changed server without moveFrom fails the plan and names the fix", async () => {
    const { plan, edit } = ownRepo();
    edit("acme.yaml", (text) => `${text.trimEnd()}\nserver: nbg1-b\n`);
    {
      const result = await plan();
      expect(result.code).toBe(1);
      expect(result.stdout).toBe("");
      expect(result.stderr).toContain('client "acme" changes server from host to nbg1-b without `moveFrom: host`');
      expect(result.stderr).toContain("Add `moveFrom: host` to its file");
    }
  });
});
