/**
 * The packet filter between client containers and the metadata service / host services
 * (policy/clientFirewall.ts): its rendered rules, script and units, the install command (run in a
 * private mount namespace, so nothing of this machine changes), and the rules applied for real in
 * network namespaces this test creates: a "host" with a Docker-style user bridge (br-…) and
 * DOCKER-USER chain, a "container" on that bridge, and an "outside" namespace holding a stand-in
 * link-local address (169.254.7.7, never the metadata address) and a documentation address as the
 * control. Packets only ever travel between these namespaces.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BLOCKED_FORWARD_DESTINATIONS,
  CLIENT_BRIDGE_INTERFACES,
  FIREWALL_CHAINS,
  FIREWALL_FILES,
  firewallInstallCommand,
  renderFirewallDockerDropIn,
  renderFirewallRules,
  renderFirewallScript,
  renderFirewallUnit,
} from "../policy/clientFirewall";
import { DOCKER_DAEMON_CONFIG, HOST_PATHS, renderCloudInit } from "../policy/cloudInit";

/** Whether IPv4 `address` lies in `cidr` (the test's own arithmetic, not the code under test). */
function inCidr(address: string, cidr: string): boolean {
  const toNumber = (ip: string) => ip.split(".").reduce((n, part) => n * 256 + Number(part), 0);
  const [base, bits] = cidr.split("/");
  const size = 2 ** (32 - Number(bits));
  return Math.floor(toNumber(address) / size) === Math.floor(toNumber(base) / size);
}

describe("rendered rules", () => {
  const v4 = renderFirewallRules(4);
  const v6 = renderFirewallRules(6);

  it("drop forwarded packets from every client bridge to the metadata service's range", () => {
    expect(BLOCKED_FORWARD_DESTINATIONS.some((cidr) => inCidr("169.254.169.254", cidr))).toBe(true);
    expect(CLIENT_BRIDGE_INTERFACES).toEqual(["docker0", "br-+"]);
    for (const iface of CLIENT_BRIDGE_INTERFACES) {
      expect(v4).toContain(`-A MAI-CLIENT-FORWARD -i ${iface} -d 169.254.0.0/16 -j DROP\n`);
      expect(v4).toContain(`-A MAI-CLIENT-INPUT -i ${iface} -j MAI-CLIENT-TO-HOST\n`);
    }
  });

  it("let a container reach the host only with replies and on Caddy's public ports, everything else last dropped", () => {
    const toHost = v4.split("\n").filter((line) => line.startsWith("-A MAI-CLIENT-TO-HOST"));
    expect(toHost).toEqual([
      "-A MAI-CLIENT-TO-HOST -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN",
      "-A MAI-CLIENT-TO-HOST -p tcp -m multiport --dports 80,443 -j RETURN",
      "-A MAI-CLIENT-TO-HOST -p udp -m udp --dport 443 -j RETURN",
      "-A MAI-CLIENT-TO-HOST -j DROP",
    ]);
  });

  it("filter IPv6 to the host alike, keeping neighbour discovery; no IPv6 forward chain (no IPv6 metadata)", () => {
    expect(v6).not.toContain("MAI-CLIENT-FORWARD");
    expect(v6).toContain("-A MAI-CLIENT-TO-HOST -p ipv6-icmp -m icmp6 --icmpv6-type neighbour-solicitation -j RETURN\n");
    expect(v6.trimEnd().split("\n").slice(-2)).toEqual(["-A MAI-CLIENT-TO-HOST -j DROP", "COMMIT"]);
  });

  it("only declare the filter's own chains, so loading them never flushes Docker's or the host's", () => {
    for (const text of [v4, v6]) {
      const declared = text.split("\n").filter((line) => line.startsWith(":")).map((line) => line.split(" ")[0].slice(1));
      expect(declared.every((chain) => (Object.values(FIREWALL_CHAINS) as string[]).includes(chain))).toBe(true);
      expect(text).not.toMatch(/^:(INPUT|FORWARD|DOCKER-USER|DOCKER)\b/m);
      expect(text).toMatch(/^\*filter\n/);
    }
  });

  it("are loaded by a script that passes bash's syntax check and adds each jump only when missing", () => {
    const script = renderFirewallScript();
    expect(spawnSync("bash", ["-n", "-c", script]).status).toBe(0);
    expect(script).toContain("iptables -w -C DOCKER-USER -j MAI-CLIENT-FORWARD 2>/dev/null || iptables -w -I DOCKER-USER 1 -j MAI-CLIENT-FORWARD");
    expect(script).toContain("iptables -w -C INPUT -j MAI-CLIENT-INPUT 2>/dev/null || iptables -w -I INPUT 1 -j MAI-CLIENT-INPUT");
    expect(FIREWALL_FILES.script.startsWith(`${HOST_PATHS.binDir}/`)).toBe(true);
  });
});

