/**
 * What repair decides for each interrupted operation of a dead `pulumi up` (policy/repair.ts):
 * which engine an object is on, adopt / remove / clear / refresh / leave alone, the state it
 * imports, how it reaches a server, and how it reads a lock.
 */
import { describe, expect, it } from "vitest";
import {
  dockerInvocation,
  engineOf,
  enginesOf,
  lockDirectories,
  lockedMessage,
  parseInspect,
  pendingWork,
  planRepair,
  refreshTargets,
  removals,
  renderSteps,
  repairedDeployment,
  type Deployment,
  type ObservedObject,
  type PendingOperation,
  type StateResource,
} from "../policy/repair";

const STACK = "urn:pulumi:test::mai-hosting::";
const providerUrn = `${STACK}mai:index:Host$pulumi:providers:docker::local-docker`;
const provider: StateResource = {
  urn: providerUrn,
  type: "pulumi:providers:docker",
  custom: true,
  id: "p-1",
  inputs: { host: "unix:///run/test/docker.sock", version: "5.2.0" },
  parent: `${STACK}mai:index:Host::local`,
};
const client: StateResource = { urn: `${STACK}mai:index:ClientInstance::acme`, type: "mai:index:ClientInstance" };
const urnOf = (type: string, name: string) => `${STACK}mai:index:ClientInstance$${type}::${name}`;

function creating(type: string, name: string, inputs: Record<string, unknown>): PendingOperation {
  return { type: "creating", resource: { urn: urnOf(type, name), type, custom: true, inputs, parent: client.urn, provider: `${providerUrn}::p-1` } };
}

const network = creating("docker:index/network:Network", "acme-network", {
  name: "mai-acme",
  driver: "bridge",
  labels: [{ label: "mai.client", value: "acme" }],
});
const container = creating("docker:index/container:Container", "acme-container", {
  name: "mai-acme",
  image: "mai-local/workspace:1",
  labels: [
    { label: "mai.client", value: "acme" },
    { label: "mai.managed-by", value: "pulumi" },
  ],
});
const volume = creating("docker:index/volume:Volume", "acme-data", { name: "mai-acme-data", labels: [{ label: "mai.client", value: "acme" }] });
const secret = creating("random:index/randomPassword:RandomPassword", "acme-webui-secret", { length: 48 });
const command = creating("command:local:Command", "local-proxy-reload", { create: "reload" });
const server: PendingOperation = { type: "creating", resource: { urn: `${STACK}mai:index:Host$hcloud:index/server:Server::nbg1-b-server`, type: "hcloud:index/server:Server", inputs: {} } };
const existing: StateResource = { urn: urnOf("docker:index/container:Container", "other-container"), type: "docker:index/container:Container", id: "c-other", inputs: {} };
const updating: PendingOperation = { type: "updating", resource: existing };

function deployment(...ops: PendingOperation[]): Deployment {
  return { resources: [provider, client, existing], pending_operations: ops };
}

const observe = (entries: [PendingOperation, ObservedObject | undefined][]) => new Map(entries.map(([op, found]) => [op.resource.urn, found]));
const ours = (id: string, extra: Record<string, string> = {}): ObservedObject => ({ id, labels: { "mai.client": "acme", "mai.managed-by": "pulumi", ...extra }, driver: "bridge" });

describe("repair: which engine", () => {
  it("is the one the resource's Docker provider used, named by the provider's host component", () => {
    expect(engineOf(network.resource, deployment(network))).toEqual({ server: "local", host: "unix:///run/test/docker.sock", sshOptions: [] });
  });

  it("reads a Hetzner provider's ssh:// host and its SSH options, also when the state keeps them as JSON text", () => {
    const hetzner: StateResource = {
      ...provider,
      urn: `${STACK}mai:index:Host$pulumi:providers:docker::nbg1-b-docker`,
      id: "p-2",
      parent: `${STACK}mai:index:Host::nbg1-b`,
      inputs: { host: "ssh://root@203.0.113.7", sshOpts: '["-o","StrictHostKeyChecking=accept-new","-o","ServerAliveInterval=30"]' },
    };
    const onHetzner = { ...network.resource, provider: `${hetzner.urn}::p-2` };
    expect(engineOf(onHetzner, { resources: [hetzner] })).toEqual({
      server: "nbg1-b",
      host: "ssh://root@203.0.113.7",
      sshOptions: ["-o", "StrictHostKeyChecking=accept-new", "-o", "ServerAliveInterval=30"],
    });
  });

  it("cannot be told without a provider in the state: the object is left alone", () => {
    const orphan: PendingOperation = { ...network, resource: { ...network.resource, provider: `${STACK}pulumi:providers:docker::gone::x` } };
    const [step] = planRepair({ resources: [client], pending_operations: [orphan] }, new Map());
    expect(step.action).toBe("blocked");
    expect(step.reason).toContain("not in the state");
  });

  it("each server is reached once, however many objects it has", () => {
    expect(enginesOf(pendingWork(deployment(network, container, volume)))).toEqual([{ server: "local", host: "unix:///run/test/docker.sock", sshOptions: [] }]);
  });
});

