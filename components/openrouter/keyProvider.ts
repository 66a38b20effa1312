/**
 * Dynamic providers for a client's OpenRouter key, split in two resources so that changing a
 * spending limit never touches the resource holding the key value:
 *
 * - the key provider creates the key (with its initial limit), keeps the value as a secret output,
 *   renames it in place, and on delete only disables it (usage history stays for invoicing);
 * - the settings provider keeps limit, reset period and enabled state in line with the stack.
 *
 * Why the split: Pulumi's Node.js dynamic providers cannot preview an update, so every output of a
 * dynamic resource being updated is unknown during preview. If the limit lived on the key resource, a
 * limit change would make the key value unknown in the preview and every consumer of it (the client's
 * container environment) would show as replaced, although nothing but the limit changes.
 *
 * The same reason decides what a rotation of the provisioning key (or a new API base URL) is: a change
 * of the credentials the stack manages keys with, not a change of any key. The key resource's diff
 * ignores both (a rotation leaves it, and so its `hash` and `key` outputs, untouched: no consumer
 * moves), and the settings resource takes the new credentials in an in-place update that first proves
 * them against the API, so a wrong key fails there with a clear message instead of being stored.
 *
 * Pulumi serializes these provider objects, and what they reference, into the stack state and runs
 * them in a separate process. So they hold no secret: the provisioning key arrives as a (secret)
 * input with every call and is kept in the resource's secret outputs. For refresh and delete, which
 * only see a resource's stored outputs, the providers prefer the stack's current credentials when
 * Pulumi hands the stack configuration to `configure` (see {@link configuredConnection}), so a
 * rotated-away key stored with a resource is never needed again.
 * Only `import type` from Pulumi here; the API client comes from the pure `./api` module.
 */
import type * as pulumi from "@pulumi/pulumi";
import { apiBaseUrlProblem } from "../../config/apiBaseUrl";
import {
  createOpenRouterClient,
  DEFAULT_OPENROUTER_API_BASE,
  LIMIT_RESETS,
  isOpenRouterApiError,
  openRouterApiError,
  shortHash,
  type LimitReset,
  type OpenRouterClient,
  type RetryPolicy,
} from "./api";

/** Inputs of the key resource after `check` applied defaults. */
export interface OpenRouterKeyInputs {
  /** Key name in OpenRouter. */
  name: string;
  /** Limit set when the key is created (later changes go through the settings resource). */
  limitUsd: number | null;
  /** Reset period set when the key is created. */
  limitReset: LimitReset;
  /** Provisioning key (secret). */
  provisioningKey: string;
  /** API base URL. */
  apiBaseUrl: string;
}

/** State of the key resource. */
export interface OpenRouterKeyOutputs extends OpenRouterKeyInputs {
  /** Limit in force at OpenRouter when this resource was created or last updated (not the stack's input). */
  limitUsd: number | null;
  /** Reset period in force at OpenRouter when this resource was created or last updated. */
  limitReset: LimitReset;
  /**
   * Credentials of the last create or update. A rotation does not update this resource (see the
   * module comment), so after one these are the previous credentials, used only when Pulumi does
   * not hand the providers the stack's current ones.
   */
  provisioningKey: string;
  /** OpenRouter's identifier of the key; also the resource id. */
  hash: string;
  /** The key value (secret); OpenRouter returns it only at creation. */
  key: string;
  /** Masked display form of the key. */
  label: string;
  /** Creation time reported by OpenRouter. */
  createdAt: string | null;
}

/** Inputs of the settings resource after `check` applied defaults. */
export interface OpenRouterKeySettingsInputs {
  /** Hash of the key to manage. */
  hash: string;
  /** Key name, for messages only. */
  name: string;
  /** Spending limit in USD per period; null for none. */
  limitUsd: number | null;
  /** Reset period of the limit. */
  limitReset: LimitReset;
  /** Whether the key is disabled. */
  disabled: boolean;
  /** Provisioning key (secret). */
  provisioningKey: string;
  /** API base URL. */
  apiBaseUrl: string;
}

/** State of the settings resource: what OpenRouter reported at the last create, update or refresh. */
export interface OpenRouterKeySettingsOutputs extends OpenRouterKeySettingsInputs {
  /** Limit left in the current period; null without a limit. */
  limitRemainingUsd: number | null;
  /** Total spend in USD. */
  usageUsd: number;
  /** Spend this month (UTC) in USD, when reported. */
  usageMonthlyUsd: number | null;
}

/** Stack settings the providers read in `configure` (the stack's `mai-hosting` namespace). */
export const PROVISIONING_KEY_SETTING = "mai-hosting:openrouterProvisioningKey";
/** Stack setting with the provisioning API base URL; absent means {@link DEFAULT_OPENROUTER_API_BASE}. */
export const API_BASE_URL_SETTING = "mai-hosting:openrouterApiBaseUrl";

