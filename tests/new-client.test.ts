import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { beforeEach, describe, expect, it } from "vitest";
import { validateClientFile } from "../config/clientFile";
import { createClient, nextFreePort, NewClientError, parseNewClientArgs } from "../scripts/new-client";

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "new-client-"));
  fs.writeFileSync(path.join(dir, "acme.yaml"), "name: Acme\nport: 8001\n");
  fs.writeFileSync(path.join(dir, "globex.yaml"), "name: Globex\nport: 8007\n");
});

describe("new-client", () => {
  it("writes a valid client file with the next free port and prints the secret command", () => {
    const result = createClient({ slug: "company-abc", name: "Company ABC", clientsDir: dir, stack: "prod" });
    expect(result.port).toBe(8008);
    const text = fs.readFileSync(result.file, "utf8");
    expect(text.split("\n")[0]).toBe("# yaml-language-server: $schema=../schema/client.schema.json");
    const parsed = validateClientFile(result.file, text);
    expect(parsed.ok && parsed.client.content).toMatchObject({ name: "Company ABC", port: 8008 });
    expect(result.instructions.join("\n")).toContain(
      "pulumi config set --secret --path 'openrouterApiKeys.company-abc' <openrouter-api-key> --stack prod",
    );
  });

  it("writes the first admin's e-mail and refuses one that is not an address", () => {
    const result = createClient({ slug: "adm", name: "Adm", admin: "it@adm.example", clientsDir: dir, stack: "prod" });
    const parsed = validateClientFile(result.file, fs.readFileSync(result.file, "utf8"));
    expect(parsed.ok && parsed.client.content.admin).toBe("it@adm.example");
    expect(result.instructions.join("\n")).toContain("pulumi stack output clientAdmins --stack prod --show-secrets");
    expect(() => createClient({ slug: "adm2", name: "Adm", admin: "IT@Adm.example", clientsDir: dir, stack: "prod" })).toThrow(
      /--admin: expected an e-mail address like "it-admin@example.com", got "IT@Adm.example" \(write it in lower case/,
    );
    expect(fs.existsSync(path.join(dir, "adm2.yaml"))).toBe(false);
    expect(parseNewClientArgs(["abc", "--name", "ABC", "--admin", "it@abc.example"], { clientsDir: "c", stack: "prod" })).toMatchObject({ admin: "it@abc.example" });
  });

  it("keeps a custom hostname and quotes names that YAML would misread", () => {
    const result = createClient({ slug: "abc", name: "ABC: \"Labs\" #1", hostname: "chat.abc.example", clientsDir: dir, stack: "staging" });
    const parsed = validateClientFile(result.file, fs.readFileSync(result.file, "utf8"));
    expect(parsed.ok && parsed.client.content).toMatchObject({ name: 'ABC: "Labs" #1', hostname: "chat.abc.example" });
    expect(result.instructions.join("\n")).toContain("--stack staging");
  });

  it("refuses an existing slug, an invalid slug, a taken port and a bad hostname, writing nothing", () => {
    const before = fs.readdirSync(dir).sort();
    expect(() => createClient({ slug: "acme", name: "X", clientsDir: dir, stack: "prod" })).toThrow(/client "acme" already exists/);
    expect(() => createClient({ slug: "Bad_Slug", name: "X", clientsDir: dir, stack: "prod" })).toThrow(/slug: expected a DNS label/);
    expect(() => createClient({ slug: "proxy", name: "X", clientsDir: dir, stack: "prod" })).toThrow(/reserved/);
    expect(() => createClient({ slug: "new", name: "X", port: 8007, clientsDir: dir, stack: "prod" })).toThrow(/8007 is already used/);
    expect(() => createClient({ slug: "new", name: "X", hostname: "https://x.example", clientsDir: dir, stack: "prod" })).toThrow(
      /--hostname: expected a bare lower-case host name/,
    );
    expect(fs.readdirSync(dir).sort()).toEqual(before);
  });

  it("starts at the first port and parses its command line", () => {
    expect(nextFreePort([])).toBe(8001);
    expect(nextFreePort([8001, 8003])).toBe(8004);
    expect(parseNewClientArgs(["abc", "--name", "ABC", "--hostname=chat.abc.example"], { clientsDir: "c", stack: "prod" })).toEqual({
      slug: "abc", name: "ABC", hostname: "chat.abc.example", port: undefined, stack: "prod", clientsDir: "c",
    });
    expect(() => parseNewClientArgs(["abc"], { clientsDir: "c", stack: "prod" })).toThrow(NewClientError);
    expect(() => parseNewClientArgs(["abc", "--name", "A", "--colour", "red"], { clientsDir: "c", stack: "prod" })).toThrow(/unknown option --colour/);
  });

  it("exits 1 with a one-line message and no stack trace from the command line", () => {
    let stderr = "";
    try {
      execFileSync(process.execPath, ["--import", "tsx", path.join(__dirname, "..", "scripts", "new-client.ts"), "acme", "--name", "A", "--clients", dir], {
        stdio: "pipe",
      });
    } catch (err) {
      const e = err as { status: number; stderr: Buffer };
      expect(e.status).toBe(1);
      stderr = e.stderr.toString();
    }
    expect(stderr.trim()).toBe(`client "acme" already exists: ${path.join(dir, "acme.yaml")}`);
  });
});
