/**
 * Shapes shared by the plan: what the program declares (one entry per registered resource, as
 * seen by the mock runtime) and how two declarations differ. Pure types, no Pulumi imports.
 */

/** Resource options that change what a deployment does with a resource. */
export interface DeclaredOptions {
  /** `protect`: `pulumi up` refuses to delete or replace the resource. */
  protect: boolean;
  /** `retainOnDelete`: removing the resource from the program leaves it in the cloud. */
  retainOnDelete: boolean;
  /** `deleteBeforeReplace`: a replacement deletes the old resource first (a short outage). */
  deleteBeforeReplace: boolean;
  /** `replaceOnChanges`: input paths whose change forces a replacement (e.g. `triggers[*]`). */
  replaceOnChanges: string[];
  /** `ignoreChanges`: input paths whose change is ignored after creation. */
  ignoreChanges: string[];
  /**
   * `replacementTrigger`: the engine replaces the resource when this value changes between two
   * deployments that both set it (e.g. a client's server: a move recreates its Docker objects
   * on the new server).
   */
  replacementTrigger?: unknown;
  /** `replaceWith`: URNs of resources whose replacement replaces this one too. */
  replaceWith?: string[];
}

/** One resource the program registers, with its inputs in plain JSON form. */
export interface DeclaredResource {
  /** Pulumi URN (`urn:pulumi:<stack>::<project>::<parent types$type>::<name>`); the diff key. */
  urn: string;
  /** Resource type token, e.g. `docker:index/container:Container`. */
  type: string;
  /** Logical name given to the resource constructor. */
  name: string;
  /** URN of the parent resource, if any. */
  parent?: string;
  /** True for provider-managed (custom) resources, false for components. */
  custom: boolean;
  /**
   * Inputs as JSON: secrets are the string `"[secret]"`, unknown values `"[unknown]"`,
   * resource references their URN, assets `{ asset: { text | path | uri } }`.
   */
  inputs: Record<string, unknown>;
  /** Options relevant to what a deployment does. */
  options: DeclaredOptions;
  /**
   * URN of the provider the resource is managed by (custom resources). A different provider is a
   * replacement: the resource is created through the new one and deleted through the old one
   * (e.g. a client's Docker resources when it moves to another server).
   */
  provider?: string;
  /** URNs this resource was known by before (Pulumi `aliases`): the same resource, not a new one. */
  aliases?: string[];
}

/** What a deployment would do to one resource. */
export type ChangeOp = "create" | "update" | "replace" | "delete";

/** One difference between a base declaration and the current one. */
export interface ResourceChange {
  /** What happens to the resource. */
  op: ChangeOp;
  /** URN of the resource (the current one, or the base one for deletes). */
  urn: string;
  /** Resource type token. */
  type: string;
  /** Logical name. */
  name: string;
  /** Top-level input names that differ (all inputs for create/delete are not listed: empty). */
  fields: string[];
  /** Input names among `fields` that force the replacement (only for `replace`). */
  replaceFields?: string[];
  /** Slug of the client the resource belongs to, when it belongs to one. */
  client?: string;
  /**
   * For updates of remote commands and copies: Pulumi replaces the resource (its `triggers`
   * changed), which only re-runs the command or re-copies the file; nothing is torn down.
   */
  rerun?: boolean;
  /** For deletes: the resource is dropped from the stack but left in place (retainOnDelete). */
  retained?: boolean;
  /** For deletes and replaces: the resource is protected, so `pulumi up` would refuse. */
  protected?: boolean;
  /** The client this resource belongs to moves between servers in this change. */
  move?: { from: string; to: string };
}

/** Counts and names a reviewer reads first. */
export interface ChangeSummary {
  /** Clients whose resources appear only in the current declaration. */
  added: string[];
  /** Clients whose resources change without recreating their container. */
  changed: string[];
  /** Clients whose container is recreated (a restart of their workspace). */
  restarted: string[];
  /** Clients whose resources appear only in the base declaration. */
  removed: string[];
  /** Clients that move to another server (`<slug> (<from> -> <to>)`). */
  moved: string[];
  /** Resources of removed clients that are retained on the host (data volumes). */
  retained: string[];
  /** Resources that would be deleted for good although they hold client data. */
  dataLost: string[];
  /** Protected resources the change would delete or replace (`pulumi up` refuses). */
  protectedTouched: string[];
  /** Changes that belong to no client (proxy, host, DNS zone-wide resources). */
  shared: ResourceChange[];
}