describe("repair: what it does with each interrupted create", () => {
  it("adopts a network made as declared, with the engine's id", () => {
    const [step] = planRepair(deployment(network), observe([[network, ours("n-1")]]));
    expect(step).toMatchObject({ action: "adopt", object: { kind: "network", name: "mai-acme", id: "n-1" } });
  });

  it("removes a network of the stack's with another driver, and leaves one without the stack's labels alone", () => {
    const [wrongDriver] = planRepair(deployment(network), observe([[network, { ...ours("n-1"), driver: "macvlan" }]]));
    expect(wrongDriver.action).toBe("remove");
    const [foreign] = planRepair(deployment(network), observe([[network, { id: "n-2", labels: {}, driver: "bridge" }]]));
    expect(foreign.action).toBe("blocked");
  });

  it("removes a container of the stack's (never adopts one) and leaves a foreign one alone", () => {
    const [half] = planRepair(deployment(container), observe([[container, ours("c-1")]]));
    expect(half).toMatchObject({ action: "remove", object: { kind: "container", id: "c-1" } });
    const [foreign] = planRepair(deployment(container), observe([[container, { id: "c-2", labels: { "mai.client": "someone-else" } }]]));
    expect(foreign.action).toBe("blocked");
  });

  it("never touches the live object when a later up already created it (the stale pending create is only dropped)", () => {
    const live: StateResource = { ...container.resource, id: "c-live" };
    const stale: Deployment = { resources: [provider, client, live], pending_operations: [container] };
    const [step] = planRepair(stale, observe([[container, ours("c-live")]]));
    expect(step.action).toBe("clear");
    expect(removals([step])).toEqual([]);
    // The old container of a delete-first replacement is still in the state with its (gone) id: the half-made new one goes.
    const [replacement] = planRepair(stale, observe([[container, ours("c-new")]]));
    expect(replacement).toMatchObject({ action: "remove", object: { id: "c-new" } });
  });

  it("clears a container or network create that never reached the engine", () => {
    const steps = planRepair(deployment(network, container), observe([[network, undefined], [container, undefined]]));
    expect(steps.map((s) => s.action)).toEqual(["clear", "clear"]);
  });

  it("never touches a volume, whatever its engine holds", () => {
    const steps = planRepair(deployment(volume), observe([[volume, ours("mai-acme-data")]]));
    expect(steps).toMatchObject([{ action: "clear" }]);
    expect(steps[0].object).toBeUndefined();
    expect(removals(steps)).toEqual([]);
  });

  it("clears passwords and commands: nothing outside the state collides with the next up", () => {
    expect(planRepair(deployment(secret, command), new Map()).map((s) => s.action)).toEqual(["clear", "clear"]);
  });

  it("leaves objects it cannot see (Hetzner, Cloudflare, OpenRouter) until the operator forgets them by URN", () => {
    expect(planRepair(deployment(server), new Map())[0].action).toBe("blocked");
    expect(planRepair(deployment(server), new Map(), new Set([server.resource.urn]))[0].action).toBe("clear");
  });

  it("refreshes a resource whose update or delete was interrupted; one the state no longer holds is cleared", () => {
    expect(planRepair(deployment(updating), new Map())[0].action).toBe("refresh");
    const gone: PendingOperation = { type: "deleting", resource: { ...existing, urn: urnOf("docker:index/container:Container", "gone-container") } };
    expect(planRepair(deployment(gone), new Map())[0].action).toBe("clear");
  });
});

