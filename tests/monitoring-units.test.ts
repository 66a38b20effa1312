/**
 * The systemd units of the sampler and the alerts: they run the installed scripts, on the
 * intended schedule, and systemd itself accepts them (systemd-analyze verify).
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { MONITORING_HOST_FILES, MONITORING_PATHS } from "../policy/monitoringPlan";

const HOST_DIR = path.join(__dirname, "..", "host");
const read = (name: string) => fs.readFileSync(path.join(HOST_DIR, name), "utf8");
const HAS_SYSTEMD_ANALYZE = spawnSync("systemd-analyze", ["--version"]).status === 0;

/** `Key=value` lines of one section, comments dropped. */
function section(text: string, name: string): Record<string, string[]> {
  const result: Record<string, string[]> = {};
  let inside = false;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    if (line.startsWith("[")) {
      inside = line === `[${name}]`;
      continue;
    }
    const entry = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (inside && entry) (result[entry[1]] ??= []).push(entry[2]);
  }
  return result;
}

describe("monitoring units", () => {
  it("run the installed scripts as oneshot services", () => {
    const bin = MONITORING_PATHS.binDir;
    expect(MONITORING_HOST_FILES.filter((f) => !f.unit).map((f) => `${bin}/${f.name}`)).toEqual([
      `${bin}/mai-status`,
      `${bin}/mai-sample`,
      `${bin}/mai-alert`,
    ]);
    expect(section(read("mai-sample.service"), "Service").ExecStart).toEqual([`${bin}/mai-sample`]);
    expect(section(read("mai-alert.service"), "Service").ExecStart).toEqual([`${bin}/mai-alert`]);
    for (const unit of ["mai-sample.service", "mai-alert.service"]) expect(section(read(unit), "Service").Type).toEqual(["oneshot"]);
    // The alerts must run while Docker is down (that is one of the things they report).
    expect(section(read("mai-alert.service"), "Unit").Requires).toBeUndefined();
  });

  it("sample every minute and alert every 5 minutes", () => {
    expect(section(read("mai-sample.timer"), "Timer").OnCalendar).toEqual(["minutely"]);
    expect(section(read("mai-alert.timer"), "Timer").OnCalendar).toEqual(["*:0/5"]);
    for (const timer of ["mai-sample.timer", "mai-alert.timer"]) expect(section(read(timer), "Install").WantedBy).toEqual(["timers.target"]);
  });

  it.skipIf(!HAS_SYSTEMD_ANALYZE)("have calendar expressions systemd understands", () => {
    const minutely = spawnSync("systemd-analyze", ["calendar", "minutely"], { encoding: "utf8" });
    expect(minutely.stdout).toContain("Normalized form: *-*-* *:*:00");
    const five = spawnSync("systemd-analyze", ["calendar", "*:0/5"], { encoding: "utf8" });
    expect(five.stdout).toContain("Normalized form: *-*-* *:00/5:00");
  });

  describe.skipIf(!HAS_SYSTEMD_ANALYZE)("systemd-analyze verify", () => {
    function verify(files: Record<string, string>): { status: number | null; stderr: string } {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mai-monitoring-units-"));
      try {
        for (const [name, text] of Object.entries(files)) {
          // ExecStart must exist: point it at the repository's script.
          const script = name.replace(/\.(service|timer)$/, ".sh");
          fs.writeFileSync(path.join(dir, name), text.replace(`${MONITORING_PATHS.binDir}/${name.replace(/\.(service|timer)$/, "")}`, path.join(HOST_DIR, script)));
        }
        fs.writeFileSync(path.join(dir, "docker.service"), "[Unit]\nDescription=stand-in\n[Service]\nExecStart=/bin/true\n");
        const r = spawnSync("systemd-analyze", ["verify", "--man=no", ...Object.keys(files).map((f) => `./${f}`)], { cwd: dir, encoding: "utf8" });
        return { status: r.status, stderr: r.stderr };
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
    const units = ["mai-sample.service", "mai-sample.timer", "mai-alert.service", "mai-alert.timer"];

    it("accepts all four units without a warning", () => {
      expect(verify(Object.fromEntries(units.map((u) => [u, read(u)])))).toEqual({ status: 0, stderr: "" });
    });

    it("would catch a broken unit (the check is live)", () => {
      const broken = verify({ "mai-alert.service": read("mai-alert.service"), "mai-alert.timer": read("mai-alert.timer").replace("OnCalendar=", "OnCalendr=") });
      // A warning is enough to fail the clean check above.
      expect(broken.stderr).toContain("Unknown key 'OnCalendr'");
    });
  });
});
