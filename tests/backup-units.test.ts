/**
 * The systemd units of the nightly backup: what they say, that they agree with the install
 * paths of backupPlan.ts, and (where systemd-analyze exists) that systemd itself accepts them.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { BACKUP_HOST_FILES } from "../policy/backupPlan";

const HOST_DIR = path.join(__dirname, "..", "host");
const SERVICE = fs.readFileSync(path.join(HOST_DIR, "mai-backup@.service"), "utf8");
const TIMER = fs.readFileSync(path.join(HOST_DIR, "mai-backup@.timer"), "utf8");
const HAS_SYSTEMD_ANALYZE = spawnSync("systemd-analyze", ["--version"]).status === 0;

/** `[Section] Key=value` lines of a unit file, comments dropped; repeated keys keep every value. */
function parseUnit(text: string): Record<string, Record<string, string[]>> {
  const sections: Record<string, Record<string, string[]>> = {};
  let current: Record<string, string[]> | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) {
      current = sections[header[1]] ??= {};
      continue;
    }
    const entry = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (!entry || !current) throw new Error(`not a unit file line: ${raw}`);
    (current[entry[1]] ??= []).push(entry[2]);
  }
  return sections;
}

function installedPath(source: string): string {
  const file = BACKUP_HOST_FILES.find((f) => f.source === source);
  if (!file) throw new Error(`${source} is not installed by the tooling`);
  return file.target;
}

describe("mai-backup@.service", () => {
  const unit = parseUnit(SERVICE);

  it("runs the installed backup script once for the instance's slug", () => {
    expect(unit.Service.Type).toEqual(["oneshot"]);
    expect(unit.Service.ExecStart).toEqual([`${installedPath("host/mai-backup.sh")} %i`]);
    expect(unit.Service.SyslogIdentifier).toEqual(["mai-backup"]);
    expect(unit.Unit.After).toContain("docker.service");
  });

  it("is installed as a template unit", () => {
    expect(installedPath("host/mai-backup@.service")).toBe("/etc/systemd/system/mai-backup@.service");
    expect(installedPath("host/mai-backup@.timer")).toBe("/etc/systemd/system/mai-backup@.timer");
  });
});

describe("mai-backup@.timer", () => {
  const unit = parseUnit(TIMER);

  it("fires nightly, spread over the night, and catches up after downtime", () => {
    expect(unit.Timer.OnCalendar).toEqual(["*-*-* 01:00:00 UTC"]);
    expect(unit.Timer.RandomizedDelaySec).toEqual(["2h"]);
    expect(unit.Timer.FixedRandomDelay).toEqual(["true"]);
    expect(unit.Timer.Persistent).toEqual(["true"]);
    expect(unit.Install.WantedBy).toEqual(["timers.target"]);
    // No Unit= line: the template's timer starts the service of the same instance.
    expect(unit.Timer.Unit).toBeUndefined();
  });

  it.skipIf(!HAS_SYSTEMD_ANALYZE)("has a calendar expression systemd understands", () => {
    const r = spawnSync("systemd-analyze", ["calendar", unit.Timer.OnCalendar[0]], { encoding: "utf8" });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("Normalized form: *-*-* 01:00:00 UTC");
  });
});

describe.skipIf(!HAS_SYSTEMD_ANALYZE)("systemd-analyze verify", () => {
  /** Instantiates both templates for `acme` in a temp dir, with the script at its repository path. */
  function verify(service: string, timer: string): { status: number | null; stderr: string } {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mai-units-"));
    try {
      const script = path.join(HOST_DIR, "mai-backup.sh");
      fs.writeFileSync(path.join(dir, "mai-backup@acme.service"), service.replace(installedPath("host/mai-backup.sh"), script));
      fs.writeFileSync(path.join(dir, "mai-backup@acme.timer"), timer);
      // This machine has no Docker; the server has docker.service from the docker.io package.
      fs.writeFileSync(path.join(dir, "docker.service"), "[Unit]\nDescription=stand-in\n[Service]\nExecStart=/bin/true\n");
      const r = spawnSync("systemd-analyze", ["verify", "--man=no", "./mai-backup@acme.service", "./mai-backup@acme.timer"], {
        cwd: dir,
        encoding: "utf8",
      });
      return { status: r.status, stderr: r.stderr };
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  it("accepts both units without a warning", () => {
    expect(verify(SERVICE, TIMER)).toEqual({ status: 0, stderr: "" });
  });

  it("would catch a broken unit (the check is live)", () => {
    const broken = verify(SERVICE.replace("Type=oneshot", "Type=oneshoot"), TIMER.replace("OnCalendar=", "OnCalendr="));
    expect(broken.status).not.toBe(0);
    expect(broken.stderr).toContain("OnCalendr");
  });
});
