/**
 * A client's own OpenRouter API key, created through OpenRouter's provisioning API with a spending
 * limit. The key value exists only as a secret output; limit changes update the key in place; when
 * the client is removed, the key is disabled (not deleted) so its usage stays available for invoicing.
 *
 * Two dynamic resources: this one holds the key (value, name), a child `OpenRouterKeySettings`
 * holds limit and enabled state, so a limit change never makes the key value unknown in a preview
 * (see ./openrouter/keyProvider.ts).
 */
import * as pulumi from "@pulumi/pulumi";
import type { LimitReset } from "./api";
import { openRouterKeyProvider, openRouterKeySettingsProvider } from "./keyProvider";

export { openRouterKeyName, parseOpenRouterKeyName, type LimitReset } from "./api";

/** Resource type token of the key resource (what `pulumi.runtime.setMocks` sees as `args.type`). */
export const OPENROUTER_KEY_TYPE = "pulumi-nodejs:dynamic/openrouter:Key";

/** Resource type token of the settings child. */
export const OPENROUTER_KEY_SETTINGS_TYPE = "pulumi-nodejs:dynamic/openrouter:KeySettings";

/** Arguments of {@link OpenRouterKey}. */
export interface OpenRouterKeyArgs {
  /** Key name shown in OpenRouter; use `openRouterKeyName(slug, pulumi.getStack())` so the usage report finds it. */
  name: pulumi.Input<string>;
  /** Spending limit in USD per reset period (the client's `openrouter.monthlyLimitUsd`); omit for no limit. */
  limitUsd?: pulumi.Input<number | undefined>;
  /** When the limit resets: daily, weekly, monthly (default) or none (a lifetime cap). */
  limitReset?: pulumi.Input<LimitReset>;
  /** Disable the key but keep it (e.g. while a client is suspended); default false. */
  disabled?: pulumi.Input<boolean>;
  /** Provisioning key, from the stack secret `openrouterProvisioningKey`; kept in the state only as a secret. */
  provisioningKey: pulumi.Input<string>;
  /** API base URL; default https://openrouter.ai/api/v1. */
  apiBaseUrl?: pulumi.Input<string>;
}

/** Arguments of {@link OpenRouterKeySettings}. */
export interface OpenRouterKeySettingsArgs {
  /** Hash of the key whose settings are managed. */
  hash: pulumi.Input<string>;
  /** Key name, used in messages. */
  name: pulumi.Input<string>;
  /** Spending limit in USD per reset period; omit for no limit. */
  limitUsd?: pulumi.Input<number | undefined>;
  /** Reset period of the limit; default monthly. */
  limitReset?: pulumi.Input<LimitReset>;
  /** Whether the key is disabled; default false. */
  disabled?: pulumi.Input<boolean>;
  /** Provisioning key (secret). */
  provisioningKey: pulumi.Input<string>;
  /** API base URL; default https://openrouter.ai/api/v1. */
  apiBaseUrl?: pulumi.Input<string>;
}

/** Limit, reset period and enabled state of an OpenRouter key, kept in line with the stack. */
export class OpenRouterKeySettings extends pulumi.dynamic.Resource {
  /** Spending limit in USD per period as last seen at OpenRouter; null for none. */
  declare readonly limitUsd: pulumi.Output<number | null>;
  /** Reset period as last seen at OpenRouter. */
  declare readonly limitReset: pulumi.Output<LimitReset>;
  /** Whether the key is disabled. */
  declare readonly disabled: pulumi.Output<boolean>;
  /** Limit left in the current period, as of the last create, update or refresh. */
  declare readonly limitRemainingUsd: pulumi.Output<number | null>;
  /** Total spend in USD, as of the last create, update or refresh. */
  declare readonly usageUsd: pulumi.Output<number>;
  /** Spend this month (UTC), as of the last create, update or refresh. */
  declare readonly usageMonthlyUsd: pulumi.Output<number | null>;

  constructor(name: string, args: OpenRouterKeySettingsArgs, opts: pulumi.CustomResourceOptions = {}) {
    super(
      openRouterKeySettingsProvider,
      name,
      {
        hash: args.hash,
        name: args.name,
        limitUsd: args.limitUsd,
        limitReset: args.limitReset,
        disabled: args.disabled,
        provisioningKey: pulumi.secret(args.provisioningKey),
        apiBaseUrl: args.apiBaseUrl,
        limitRemainingUsd: undefined,
        usageUsd: undefined,
        usageMonthlyUsd: undefined,
      },
      { ...opts, additionalSecretOutputs: [...(opts.additionalSecretOutputs ?? []), "provisioningKey"] },
      "openrouter",
      "KeySettings",
    );
  }
}

/** A client's OpenRouter key. */
export class OpenRouterKey extends pulumi.dynamic.Resource {
  /** OpenRouter's identifier of the key (not secret). */
  declare readonly hash: pulumi.Output<string>;
  /** The key value, secret; give it to the client's container as its OpenRouter API key. */
  declare readonly key: pulumi.Output<string>;
  /** Masked display form of the key, as in the OpenRouter dashboard. */
  declare readonly label: pulumi.Output<string>;
  /** The key's name at OpenRouter. */
  declare readonly name: pulumi.Output<string>;
  /** Limit, reset period, enabled state and last-seen usage. */
  readonly settings: OpenRouterKeySettings;
  /** Spending limit in USD per period (from the settings); null for none. */
  readonly limitUsd: pulumi.Output<number | null>;
  /** Whether the key is disabled (from the settings). */
  readonly disabled: pulumi.Output<boolean>;

  constructor(name: string, args: OpenRouterKeyArgs, opts: pulumi.CustomResourceOptions = {}) {
    const provisioningKey = pulumi.secret(args.provisioningKey);
    super(
      openRouterKeyProvider,
      name,
      {
        name: args.name,
        // The limit at creation time, so the key never exists without it; later changes go to `settings`.
        limitUsd: args.limitUsd,
        limitReset: args.limitReset,
        provisioningKey,
        apiBaseUrl: args.apiBaseUrl,
        hash: undefined,
        key: undefined,
        label: undefined,
      },
      { ...opts, additionalSecretOutputs: [...(opts.additionalSecretOutputs ?? []), "key", "provisioningKey"] },
      "openrouter",
      "Key",
    );
    this.settings = new OpenRouterKeySettings(
      `${name}-settings`,
      {
        hash: this.hash,
        name: args.name,
        limitUsd: args.limitUsd,
        limitReset: args.limitReset,
        disabled: args.disabled,
        provisioningKey,
        apiBaseUrl: args.apiBaseUrl,
      },
      { parent: this },
    );
    this.limitUsd = this.settings.limitUsd;
    this.disabled = this.settings.disabled;
  }
}
