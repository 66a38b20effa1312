/** The Caddyfile renderer as text: structure, determinism, safety of inserted values. */
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { CADDY_IMAGE, CADDY_VERSION } from "../policy/caddyRelease";
import { htmlText, MAX_REQUEST_BODY_BYTES, MAX_UNIX_SOCKET_PATH_BYTES, PROXY_HEALTH_PATH, renderCaddyfile } from "../policy/caddyfile";
import { fixtureClient, fixtureClients } from "./support/caddyFixtures";

const production = { acmeEmail: "ops@example.com" };

/** The lines of one site block, from its address line to its closing brace. */
function siteBlock(caddyfile: string, address: string): string {
  const start = caddyfile.indexOf(`\n${address} {\n`);
  if (start < 0) throw new Error(`no site block for ${address}`);
  const end = caddyfile.indexOf("\n}\n", start);
  return caddyfile.slice(start + 1, end + 2);
}

describe("renderCaddyfile", () => {
  it("is deterministic, sorted by slug and ends with a newline", () => {
    const clients = fixtureClients();
    const once = renderCaddyfile(clients, production);
    expect(renderCaddyfile([...clients].reverse(), production)).toBe(once);
    expect(once.endsWith("}\n")).toBe(true);
    const order = [...once.matchAll(/^# ([a-z0-9-]+): /gm)].map((match) => match[1]);
    expect(order).toEqual(["alpha", "bravo", "charlie", "delta", "echo", "echo"]);
  });

  it("proxies an active client to its port on the host's loopback, with unbuffered, reload-proof streaming", () => {
    const block = siteBlock(renderCaddyfile(fixtureClients(), production), "alpha.mai.test");
    expect(block).toContain("import mai_site");
    // Caddy runs in the host's network namespace; alpha publishes 8080 on 127.0.0.1:3001.
    expect(block).toContain("reverse_proxy 127.0.0.1:3001 {");
    expect(block).toContain("flush_interval -1");
    expect(block).toMatch(/stream_close_delay \d+[hm]/);
  });

  it("serves a suspended client a 503 page without any upstream", () => {
    const block = siteBlock(renderCaddyfile(fixtureClients(), production), "delta.mai.test");
    expect(block).not.toContain("reverse_proxy");
    expect(block).toMatch(/Retry-After "\d+"/);
    expect(block).toMatch(/^\t\tHTML 503$/m);
  });

  it("redirects a default hostname to the custom one and proxies only the custom one", () => {
    const caddyfile = renderCaddyfile(fixtureClients(), production);
    expect(siteBlock(caddyfile, "echo.mai.test")).toContain("redir https://chat.echo-corp.test{uri} 308");
    expect(siteBlock(caddyfile, "chat.echo-corp.test")).toContain("reverse_proxy 127.0.0.1:3005");
    expect(caddyfile).not.toMatch(/^alpha\.mai\.test[^{]*\{[^}]*redir/m);
  });

  it("keeps production defaults unless test options are given", () => {
    const caddyfile = renderCaddyfile(fixtureClients(), production);
    for (const testOnly of ["http_port", "https_port", "admin ", "local_certs", "skip_install_trust", "default_bind"]) {
      expect(caddyfile).not.toContain(testOnly);
    }
    expect(caddyfile).toContain("\temail ops@example.com\n");
    expect(caddyfile).toContain("protocols h1 h2 h3");
    expect(caddyfile).toContain(`max_size ${MAX_REQUEST_BODY_BYTES / 1024 / 1024}MiB`);

    // A local host: loopback only, its own ports, the internal CA, no ACME account.
    const local = renderCaddyfile(fixtureClients(), {
      bindAddress: "127.0.0.1",
      httpPort: 8080,
      httpsPort: 8443,
      adminAddress: "127.0.0.1:2999",
      issuer: "internal",
    });
    expect(local).toContain("{\n\tdefault_bind 127.0.0.1\n\tadmin 127.0.0.1:2999\n\thttp_port 8080\n\thttps_port 8443\n");
    expect(local).not.toContain("email");
    expect(local).toContain("\tlocal_certs\n");
    expect(local).toContain("reverse_proxy 127.0.0.1:3001 {");
    // A redirect keeps the non-standard port, so the browser lands on the same listener.
    expect(siteBlock(local, "echo.mai.test")).toContain("redir https://chat.echo-corp.test:8443{uri} 308");
    // Apart from that port, the site blocks are identical to production's.
    const sites = (text: string): string => text.slice(text.indexOf("(mai_security_headers)"));
    expect(sites(local).replace(":8443{uri}", "{uri}")).toBe(sites(caddyfile));
    // Without the internal CA, an ACME account e-mail is required.
    expect(() => renderCaddyfile(fixtureClients(), { bindAddress: "127.0.0.1" })).toThrow(/acmeEmail: expected an e-mail address/);
  });

  it("names the proxy's own admin socket, and refuses a socket path no unix socket can have", () => {
    const socket = "/var/lib/mai/caddy-admin/admin.sock";
    const caddyfile = renderCaddyfile(fixtureClients(), { ...production, adminAddress: `unix/${socket}` });
    expect(caddyfile).toContain(`\tadmin unix/${socket}\n`);
    expect(caddyfile).not.toContain("2019");
    // sun_path is 108 bytes with its NUL: 107 fit, 108 do not.
    const fits = `/${"d".repeat(95)}/admin.sock`;
    expect(Buffer.byteLength(fits)).toBe(MAX_UNIX_SOCKET_PATH_BYTES);
    expect(() => renderCaddyfile([], { ...production, adminAddress: `unix/${fits}` })).not.toThrow();
    expect(() => renderCaddyfile([], { ...production, adminAddress: `unix/${fits}x` })).toThrow(
      /adminAddress: the socket path \/d+\/admin\.sockx has 108 bytes; a unix socket path has at most 107/,
    );
    expect(() => renderCaddyfile([], { ...production, adminAddress: "unix/relative.sock" })).toThrow(/expected unix\/<absolute socket path> or host:port/);
    expect(() => renderCaddyfile([], { ...production, adminAddress: "unix//a b.sock" })).toThrow(/expected unix\/<absolute socket path>/);
  });

  it("answers the proxy's health check on a plain-HTTP site of its own, identical on every host", () => {
    const block = siteBlock(renderCaddyfile(fixtureClients(), production), "http://127.0.0.1");
    expect(block).toBe(`http://127.0.0.1 {\n\trespond ${PROXY_HEALTH_PATH} "OK" 200\n\trespond 404\n}`);
  });

  it("never puts a client name into the Caddyfile raw", () => {
    const caddyfile = renderCaddyfile(fixtureClients(), production);
    expect(caddyfile).not.toContain("{$HOME}");
    expect(caddyfile).not.toContain("{env.SECRET}");
    expect(caddyfile).not.toContain('"Ltd"');
    expect(caddyfile).not.toContain("respond 200 }");
    expect(caddyfile).toContain("Delta &#123;env.SECRET&#125; &#34;Ltd&#34;&#10;respond 200 &#125;");
    // Names of active clients do not appear at all.
    expect(caddyfile).not.toContain("Charlie");
  });

  it("escapes every character outside a small safe set", () => {
    expect(htmlText("Müller & Co. <b>")).toBe("M&#252;ller &#38; Co. &#60;b&#62;");
    expect(htmlText("a{b}`$'\"\\")).toBe("a&#123;b&#125;&#96;&#36;&#39;&#34;&#92;");
    expect(htmlText("😀")).toBe("&#128512;");
  });

  it("refuses values that cannot be rendered safely, listing them all", () => {
    const bad = [
      fixtureClient("alpha", { hostname: "Alpha.example.com" }),
      fixtureClient("bravo", { hostname: "x.mai.test {\n}" }),
      fixtureClient("charlie", { hostname: "alpha.mai.test" }),
    ];
    let message = "";
    try {
      renderCaddyfile(bad, { acmeEmail: "not an email", upstream: () => "evil host:80" });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain("acmeEmail");
    expect(message).toContain("clients/alpha.yaml: hostname \"Alpha.example.com\" is not a lowercase DNS name");
    expect(message).toContain("clients/bravo.yaml: hostname");
    expect(message).toContain("clients/charlie.yaml: hostname alpha.mai.test is already used by clients/alpha.yaml");
    expect(message).toContain('upstream "evil host:80" is not host:port');
  });
});

describe("Caddy release pin", () => {
  it("uses the same version for the image and the install script", () => {
    expect(CADDY_IMAGE).toBe(`caddy:${CADDY_VERSION}-alpine`);
    const script = readFileSync(path.join(__dirname, "..", "scripts", "install-caddy.sh"), "utf8");
    // The script reads the version from caddyRelease.ts instead of repeating it.
    expect(script).toContain("policy/caddyRelease.ts");
    expect(script).not.toMatch(/\d+\.\d+\.\d+/);
    const source = readFileSync(path.join(__dirname, "..", "policy", "caddyRelease.ts"), "utf8");
    expect(source).toContain(`export const CADDY_VERSION = "${CADDY_VERSION}";`);
  });
});
