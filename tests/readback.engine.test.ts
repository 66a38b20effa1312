/**
 * Real engine: after the applier creates each container the program declares, the docker
 * provider's read-back form of every declared input (derived from `docker inspect` as the
 * provider's Read does, see support/dockerReadBack.ts) must equal the declared input. Otherwise a
 * no-op `pulumi up` shows a change, and for ForceNew inputs replaces the container.
 */
import { describe, expect, it } from "vitest";
import { canonicalJson } from "../plan/diff";
import { docker, runId } from "./support/applier";
import { useAppliedEngineStack } from "./support/appliedEngineStack";
import { type ContainerInspect, type NetworkOrVolumeInspect, readBackContainer, readBackNetworkOrVolume } from "./support/dockerReadBack";
import { type EngineStack } from "./support/engineStack";

const CONTAINER = "docker:index/container:Container";
const id = runId();
let stack: EngineStack;

const applier = useAppliedEngineStack({
  runId: id,
  clients: [
    { key: "defaults" },
    // Fractional CPU limit and reservation, own memory, and an env entry of the client file.
    {
      key: "custom",
      yaml: "name: Custom GmbH\nresources:\n  cpus: 1.5\n  memory: 768M\n  reservations:\n    cpus: 0.5\n    memory: 96M\nenv:\n  DEFAULT_LOCALE: de-DE\n",
    },
    { key: "whole", yaml: "name: Whole\nresources:\n  cpus: 1\n  memory: 512M\n  reservations:\n    cpus: 1\n    memory: 64M\n" },
  ],
  applied: (applied) => {
    stack = applied;
  },
});

/** Values for a failure message; environment values are secrets and show as their names only. */
const shown = (key: string, value: unknown) =>
  JSON.stringify(key === "envs" ? (value as string[]).map((e) => `${e.split("=")[0]}=…`) : value);

describe("read-back of every declared container input", () => {
  // A RemoteImage's id under mocks is made up; the real provider passes the real id, i.e. the id
  // of the image the RemoteImage names.
  const imageId = (declared: string) => docker(["image", "inspect", "-f", "{{.Id}}", applier.imageReference(declared)]);

  it("applies one container per active client (and the proxy, in the local stack)", () => {
    expect(applier.appliedOf(CONTAINER).map((c) => c.inputs.name).sort()).toEqual(
      [...["custom", "defaults", "whole"].map((k) => `mai-${stack.slug(k)}`), ...(stack.local ? ["mai-proxy"] : [])].sort(),
    );
  });

  it("equals the declared inputs for every container", () => {
    const differing = applier.appliedOf(CONTAINER).flatMap((applied) => {
      const inspect = JSON.parse(docker(["inspect", applied.inputs.name]))[0] as ContainerInspect;
      return readBackContainer(inspect, applied.inputs, imageId)
        .filter((c) => canonicalJson(c.readBack) !== canonicalJson(c.declared))
        .map((c) => `${applied.inputs.name} ${c.key} (${c.kind}): declared ${shown(c.key, c.declared)}, read back ${shown(c.key, c.readBack)}`);
    });
    expect(differing).toEqual([]);
  });

  it("networks and volumes hold every declared input (name, driver, labels, ...)", () => {
    const differing = (["network", "volume"] as const).flatMap((kind) =>
      applier.appliedOf(kind === "network" ? "docker:index/network:Network" : "docker:index/volume:Volume").flatMap((applied) => {
        const inspect = JSON.parse(docker([kind, "inspect", applied.inputs.name]))[0] as NetworkOrVolumeInspect;
        return readBackNetworkOrVolume(inspect, applied.inputs)
          .filter((c) => canonicalJson(c.readBack) !== canonicalJson(c.declared))
          .map((c) => `${kind} ${applied.inputs.name} ${c.key}: declared ${JSON.stringify(c.declared)}, engine ${JSON.stringify(c.readBack)}`);
      }),
    );
    expect(applier.appliedOf("docker:index/volume:Volume").length).toBeGreaterThan(0);
    expect(differing).toEqual([]);
  });
});