describe("units", () => {
  function verify(files: Record<string, string>, units: string[]) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mai-fw-units-"));
    try {
      // The script at a path of this directory: verify checks that ExecStart= exists.
      const script = path.join(dir, "mai-firewall");
      fs.writeFileSync(script, renderFirewallScript(), { mode: 0o755 });
      for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), content.replaceAll(FIREWALL_FILES.script, script));
      const r = spawnSync("systemd-analyze", ["verify", "--man=no", ...units.map((unit) => `./${unit}`)], { cwd: dir, encoding: "utf8" });
      if (r.error) throw new Error("systemd-analyze is missing: apt-get install systemd");
      return { status: r.status, stderr: r.stderr };
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  const dockerService = "[Unit]\nDescription=stand-in for docker.io's unit\n[Service]\nExecStart=/bin/true\n";

  it("systemd accepts the boot unit, ordered before dockerd and pulled in by it", () => {
    expect(verify({ "mai-firewall.service": renderFirewallUnit(), "docker.service": dockerService }, ["mai-firewall.service"])).toEqual({ status: 0, stderr: "" });
    expect(renderFirewallUnit()).toMatch(/^Before=docker\.service$/m);
    expect(renderFirewallUnit()).toMatch(/^WantedBy=multi-user\.target docker\.service$/m);
  });

  it("the check is live: a broken unit is reported", () => {
    const typo = verify({ "mai-firewall.service": renderFirewallUnit().replace("Type=oneshot", "Type=oneshoot"), "docker.service": dockerService }, ["mai-firewall.service"]);
    expect(typo.stderr).toContain("Failed to parse service type, ignoring: oneshoot");
    const missing = verify({ "mai-firewall.service": renderFirewallUnit().replace(FIREWALL_FILES.script, "/nonexistent/mai-firewall"), "docker.service": dockerService }, ["mai-firewall.service"]);
    expect(missing.status).not.toBe(0);
  });

  it("re-applies after every dockerd start without ever keeping dockerd from starting", () => {
    expect(renderFirewallDockerDropIn()).toContain(`\nExecStartPost=-${FIREWALL_FILES.script}\n`);
  });
});

