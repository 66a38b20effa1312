/**
 * Client fixtures for the Caddyfile tests: several active clients, one suspended, one with a
 * custom hostname, and names that would break a naive renderer.
 */
import type { ClientSpec } from "../../config/model";

/** Base domain of the fixture clients. */
export const FIXTURE_DOMAIN = "mai.test";

/** Builds a resolved client the way the loader would, with only the fields that matter here. */
export function fixtureClient(
  slug: string,
  overrides: Partial<ClientSpec> = {},
): ClientSpec {
  const defaultHostname = `${slug}.${FIXTURE_DOMAIN}`;
  return {
    slug,
    file: `clients/${slug}.yaml`,
    name: `Client ${slug}`,
    admin: `admin@${defaultHostname}`,
    port: 3000,
    hostname: defaultHostname,
    defaultHostname,
    status: "active",
    image: "ghcr.io/example/mai:1.0.0",
    resources: { cpus: 1, memoryMb: 2048, reservedCpus: 0.5, reservedMemoryMb: 1024, pidsLimit: 1024 },
    env: {},
    server: "host",
    ...overrides,
  };
}

/** The fixture set: alpha, bravo, charlie active; delta suspended; echo on a custom hostname. */
export function fixtureClients(): ClientSpec[] {
  return [
    fixtureClient("charlie", { port: 3003, name: 'Charlie "Braces" {$HOME} {http.request.uri}' }),
    fixtureClient("alpha", { port: 3001, name: "Alpha GmbH" }),
    fixtureClient("bravo", { port: 3002, name: "Bravo & Söhne <b>" }),
    fixtureClient("delta", {
      port: 3004,
      status: "suspended",
      name: "Delta {env.SECRET} \"Ltd\"\nrespond 200 }",
    }),
    fixtureClient("echo", { port: 3005, hostname: "chat.echo-corp.test", name: "Echo Corp" }),
  ];
}