/** What an API call needs besides its arguments. */
interface Connection {
  /** Provisioning key (secret). */
  provisioningKey: string;
  /** API base URL. */
  apiBaseUrl: string;
}

/** The part of Pulumi's `ConfigureRequest` the providers use (`req.config.get("<namespace>:<key>")`). */
export interface ProviderConfigureRequest {
  config: { get(key: string): string | undefined };
}

/**
 * The stack's current credentials from the configuration Pulumi hands a dynamic provider in
 * `configure`, or undefined when the provisioning key is not among it (a stack without managed keys,
 * or a Pulumi engine that passes dynamic providers no stack configuration).
 */
export function configuredConnection(req: ProviderConfigureRequest): Connection | undefined {
  const setting = (key: string): unknown => {
    try {
      return req.config.get(key);
    } catch {
      // A host that received no configuration at all: fall back to the stored credentials.
      return undefined;
    }
  };
  const provisioningKey = setting(PROVISIONING_KEY_SETTING);
  if (typeof provisioningKey !== "string" || provisioningKey.trim() === "") return undefined;
  const apiBaseUrl = setting(API_BASE_URL_SETTING);
  return {
    provisioningKey: provisioningKey.trim(),
    apiBaseUrl: typeof apiBaseUrl === "string" && apiBaseUrl.trim() !== "" ? apiBaseUrl.trim() : DEFAULT_OPENROUTER_API_BASE,
  };
}

/** Pulumi's marker for a value not known during preview. */
const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/** Where an operator fixes a rejected provisioning key. */
const PROVISIONING_KEY_HINT =
  " Set a valid provisioning key with `pulumi config set --secret openrouterProvisioningKey <key>` (OpenRouter dashboard, Settings > Provisioning/Management keys).";

type Failure = { property: string; reason: string };

function isUnknown(value: unknown): boolean {
  return value === UNKNOWN;
}

function checkCommon(news: Record<string, unknown>, failures: Failure[]): Record<string, unknown> {
  const out: Record<string, unknown> = { ...news };
  if (!isUnknown(news.provisioningKey) && (typeof news.provisioningKey !== "string" || news.provisioningKey.trim() === "")) {
    failures.push({
      property: "provisioningKey",
      reason: "a provisioning key is required: set the stack secret `openrouterProvisioningKey`.",
    });
  }
  if (news.apiBaseUrl === undefined || news.apiBaseUrl === null || news.apiBaseUrl === "") {
    out.apiBaseUrl = DEFAULT_OPENROUTER_API_BASE;
  } else if (!isUnknown(news.apiBaseUrl)) {
    const problem = typeof news.apiBaseUrl === "string" ? apiBaseUrlProblem(news.apiBaseUrl) : "not a URL";
    if (problem !== undefined) {
      failures.push({
        property: "apiBaseUrl",
        reason: `expected an https URL such as ${DEFAULT_OPENROUTER_API_BASE} (http only for a loopback host): ${problem}.`,
      });
    }
  }
  if (news.limitUsd === undefined || news.limitUsd === null) {
    out.limitUsd = null;
  } else if (!isUnknown(news.limitUsd) && (typeof news.limitUsd !== "number" || !Number.isFinite(news.limitUsd) || news.limitUsd < 0)) {
    failures.push({ property: "limitUsd", reason: "expected a number of US dollars, 0 or more (or no limit at all)." });
  }
  if (news.limitReset === undefined || news.limitReset === null) {
    out.limitReset = "monthly";
  } else if (!isUnknown(news.limitReset) && !LIMIT_RESETS.includes(news.limitReset as LimitReset)) {
    failures.push({ property: "limitReset", reason: `expected one of ${LIMIT_RESETS.join(", ")}.` });
  }
  return out;
}

function clientFor(props: Connection, retry: Partial<RetryPolicy> | undefined): OpenRouterClient {
  return createOpenRouterClient({ provisioningKey: props.provisioningKey, apiBaseUrl: props.apiBaseUrl, retry });
}

/**
 * Credentials for refresh and delete, which only see what a resource stored: the stack's current
 * ones when `configure` provided them (the stored key may have been rotated away and revoked since),
 * otherwise the stored ones.
 */
function connectionFor(stored: Connection, configured: { connection?: Connection }): Connection {
  return configured.connection ?? stored;
}