describe("first boot and existing servers", () => {
  const userData = parse(renderCloudInit()) as { write_files: { path: string; content: string; permissions: string }[]; runcmd: string[][] };
  const file = (p: string) => userData.write_files.find((f) => f.path === p);

  it("cloud-init writes the script, unit and drop-in, and enables the filter before Docker is (re)started", () => {
    expect(file(FIREWALL_FILES.script)).toEqual({ path: FIREWALL_FILES.script, permissions: "0755", content: renderFirewallScript() });
    expect(file(FIREWALL_FILES.unit)?.content).toBe(renderFirewallUnit());
    expect(file(FIREWALL_FILES.dockerDropIn)?.content).toBe(renderFirewallDockerDropIn());
    const commands = userData.runcmd.map((argv) => argv.join(" "));
    const enable = commands.indexOf("systemctl enable --now mai-firewall.service");
    expect(enable).toBeGreaterThan(commands.indexOf("systemctl daemon-reload"));
    expect(enable).toBeLessThan(commands.indexOf("systemctl restart docker.service"));
  });

  it("makes no-new-privileges the daemon default of the server's dockerd", () => {
    expect(DOCKER_DAEMON_CONFIG["no-new-privileges"]).toBe(true);
    expect(JSON.parse(file("/etc/docker/daemon.json")!.content)["no-new-privileges"]).toBe(true);
  });

  it("the install command writes exactly the rendered files and applies them (private mount namespace, fake systemctl)", () => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "mai-fw-install-"));
    try {
      const bin = path.join(work, "bin");
      fs.mkdirSync(bin);
      fs.writeFileSync(path.join(bin, "systemctl"), `#!/bin/sh\necho "systemctl $*" >> ${work}/calls\n`, { mode: 0o755 });
      fs.writeFileSync(path.join(work, "install.sh"), firewallInstallCommand());
      // Everything the command writes lands on tmpfs mounts that vanish with the namespace.
      const inner = [
        "set -e",
        "mount -t tmpfs tmpfs /usr/local/sbin",
        "mount -t tmpfs tmpfs /etc/systemd/system",
        `PATH=${bin}:$PATH bash ${work}/install.sh`,
        `cp ${FIREWALL_FILES.script} ${work}/script; cp ${FIREWALL_FILES.unit} ${work}/unit; cp ${FIREWALL_FILES.dockerDropIn} ${work}/dropin`,
        `stat -c %a ${FIREWALL_FILES.script} > ${work}/mode`,
      ].join("\n");
      const r = spawnSync("unshare", ["--mount", "--propagation", "private", "bash", "-c", inner], { encoding: "utf8" });
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      expect(fs.readFileSync(path.join(work, "script"), "utf8")).toBe(renderFirewallScript());
      expect(fs.readFileSync(path.join(work, "unit"), "utf8")).toBe(renderFirewallUnit());
      expect(fs.readFileSync(path.join(work, "dropin"), "utf8")).toBe(renderFirewallDockerDropIn());
      expect(fs.readFileSync(path.join(work, "mode"), "utf8").trim()).toBe("755");
      expect(fs.readFileSync(path.join(work, "calls"), "utf8").trim().split("\n")).toEqual([
        "systemctl daemon-reload",
        "systemctl enable mai-firewall.service",
        "systemctl restart mai-firewall.service",
      ]);
      expect(fs.existsSync(FIREWALL_FILES.unit)).toBe(false);
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Applied for real, in network namespaces of this test
// ---------------------------------------------------------------------------------------------

const suffix = randomBytes(2).toString("hex");
const NS = { host: `mai-fw-host-${suffix}`, client: `mai-fw-client-${suffix}`, outside: `mai-fw-out-${suffix}` };
const BRIDGE = `br-maifw${suffix}`;
/** Documentation ranges (RFC 5737, RFC 3849) and one link-local stand-in, all inside the test's namespaces. */
const ADDR = {
  bridge: "192.0.2.1",
  client: "192.0.2.2",
  uplinkHost: "198.51.100.1",
  uplinkOutside: "198.51.100.2",
  control: "203.0.113.7",
  linkLocalStandIn: "169.254.7.7",
  bridge6: "2001:db8:77::1",
  client6: "2001:db8:77::2",
};
const listeners: ChildProcess[] = [];

function sh(script: string): string {
  const r = spawnSync("bash", ["-c", `set -euo pipefail\n${script}`], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`failed (${r.status}):\n${script}\n${r.stderr}`);
  return r.stdout;
}

/** Runs `script` with bash in namespace `ns`. */
function inNs(ns: string, script: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync("ip", ["netns", "exec", ns, "bash", "-c", script], { encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** TCP listeners in `ns` on `address:port` pairs; each answers "hi" and closes. */
async function listen(ns: string, endpoints: string[]): Promise<void> {
  const code = `
    const net = require("net");
    let ready = 0;
    for (const spec of process.argv.slice(1)) {
      const at = spec.lastIndexOf(":");
      net.createServer((c) => c.end("hi")).listen(Number(spec.slice(at + 1)), spec.slice(0, at), () => {
        if (++ready === process.argv.length - 1) console.log("listening");
      });
    }`;
  const child = spawn("ip", ["netns", "exec", ns, process.execPath, "-e", code, ...endpoints], { stdio: ["ignore", "pipe", "inherit"] });
  listeners.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on("data", (chunk: Buffer) => chunk.toString().includes("listening") && resolve());
    child.once("exit", (status) => reject(new Error(`listener in ${ns} exited (${status})`)));
  });
}

/** Tries a TCP connection from `ns`: "hi" when answered, "blocked" when nothing answers within 1.5 s. */
function connect(ns: string, host: string, port: number): string {
  const code = `
    const s = require("net").connect({ host: process.argv[1], port: Number(process.argv[2]) });
    s.setTimeout(1500, () => { console.log("blocked"); process.exit(0); });
    s.on("data", (d) => { console.log(d.toString()); process.exit(0); });
    s.on("error", (e) => { console.log("error " + e.code); process.exit(0); });`;
  const r = spawnSync("ip", ["netns", "exec", ns, process.execPath, "-e", code, host, String(port)], { encoding: "utf8" });
  return r.stdout.trim();
}

/** Packet counter of the rule in `chain` of namespace `ns` whose listing matches `pattern`. */
function packets(ns: string, chain: string, pattern: RegExp, family: 4 | 6 = 4): number {
  const listing = inNs(ns, `${family === 4 ? "iptables" : "ip6tables"} -w -L ${chain} -v -n -x`).stdout.split("\n");
  const line = listing.find((candidate) => pattern.test(candidate));
  if (!line) throw new Error(`no rule matching ${pattern} in ${chain}:\n${listing.join("\n")}`);
  return Number(line.trim().split(/\s+/)[0]);
}

describe("applied in network namespaces", () => {
  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error("this test creates network namespaces and needs root");
    const { host, client, outside } = NS;
    sh(`
      ip netns add ${host}; ip netns add ${client}; ip netns add ${outside}
      for ns in ${host} ${client} ${outside}; do ip -n $ns link set lo up; done
      for ns in ${host} ${client}; do ip netns exec $ns sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0; done
      # The host: a Docker-style user bridge with the container's veth, an uplink to the outside.
      ip -n ${host} link add ${BRIDGE} type bridge
      ip -n ${host} link add vcl type veth peer name eth0 netns ${client}
      ip -n ${host} link add uplink type veth peer name uplink netns ${outside}
      ip -n ${host} link set vcl master ${BRIDGE}
      for dev in ${BRIDGE} vcl uplink; do ip -n ${host} link set $dev up; done
      ip -n ${host} addr add ${ADDR.bridge}/24 dev ${BRIDGE}
      ip -n ${host} addr add ${ADDR.bridge6}/64 dev ${BRIDGE} nodad
      ip -n ${host} addr add ${ADDR.uplinkHost}/30 dev uplink
      ip -n ${host} route add ${ADDR.control}/32 via ${ADDR.uplinkOutside}
      ip -n ${host} route add ${ADDR.linkLocalStandIn}/32 via ${ADDR.uplinkOutside}
      ip netns exec ${host} sysctl -qw net.ipv4.ip_forward=1
      # The container.
      ip -n ${client} link set eth0 up
      ip -n ${client} addr add ${ADDR.client}/24 dev eth0
      ip -n ${client} addr add ${ADDR.client6}/64 dev eth0 nodad
      ip -n ${client} route add default via ${ADDR.bridge}
      # The outside: the control address and the link-local stand-in on its loopback.
      ip -n ${outside} link set uplink up
      ip -n ${outside} addr add ${ADDR.uplinkOutside}/30 dev uplink
      ip -n ${outside} addr add ${ADDR.control}/32 dev lo
      ip -n ${outside} addr add ${ADDR.linkLocalStandIn}/32 dev lo
      ip -n ${outside} route add ${ADDR.bridge.replace(/\.1$/, ".0")}/24 via ${ADDR.uplinkHost}
      # What dockerd sets up before our rules run: DOCKER-USER, jumped to first from FORWARD.
      ip netns exec ${host} iptables -w -N DOCKER-USER
      ip netns exec ${host} iptables -w -A DOCKER-USER -j RETURN
      ip netns exec ${host} iptables -w -I FORWARD 1 -j DOCKER-USER
    `);
    await listen(outside, [`${ADDR.control}:80`, `${ADDR.linkLocalStandIn}:80`]);
    // "::" listens on IPv4 and IPv6 alike.
    await listen(host, [":::22", ":::443", ":::2375"]);
    await listen(client, ["0.0.0.0:8080"]);
    // Before the filter: the container reaches both (the test can tell blocked from reachable).
    expect(connect(client, ADDR.linkLocalStandIn, 80)).toBe("hi");
    expect(connect(client, ADDR.bridge, 22)).toBe("hi");
    // Applied twice: the second run must change nothing.
    for (let run = 0; run < 2; run++) {
      const applied = inNs(host, renderFirewallScript());
      expect(applied.stderr).toBe("");
      expect(applied.status).toBe(0);
    }
  }, 60_000);

  afterAll(() => {
    for (const child of listeners) child.kill("SIGKILL");
    for (const ns of Object.values(NS)) spawnSync("ip", ["netns", "del", ns]);
  });

  it("hooks into DOCKER-USER and INPUT exactly once, ahead of Docker's RETURN", () => {
    expect(inNs(NS.host, "iptables -w -C DOCKER-USER -j MAI-CLIENT-FORWARD").status).toBe(0);
    expect(inNs(NS.host, "iptables -w -C INPUT -j MAI-CLIENT-INPUT").status).toBe(0);
    expect(inNs(NS.host, "ip6tables -w -C INPUT -j MAI-CLIENT-INPUT").status).toBe(0);
    expect(inNs(NS.host, `iptables -w -C MAI-CLIENT-FORWARD -i br-+ -d 169.254.0.0/16 -j DROP`).status).toBe(0);
    expect(inNs(NS.host, "iptables -w -S DOCKER-USER").stdout.trim().split("\n")).toEqual([
      "-N DOCKER-USER",
      "-A DOCKER-USER -j MAI-CLIENT-FORWARD",
      "-A DOCKER-USER -j RETURN",
    ]);
    expect(inNs(NS.host, "iptables -w -S INPUT").stdout.match(/-j MAI-CLIENT-INPUT/g)).toHaveLength(1);
  });

  it("drops a container's packets to the link-local range and still forwards the rest", () => {
    const before = packets(NS.host, "MAI-CLIENT-FORWARD", /DROP .* br-\+ .*169\.254\.0\.0\/16/);
    expect(connect(NS.client, ADDR.linkLocalStandIn, 80)).toBe("blocked");
    expect(packets(NS.host, "MAI-CLIENT-FORWARD", /DROP .* br-\+ .*169\.254\.0\.0\/16/)).toBeGreaterThan(before);
    expect(connect(NS.client, ADDR.control, 80)).toBe("hi");
  });

  it("lets a container reach the host only on Caddy's ports, over IPv4 and IPv6", () => {
    const before = packets(NS.host, "MAI-CLIENT-TO-HOST", /^\s*\d+\s+\d+\s+DROP/);
    expect(connect(NS.client, ADDR.bridge, 443)).toBe("hi");
    expect(connect(NS.client, ADDR.bridge, 22)).toBe("blocked");
    expect(connect(NS.client, ADDR.bridge, 2375)).toBe("blocked");
    // The host's other addresses are the host too.
    expect(connect(NS.client, ADDR.uplinkHost, 22)).toBe("blocked");
    expect(packets(NS.host, "MAI-CLIENT-TO-HOST", /^\s*\d+\s+\d+\s+DROP/)).toBeGreaterThanOrEqual(before + 3);
    expect(connect(NS.client, ADDR.bridge6, 443)).toBe("hi");
    expect(connect(NS.client, ADDR.bridge6, 22)).toBe("blocked");
  });

  it("keeps connections the host opens to a container working (published ports, health checks)", () => {
    expect(connect(NS.host, ADDR.client, 8080)).toBe("hi");
  });

  it("filters only client bridges: the host's other interfaces are untouched", () => {
    expect(connect(NS.outside, ADDR.uplinkHost, 22)).toBe("hi");
  });
});