describe("repair: the state it writes", () => {
  const ops = [network, container, volume, secret, updating];
  const steps = planRepair(deployment(...ops), observe([[network, ours("n-1")], [container, ours("c-1")]]));

  it("adds each adopted resource with its id after what it refers to, keeps every other resource, drops every pending operation", () => {
    const repaired = repairedDeployment(deployment(...ops), steps);
    expect(repaired.pending_operations).toEqual([]);
    expect(repaired.resources!.map((r) => r.urn)).toEqual([provider.urn, client.urn, existing.urn, network.resource.urn]);
    expect(repaired.resources![3]).toMatchObject({ id: "n-1", inputs: network.resource.inputs, provider: network.resource.provider, outputs: {} });
  });

  it("refuses to adopt a resource whose parent or provider the state lacks", () => {
    const withoutParent: Deployment = { resources: [provider], pending_operations: [network] };
    const adopt = planRepair(withoutParent, observe([[network, ours("n-1")]]));
    expect(adopt[0].action).toBe("adopt");
    expect(() => repairedDeployment(withoutParent, adopt)).toThrow(`refers to ${client.urn}, which the state lacks`);
  });

  it("re-reads the adopted and the interrupted resources, and removes containers before networks", () => {
    expect(refreshTargets(steps)).toEqual([network.resource.urn, existing.urn]);
    const both = planRepair(deployment(network, container), observe([[network, { ...ours("n-1"), driver: "overlay" }], [container, ours("c-1")]]));
    expect(removals(both).map((s) => s.object!.kind)).toEqual(["container", "network"]);
  });

  it("says what it did, or would do, per object", () => {
    expect(renderSteps(steps, true)).toContain("would adopt   network mai-acme (server local)");
    expect(renderSteps(steps, false)).toContain("removed       container mai-acme (server local)");
    expect(renderSteps(steps, false)).toContain("cleared       volume acme-data: never touched");
  });
});

describe("repair: reaching an engine", () => {
  it("runs the local docker CLI with the provider's DOCKER_HOST", () => {
    expect(dockerInvocation({ server: "local", host: "unix:///run/d.sock", sshOptions: [] }, ["inspect", "mai-acme"])).toEqual({
      command: "docker",
      args: ["inspect", "mai-acme"],
      env: { DOCKER_HOST: "unix:///run/d.sock" },
    });
  });

  it("runs docker on a server over ssh, in batch mode, with the provider's SSH options and the arguments quoted", () => {
    const call = dockerInvocation({ server: "nbg1-b", host: "ssh://root@203.0.113.7:2222", sshOptions: ["-o", "StrictHostKeyChecking=accept-new"] }, ["inspect", "--format", "{{.Id}} x"]);
    expect(call).toEqual({
      command: "ssh",
      args: ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new", "-p", "2222", "root@203.0.113.7", "--", "docker inspect --format '{{.Id}} x'"],
      env: {},
    });
  });

  it("reads docker inspect of a container (Config.Labels) and of a network (Labels, Driver)", () => {
    expect(parseInspect(JSON.stringify([{ Id: "c1", Config: { Labels: { "mai.client": "acme" } } }]))).toEqual({ id: "c1", labels: { "mai.client": "acme" } });
    expect(parseInspect(JSON.stringify([{ Id: "n1", Driver: "bridge", Labels: null }]))).toEqual({ id: "n1", labels: {}, driver: "bridge" });
    expect(parseInspect("[]")).toBeUndefined();
    expect(parseInspect("not json")).toBeUndefined();
  });
});

describe("repair: the stack's lock", () => {
  it("finds a file backend's lock files in both layouts, ~ expanded and query dropped; other backends have none to read", () => {
    expect(lockDirectories("file://~", "mai-hosting", "local", "/home/op")).toEqual([
      "/home/op/.pulumi/locks/organization/mai-hosting/local",
      "/home/op/.pulumi/locks/local",
    ]);
    expect(lockDirectories("file:///srv/state/?no_tmp_dir=true", "mai-hosting", "organization/mai-hosting/prod", "/h")[0]).toBe("/srv/state/.pulumi/locks/organization/mai-hosting/prod");
    expect(lockDirectories("s3://bucket", "mai-hosting", "prod", "/h")).toEqual([]);
  });

  it("says to wait for a deployment that still runs, and to run pulumi cancel for a dead one", () => {
    const holder = { pid: 42, username: "ci", hostname: "runner", timestamp: "2026-12-01T10:00:00Z" };
    expect(lockedMessage("prod", holder, true)).toMatch(/still running .*Wait for it/);
    expect(lockedMessage("prod", holder, true)).not.toContain("pulumi cancel");
    expect(lockedMessage("prod", holder, false)).toContain("`pulumi cancel --stack prod`");
    expect(lockedMessage("prod", holder, undefined)).toContain("If that deployment is no longer running");
  });
});
