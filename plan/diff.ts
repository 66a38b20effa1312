/**
 * The difference between two declarations of the program (e.g. the base branch and the working
 * tree), resource by resource, keyed by URN — the same key Pulumi uses to match a program's
 * resources with its state. Pure: no Pulumi imports.
 */
import { forcesReplacement, providerCompares } from "./replaceRules";
import type { ChangeSummary, DeclaredResource, ResourceChange } from "./types";
import { dataHoldingTypes, restartingTypes } from "./replaceRules";
import { hasProviderForm, providerForm } from "./providerForms";

/** The component type that groups one client's resources. */
export const clientComponentType = "mai:index:ClientInstance";

/** JSON with object keys sorted, so equal values always serialise identically. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v && typeof v === "object" && !Array.isArray(v)) {
      const sorted: Record<string, unknown> = {};
      for (const k of Object.keys(v as Record<string, unknown>).sort()) sorted[k] = (v as Record<string, unknown>)[k];
      return sorted;
    }
    return v;
  });
}

/**
 * Top-level inputs whose values differ. `fingerprints` (when a declaration carries them) cover
 * values that are masked in `inputs`, such as secrets.
 */
export function changedInputs(
  before: DeclaredResource,
  after: DeclaredResource,
  fingerprint: (r: DeclaredResource, field: string) => string = (r, f) => canonicalJson(r.inputs[f]),
): string[] {
  const ignored = new Set(after.options.ignoreChanges.map((p) => p.split(/[.[]/)[0]));
  const names = new Set([...Object.keys(before.inputs), ...Object.keys(after.inputs)]);
  return [...names]
    .filter((name) => !ignored.has(name) && fingerprint(before, name) !== fingerprint(after, name))
    .sort();
}

/** The component type of the shared proxy, whose per-client resources are named `<proxy>-…-<slug>`. */
export const proxyComponentType = "mai:index:Proxy";

/** The resource and its ancestors, nearest first. */
function ancestry(resource: DeclaredResource, byUrn: ReadonlyMap<string, DeclaredResource>): DeclaredResource[] {
  const chain: DeclaredResource[] = [];
  const seen = new Set<string>();
  let current: DeclaredResource | undefined = resource;
  while (current && !seen.has(current.urn)) {
    seen.add(current.urn);
    chain.push(current);
    current = current.parent ? byUrn.get(current.parent) : undefined;
  }
  return chain;
}

/**
 * Finds the client a resource belongs to: the nearest `mai:index:ClientInstance` ancestor (or the
 * resource itself), whose name is the client's slug or `mai-<slug>`; or, inside the proxy
 * component, a resource named `…-<slug>` after one of `slugs` (e.g. the client's network attachment).
 */
export function clientOwner(
  resource: DeclaredResource,
  byUrn: ReadonlyMap<string, DeclaredResource>,
  slugs: readonly string[] = [],
): string | undefined {
  const chain = ancestry(resource, byUrn);
  const instance = chain.find((r) => r.type === clientComponentType);
  if (instance) return instance.name.replace(/^mai-/, "");
  if (!chain.some((r) => r.type === proxyComponentType)) return undefined;
  return [...slugs].sort((a, b) => b.length - a.length).find((slug) => resource.name.endsWith(`-${slug}`));
}

/** Client slugs named by the ClientInstance components of a declaration. */
function clientSlugs(resources: readonly DeclaredResource[]): string[] {
  return resources.filter((r) => r.type === clientComponentType).map((r) => r.name.replace(/^mai-/, ""));
}

/**
 * Whether replacing this resource only re-runs something and tears nothing down: a remote command
 * without a `delete` step, or a file copy (deleting a CopyToRemote leaves the file). Pulumi lists
 * these as replacements; the plan shows them as updates that re-run.
 */
export function replacementOnlyReruns(before: DeclaredResource, after: DeclaredResource): boolean {
  if (after.type === "command:remote:CopyToRemote") return true;
  return after.type === "command:remote:Command" && before.inputs.delete === undefined && after.inputs.delete === undefined;
}

/** Per-input fingerprints carried next to a declaration (masked values included). */
export type Fingerprints = ReadonlyMap<string, Readonly<Record<string, string>>>;

/**
 * What a deployment of `head` does relative to `base`: creates, in-place updates, replacements
 * and deletes, in declaration order (deletes last, in base order). Components only ever appear
 * as create or delete: their inputs are not sent to any provider.
 */
export function diffDeclarations(
  base: readonly DeclaredResource[],
  head: readonly DeclaredResource[],
  fingerprints?: { base?: Fingerprints; head?: Fingerprints },
): ResourceChange[] {
  const baseByUrn = new Map(base.map((r) => [r.urn, r]));
  const headByUrn = new Map(head.map((r) => [r.urn, r]));
  // A head resource with `aliases` is the same resource as the base one under its old URN.
  const previousOf = (after: DeclaredResource) =>
    baseByUrn.get(after.urn) ?? (after.aliases ?? []).map((alias) => baseByUrn.get(alias)).find((found) => found !== undefined);
  const matchedBase = new Set(head.map(previousOf).filter((found) => found !== undefined).map((found) => found.urn));
  const fingerprintOf = (side: "base" | "head") => (r: DeclaredResource, field: string) =>
    hasProviderForm(r.type, field)
      ? canonicalJson(providerForm(r.type, field, r.inputs[field]))
      : (fingerprints?.[side]?.get(r.urn)?.[field] ?? canonicalJson(r.inputs[field]));
  const slugs = [...new Set([...clientSlugs(base), ...clientSlugs(head)])];

  /** The change of one head resource, given the head resources replaced (for `replaceWith`). */
  const changeOf = (after: DeclaredResource, replaced: ReadonlySet<string>): ResourceChange | undefined => {
    const client = clientOwner(after, headByUrn, slugs);
    const before = previousOf(after);
    const common = { urn: after.urn, type: after.type, name: after.name, ...(client ? { client } : {}) };
    if (!before) return { op: "create", ...common, fields: [] };
    if (!after.custom) return undefined;
    const fbBase = fingerprintOf("base");
    const fbHead = fingerprintOf("head");
    const fields = changedInputs(before, after, (r, f) => (r === before ? fbBase(r, f) : fbHead(r, f))).filter((f) =>
      providerCompares(after.type, f),
    );
    // A different provider alone is no change: the engine asks the new provider to diff the same
    // inputs, hears "no change" and only repoints the state (nothing is created on a new server).
    // What recreates a resource elsewhere is its `replacementTrigger` (set by both sides, changed).
    const trigger = (r: DeclaredResource) => r.options.replacementTrigger;
    const triggerChanged = trigger(before) !== undefined && trigger(after) !== undefined && canonicalJson(trigger(before)) !== canonicalJson(trigger(after));
    if (triggerChanged) fields.push("replacementTrigger");
    // `replaceWith`: the engine replaces the resource with any of those it names.
    const replacedWith = (after.options.replaceWith ?? []).some((urn) => replaced.has(urn));
    if (replacedWith) fields.push("replaceWith");
    if (fields.length === 0) return undefined;
    const forced = (f: string) => f === "replacementTrigger" || f === "replaceWith";
    const replaceFields = fields.filter((f) => forced(f) || forcesReplacement(after.type, f, after.options.replaceOnChanges));
    if (replaceFields.length > 0 && !triggerChanged && !replacedWith && replacementOnlyReruns(before, after)) {
      return { op: "update", ...common, fields, rerun: true };
    }
    if (replaceFields.length === 0) return { op: "update", ...common, fields };
    return {
      op: "replace",
      ...common,
      fields,
      replaceFields,
      // The old resource of a replacement is kept like a deleted one (e.g. a data volume).
      ...(before.options.retainOnDelete ? { retained: true } : {}),
      ...(before.options.protect ? { protected: true } : {}),
    };
  };

  // Registration order need not follow `replaceWith` (a dependant may be recorded first), so
  // replacements are propagated until nothing more is replaced.
  let replaced = new Set<string>();
  let headChanges: (ResourceChange | undefined)[];
  for (;;) {
    headChanges = head.map((after) => changeOf(after, replaced));
    const now = new Set(headChanges.filter((c) => c?.op === "replace").map((c) => c!.urn));
    if (now.size === replaced.size) break;
    replaced = now;
  }
  const changes: ResourceChange[] = headChanges.filter((c): c is ResourceChange => c !== undefined);

  for (const before of base) {
    if (matchedBase.has(before.urn)) continue;
    const client = clientOwner(before, baseByUrn, slugs);
    changes.push({
      op: "delete",
      urn: before.urn,
      type: before.type,
      name: before.name,
      fields: [],
      ...(client ? { client } : {}),
      ...(before.options.retainOnDelete ? { retained: true } : {}),
      ...(before.options.protect ? { protected: true } : {}),
    });
  }
  return changes;
}

/**
 * Marks the changes of clients that move between servers, so that their creates, replacements
 * and deletes read as one move instead of an unrelated removal and addition.
 */
export function annotateMoves(changes: readonly ResourceChange[], moves: readonly { slug: string; from: string; to: string }[]): ResourceChange[] {
  const bySlug = new Map(moves.map((m) => [m.slug, { from: m.from, to: m.to }]));
  return changes.map((change) => {
    const move = change.client ? bySlug.get(change.client) : undefined;
    return move ? { ...change, move } : change;
  });
}

/** Groups changes into what a reviewer asks first: which clients are added, changed, restarted, removed, moved. */
export function summariseChanges(changes: readonly ResourceChange[]): ChangeSummary {
  const byClient = new Map<string, ResourceChange[]>();
  const shared: ResourceChange[] = [];
  for (const change of changes) {
    if (change.client) byClient.set(change.client, [...(byClient.get(change.client) ?? []), change]);
    else shared.push(change);
  }
  const summary: ChangeSummary = {
    added: [],
    changed: [],
    restarted: [],
    removed: [],
    moved: [],
    retained: [],
    dataLost: [],
    protectedTouched: [],
    shared,
  };
  for (const [client, list] of [...byClient.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    const component = list.find((c) => c.type === clientComponentType);
    const move = list.find((c) => c.move)?.move;
    if (move) summary.moved.push(`${client} (${move.from} -> ${move.to})`);
    else if (component?.op === "create") summary.added.push(client);
    else if (component?.op === "delete") summary.removed.push(client);
    else if (list.some((c) => c.op === "replace" && restartingTypes.has(c.type))) summary.restarted.push(client);
    else summary.changed.push(client);
  }
  for (const change of changes) {
    if (change.op === "delete" && dataHoldingTypes.has(change.type)) {
      (change.retained ? summary.retained : summary.dataLost).push(change.name);
    }
    if (change.op === "replace" && dataHoldingTypes.has(change.type)) {
      // A moving client's volume is recreated on the target and filled by the move; the old one
      // stays on the source. Any other replacement leaves the client with an empty volume.
      (change.move && change.retained ? summary.retained : summary.dataLost).push(change.name);
    }
    if (change.protected) summary.protectedTouched.push(change.name);
  }
  return summary;
}