/** Rewords an API failure for the resource it happened on, with what the operator should do. */
function explain(error: unknown, keyName: string, hash: string | undefined): Error {
  if (!isOpenRouterApiError(error)) {
    // Unexpected failures keep only their message: anything else may carry request details.
    const message = error instanceof Error ? error.message : String(error);
    return openRouterApiError("bad-response", `OpenRouter key "${keyName}": ${message}`, undefined, 1);
  }
  let advice = "";
  if (error.kind === "unauthorized" || error.kind === "forbidden") advice = PROVISIONING_KEY_HINT;
  if (error.kind === "not-found" && hash !== undefined) {
    advice =
      ` The key (hash ${shortHash(hash)}) no longer exists at OpenRouter: it was deleted outside this stack.` +
      " Run `pulumi refresh` to drop it from the state; the next `pulumi up` creates a new key and hands it to the client's container.";
  }
  const subject = error.message.includes(`"${keyName}"`) ? "" : `OpenRouter key "${keyName}": `;
  return openRouterApiError(error.kind, `${subject}${error.message}${advice}`, error.status, error.attempts);
}

function changed(oldValue: unknown, newValue: unknown): boolean {
  return isUnknown(newValue) || (oldValue ?? null) !== (newValue ?? null);
}

/**
 * Builds the key provider. `retry` exists for tests (short delays); the stack uses
 * {@link openRouterKeyProvider}, one shared instance so Pulumi serializes it once per run.
 */
export function createOpenRouterKeyProvider(retry?: Partial<RetryPolicy>): pulumi.dynamic.ResourceProvider {
  const configured: { connection?: Connection } = {};
  return {
    async configure(req: ProviderConfigureRequest) {
      configured.connection = configuredConnection(req);
    },

    async check(_olds: Record<string, unknown>, news: Record<string, unknown>) {
      const failures: Failure[] = [];
      const inputs = checkCommon(news, failures);
      if (!isUnknown(news.name) && (typeof news.name !== "string" || news.name.trim() === "" || news.name.length > 200)) {
        failures.push({ property: "name", reason: "expected a key name of 1 to 200 characters." });
      }
      return { inputs, failures };
    },

    async diff(_id: string, olds: OpenRouterKeyOutputs, news: OpenRouterKeyInputs) {
      // Only a state without the key value needs a new key (e.g. an imported key: OpenRouter
      // never shows a value twice). A rename is an in-place update. Not compared, on purpose:
      // limits (the settings resource's business) and the credentials (provisioning key, API base
      // URL). A rotation is no change of this key, and reporting one would make its `hash` and `key`
      // unknown in the preview (a dynamic provider cannot preview an update), so every container
      // using the key would show as replaced; the settings resource takes the new credentials.
      const replaces = typeof olds.key === "string" && olds.key !== "" ? [] : ["key"];
      const changes = replaces.length > 0 || changed(olds.name, news.name);
      return { changes, replaces, deleteBeforeReplace: false };
    },

    async create(inputs: OpenRouterKeyInputs) {
      try {
        const created = await clientFor(inputs, retry).createKey({
          name: inputs.name,
          limitUsd: inputs.limitUsd,
          limitReset: inputs.limitReset,
        });
        const outs: OpenRouterKeyOutputs = {
          ...inputs,
          // What OpenRouter says it set, not what was asked for.
          limitUsd: created.info.limitUsd,
          limitReset: created.info.limitReset,
          hash: created.info.hash,
          key: created.key,
          label: created.info.label,
          createdAt: created.info.createdAt,
        };
        return { id: created.info.hash, outs };
      } catch (error) {
        throw explain(error, inputs.name, undefined);
      }
    },

    async read(id: string, props: OpenRouterKeyOutputs) {
      try {
        const info = await clientFor(connectionFor(props, configured), retry).getKey(id);
        const outs: OpenRouterKeyOutputs = { ...props, hash: info.hash, name: info.name, label: info.label };
        return { id, props: outs };
      } catch (error) {
        if (isOpenRouterApiError(error) && error.kind === "not-found") {
          console.warn(
            `OpenRouter key "${props.name}" (hash ${shortHash(id)}) no longer exists at OpenRouter: it was deleted outside this stack.` +
              " Refresh removes it from the state; the next `pulumi up` creates a new key for the client.",
          );
          return { id: "" };
        }
        throw explain(error, props.name, id);
      }
    },

    async update(id: string, olds: OpenRouterKeyOutputs, news: OpenRouterKeyInputs) {
      // Always one authenticated call with the new credentials before anything is stored: a wrong
      // provisioning key fails here (naming the stack setting) instead of being kept as "updated".
      let info;
      try {
        const api = clientFor(news, retry);
        info = olds.name !== news.name ? await api.updateKey(id, { name: news.name }) : await api.getKey(id);
      } catch (error) {
        throw explain(error, news.name, id);
      }
      const outs: OpenRouterKeyOutputs = {
        ...news,
        name: info.name,
        // The limit in force at OpenRouter, not the stack's input (limits are the settings' business).
        limitUsd: info.limitUsd,
        limitReset: info.limitReset,
        hash: olds.hash,
        key: olds.key,
        label: info.label,
        createdAt: olds.createdAt,
      };
      return { outs };
    },

    async delete(id: string, props: OpenRouterKeyOutputs) {
      // Disable, never delete: the usage history is needed for the last invoice. See docs/runbook.md
      // ("Remove a client") for deleting a key for good.
      try {
        await clientFor(connectionFor(props, configured), retry).updateKey(id, { disabled: true });
      } catch (error) {
        if (isOpenRouterApiError(error) && error.kind === "not-found") return;
        throw explain(error, props.name, id);
      }
    },
  };
}

/**
 * Builds the settings provider (limit, reset period, enabled state). `retry` exists for tests;
 * the stack uses {@link openRouterKeySettingsProvider}.
 */
export function createOpenRouterKeySettingsProvider(retry?: Partial<RetryPolicy>): pulumi.dynamic.ResourceProvider {
  const configured: { connection?: Connection } = {};
  async function apply(inputs: OpenRouterKeySettingsInputs): Promise<OpenRouterKeySettingsOutputs> {
    try {
      const info = await clientFor(inputs, retry).updateKey(inputs.hash, {
        limitUsd: inputs.limitUsd,
        limitReset: inputs.limitReset,
        disabled: inputs.disabled,
      });
      return {
        ...inputs,
        limitRemainingUsd: info.limitRemainingUsd,
        usageUsd: info.usageUsd,
        usageMonthlyUsd: info.usageMonthlyUsd,
      };
    } catch (error) {
      throw explain(error, inputs.name, inputs.hash);
    }
  }

  return {
    async configure(req: ProviderConfigureRequest) {
      configured.connection = configuredConnection(req);
    },

    async check(_olds: Record<string, unknown>, news: Record<string, unknown>) {
      const failures: Failure[] = [];
      const inputs = checkCommon(news, failures);
      if (!isUnknown(news.hash) && (typeof news.hash !== "string" || news.hash === "")) {
        failures.push({ property: "hash", reason: "expected the hash of an OpenRouter key." });
      }
      if (news.disabled === undefined || news.disabled === null) inputs.disabled = false;
      else if (!isUnknown(news.disabled) && typeof news.disabled !== "boolean") {
        failures.push({ property: "disabled", reason: "expected true or false." });
      }
      if (typeof news.name !== "string") inputs.name = "";
      return { inputs, failures };
    },

    async diff(_id: string, olds: OpenRouterKeySettingsOutputs, news: OpenRouterKeySettingsInputs) {
      // A different hash means a different key: recreate these settings on it (cheap, no new key).
      // An unknown hash (the key resource is being created, replaced or renamed in this preview) is
      // not read as a different key: only a known, different hash replaces. A real replacement of the
      // key shows as one in the same preview, and `up` diffs again with the hash known.
      const replaces = !isUnknown(news.hash) && (olds.hash ?? null) !== (news.hash ?? null) ? ["hash"] : [];
      const changes =
        replaces.length > 0 ||
        isUnknown(news.hash) ||
        changed(olds.limitUsd, news.limitUsd) ||
        changed(olds.limitReset, news.limitReset) ||
        changed(olds.disabled, news.disabled) ||
        changed(olds.name, news.name) ||
        changed(olds.provisioningKey, news.provisioningKey) ||
        changed(olds.apiBaseUrl, news.apiBaseUrl);
      return { changes, replaces, deleteBeforeReplace: false };
    },

    async create(inputs: OpenRouterKeySettingsInputs) {
      return { id: inputs.hash, outs: await apply(inputs) };
    },

    async read(id: string, props: OpenRouterKeySettingsOutputs) {
      try {
        const info = await clientFor(connectionFor(props, configured), retry).getKey(props.hash ?? id);
        const outs: OpenRouterKeySettingsOutputs = {
          ...props,
          limitUsd: info.limitUsd,
          limitReset: info.limitReset,
          disabled: info.disabled,
          limitRemainingUsd: info.limitRemainingUsd,
          usageUsd: info.usageUsd,
          usageMonthlyUsd: info.usageMonthlyUsd,
        };
        return { id, props: outs };
      } catch (error) {
        // The key resource reports the missing key; these settings simply go with it.
        if (isOpenRouterApiError(error) && error.kind === "not-found") return { id: "" };
        throw explain(error, props.name, props.hash ?? id);
      }
    },

    async update(_id: string, _olds: OpenRouterKeySettingsOutputs, news: OpenRouterKeySettingsInputs) {
      return { outs: await apply(news) };
    },

    async delete() {
      // Nothing to undo: the key resource disables the key when the client goes away, and a
      // replacement of these settings (new key) must not touch the old key's limit.
    },
  };
}

/** The key provider the stack uses (one instance, so Pulumi serializes it once per run). */
export const openRouterKeyProvider = createOpenRouterKeyProvider();

/** The settings provider the stack uses. */
export const openRouterKeySettingsProvider = createOpenRouterKeySettingsProvider();
