/**
 * A small typed client for OpenRouter's key provisioning API (called "management keys" in newer docs),
 * over the global `fetch`.
 *
 * Endpoints used, all under `<base>/keys` with `Authorization: Bearer <provisioning key>`:
 *   GET    /keys?offset=&include_disabled=true   list (pages of up to 100)
 *   POST   /keys {name, limit, limit_reset}       create; the answer carries the key value, shown only once
 *   GET    /keys/{hash}                           read one key (limit, limit_remaining, usage, usage_monthly, ...)
 *   PATCH  /keys/{hash} {name, limit, limit_reset, disabled}
 *   DELETE /keys/{hash}                           delete for good
 * Errors come back as `{ "error": { "code", "message" } }`; 429 and 5xx may carry `Retry-After`.
 * Docs: https://openrouter.ai/docs/features/provisioning-api-keys ,
 *       https://openrouter.ai/docs/api/api-reference/api-keys/create-keys ,
 *       https://openrouter.ai/docs/api/errors
 *
 * Pure: no Pulumi imports and no module-level state, because the key provider that uses this module is
 * serialized into the stack state and run again in a separate process.
 */
import { DEFAULT_OPENROUTER_API_BASE_URL } from "../../config/apiBaseUrl";

/** How a key's spending limit resets; "none" means the limit is a lifetime cap (the API's `null`). */
export type LimitReset = "daily" | "weekly" | "monthly" | "none";

/** The values `LimitReset` can take, for validation. */
export const LIMIT_RESETS: readonly LimitReset[] = ["daily", "weekly", "monthly", "none"];

/** Where the API lives unless overridden (the stack's `openrouterApiBaseUrl`; tests use a loopback stand-in). */
export const DEFAULT_OPENROUTER_API_BASE = DEFAULT_OPENROUTER_API_BASE_URL;

/** One key as the API describes it (never includes the key value itself). */
export interface OpenRouterKeyInfo {
  /** Stable identifier of the key (not secret); used in every per-key call. */
  hash: string;
  /** Name shown in the OpenRouter dashboard. */
  name: string;
  /** Masked display form of the key, e.g. `sk-or-v1-0e6...1c96` (not the secret). */
  label: string;
  /** A disabled key is refused by OpenRouter but keeps its usage history. */
  disabled: boolean;
  /** Spending limit in USD per reset period; null when the key has no limit. */
  limitUsd: number | null;
  /** What is left of the limit in the current period; null when there is no limit. */
  limitRemainingUsd: number | null;
  /** How the limit resets. */
  limitReset: LimitReset;
  /** Total spend in USD since the key was created. */
  usageUsd: number;
  /** Spend in USD this calendar month (UTC), when the API reports it. */
  usageMonthlyUsd: number | null;
  /** Spend in USD today (UTC), when the API reports it. */
  usageDailyUsd: number | null;
  /** ISO timestamp of creation, when reported. */
  createdAt: string | null;
}

/** Result of creating a key: the description plus the key value, which OpenRouter shows only this once. */
export interface CreatedOpenRouterKey {
  /** The new key's description. */
  info: OpenRouterKeyInfo;
  /** The secret key value (`sk-or-v1-...`). Never log it. */
  key: string;
}

/** Fields a PATCH may change; absent fields are left alone. */
export interface OpenRouterKeyPatch {
  /** New name. */
  name?: string;
  /** New limit in USD, or null to remove the limit. */
  limitUsd?: number | null;
  /** New reset period. */
  limitReset?: LimitReset;
  /** Disable (true) or re-enable (false) the key. */
  disabled?: boolean;
}

/** Retry and timeout policy for API calls. */
export interface RetryPolicy {
  /** Attempts per call, the first one included. */
  maxAttempts: number;
  /** Backoff before the second attempt; doubles for each further attempt. */
  baseDelayMs: number;
  /** Upper bound of the exponential backoff. */
  maxDelayMs: number;
  /** A `Retry-After` longer than this ends the retries instead of stalling the deployment. */
  maxRetryAfterMs: number;
  /** Per-attempt timeout, response body included. */
  timeoutMs: number;
}

/** Defaults: at most 4 attempts, 0.5 s, 1 s, 2 s backoff (with jitter), 15 s per attempt. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: 4,
  baseDelayMs: 500,
  maxDelayMs: 8_000,
  maxRetryAfterMs: 60_000,
  timeoutMs: 15_000,
};

/** What went wrong, in the terms an operator acts on. */
export type OpenRouterErrorKind =
  | "unauthorized"
  | "forbidden"
  | "not-found"
  | "rate-limited"
  | "server"
  | "bad-request"
  | "timeout"
  | "network"
  | "bad-response";

/**
 * An API failure whose message is safe to show: it never contains the provisioning key or a key value.
 * A plain `Error` with extra fields rather than a subclass: Pulumi serializes the key provider (and
 * so this module) into the state, and a serialized `extends Error` class loses its message.
 */
export interface OpenRouterApiError extends Error {
  name: "OpenRouterApiError";
  /** HTTP status of the last attempt, when there was an answer. */
  status: number | undefined;
  /** Classification of the failure. */
  kind: OpenRouterErrorKind;
  /** Attempts made before giving up. */
  attempts: number;
}

/** Creates an {@link OpenRouterApiError}. */
export function openRouterApiError(
  kind: OpenRouterErrorKind,
  message: string,
  status: number | undefined,
  attempts: number,
): OpenRouterApiError {
  const error = new Error(message) as OpenRouterApiError;
  error.name = "OpenRouterApiError";
  error.kind = kind;
  error.status = status;
  error.attempts = attempts;
  // Operators read the message; a stack trace adds nothing. Pulumi's dynamic-provider host prints a
  // failure as `${error}: ${error.stack}`, so the message must be in exactly one of the two: the
  // stack is the message alone and the string form is only the name, which prints
  // "OpenRouterApiError: <message>" once.
  error.stack = message;
  Object.defineProperty(error, "toString", { value: () => error.name, enumerable: false, writable: true, configurable: true });
  return error;
}

/** Whether a caught value is an {@link OpenRouterApiError}. */
export function isOpenRouterApiError(value: unknown): value is OpenRouterApiError {
  return value instanceof Error && value.name === "OpenRouterApiError";
}

/** Outcome of one attempt, as far as the retry decision is concerned. */
export type AttemptOutcome =
  | { kind: "status"; status: number; retryAfter?: string | null }
  | { kind: "timeout" }
  /** `connected` false: the connection was never made (refused, DNS), so the request cannot have run. */
  | { kind: "network"; connected: boolean };

/** Decision after a failed attempt. */
export type RetryDecision = { retry: true; delayMs: number } | { retry: false; retryAfterTooLongMs?: number };

/** Statuses worth another attempt: timeouts, rate limiting and server-side failures. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status <= 599 && status !== 501);
}

/** Parses `Retry-After` (delta seconds or an HTTP date) into milliseconds from `nowMs`; undefined if absent or bad. */
export function parseRetryAfterMs(value: string | null | undefined, nowMs: number): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (text === "") return undefined;
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - nowMs);
}

/**
 * Exponential backoff with "equal jitter": half the delay is fixed, half random, so parallel
 * deployments do not retry in lockstep. `failedAttempt` is 1 for the first attempt.
 */
export function backoffDelayMs(failedAttempt: number, policy: RetryPolicy, random: () => number): number {
  const exponential = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (failedAttempt - 1));
  return Math.round(exponential / 2 + (random() * exponential) / 2);
}

/**
 * Decides whether to try again after a failed attempt.
 * `idempotent` is false for key creation: a create that timed out or failed with 5xx may have
 * happened, and repeating it would mint a second key, so only "certainly not processed" outcomes
 * (429, connection never made) are retried there.
 */
export function planRetry(
  failedAttempt: number,
  outcome: AttemptOutcome,
  policy: RetryPolicy,
  context: { idempotent: boolean; nowMs: number; random: () => number },
): RetryDecision {
  if (failedAttempt >= policy.maxAttempts) return { retry: false };
  const backoff = backoffDelayMs(failedAttempt, policy, context.random);
  if (outcome.kind === "status") {
    if (!isRetryableStatus(outcome.status)) return { retry: false };
    if (!context.idempotent && outcome.status !== 429) return { retry: false };
    const retryAfterMs = parseRetryAfterMs(outcome.retryAfter, context.nowMs);
    if (retryAfterMs !== undefined) {
      if (retryAfterMs > policy.maxRetryAfterMs) return { retry: false, retryAfterTooLongMs: retryAfterMs };
      return { retry: true, delayMs: Math.max(retryAfterMs, backoff) };
    }
    return { retry: true, delayMs: backoff };
  }
  if (outcome.kind === "timeout") return context.idempotent ? { retry: true, delayMs: backoff } : { retry: false };
  return context.idempotent || !outcome.connected ? { retry: true, delayMs: backoff } : { retry: false };
}

/**
 * Whether a key-shaped token is OpenRouter's masked display form of a key (`sk-or-v1-6c9...0bf6`,
 * the `label` the API and the dashboard show): a short visible prefix followed by an ellipsis.
 * That form is not a secret and is what operators match keys by, so it is kept.
 */
function isMaskedKeyForm(token: string, rest: string): boolean {
  return token.length <= MASKED_PREFIX_MAX_LENGTH && /^(\.\.\.|…)/.test(rest);
}

/** Longest visible prefix of a masked key (`sk-or-v1-` and a few characters); real keys are far longer. */
const MASKED_PREFIX_MAX_LENGTH = 20;

/**
 * Replaces the given secrets and anything that looks like an OpenRouter key before text is shown.
 * The masked display form of a key (`sk-or-v1-6c9...0bf6`) is left as it is: it is not a secret.
 */
export function redactSecrets(text: string, secrets: readonly string[]): string {
  let result = text;
  for (const secret of secrets) {
    if (secret.length >= 4) result = result.split(secret).join("[redacted]");
  }
  return result.replace(/sk-or-[A-Za-z0-9_-]{4,}/g, (token, offset: number, whole: string) =>
    isMaskedKeyForm(token, whole.slice(offset + token.length)) ? token : "[redacted]",
  );
}

/** Short, non-secret form of a key hash for messages. */
export function shortHash(hash: string): string {
  return hash.length > 12 ? `${hash.slice(0, 12)}…` : hash;
}

/** Options for {@link createOpenRouterClient}. */
export interface OpenRouterClientOptions {
  /** The provisioning (management) key; sent only in the Authorization header. */
  provisioningKey: string;
  /** API base URL; defaults to {@link DEFAULT_OPENROUTER_API_BASE}. */
  apiBaseUrl?: string;
  /** Overrides of {@link DEFAULT_RETRY_POLICY}. */
  retry?: Partial<RetryPolicy>;
  /** Waits between attempts; injectable so tests need not sleep. */
  sleep?: (ms: number) => Promise<void>;
  /** Jitter source in [0, 1). */
  random?: () => number;
}

/** The provisioning API operations this project uses. */
export interface OpenRouterClient {
  /** Every key of the account, disabled ones included, following pagination. */
  listKeys(): Promise<OpenRouterKeyInfo[]>;
  /** One key by hash; throws `OpenRouterApiError` with kind "not-found" when it does not exist. */
  getKey(hash: string): Promise<OpenRouterKeyInfo>;
  /** Creates a key; the returned value is shown only once. */
  createKey(request: { name: string; limitUsd: number | null; limitReset: LimitReset }): Promise<CreatedOpenRouterKey>;
  /** Changes a key in place. */
  updateKey(hash: string, patch: OpenRouterKeyPatch): Promise<OpenRouterKeyInfo>;
  /** Deletes a key for good (its usage history goes with it). */
  deleteKey(hash: string): Promise<void>;
}

/** Builds a client. Holds the provisioning key only in this closure; nothing is logged. */
export function createOpenRouterClient(options: OpenRouterClientOptions): OpenRouterClient {
  const policy: RetryPolicy = { ...DEFAULT_RETRY_POLICY, ...(options.retry ?? {}) };
  const base = (options.apiBaseUrl ?? DEFAULT_OPENROUTER_API_BASE).replace(/\/+$/, "");
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const random = options.random ?? Math.random;
  const secrets = [options.provisioningKey];

  async function call(method: string, path: string, body: unknown, operation: string, idempotent: boolean): Promise<unknown> {
    for (let attempt = 1; ; attempt++) {
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), policy.timeoutMs);
      let outcome: AttemptOutcome;
      let status: number | undefined;
      let text = "";
      try {
        const response = await fetch(`${base}${path}`, {
          method,
          headers: {
            Authorization: `Bearer ${options.provisioningKey}`,
            Accept: "application/json",
            ...(body === undefined ? {} : { "Content-Type": "application/json" }),
          },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: controller.signal,
        });
        status = response.status;
        text = await response.text();
        if (response.ok) {
          clearTimeout(timer);
          return parseJson(text, operation, attempt);
        }
        outcome = { kind: "status", status, retryAfter: response.headers.get("retry-after") };
      } catch (error) {
        if (isOpenRouterApiError(error)) throw error;
        outcome = classifyFetchFailure(error);
      } finally {
        clearTimeout(timer);
      }
      const decision = planRetry(attempt, outcome, policy, { idempotent, nowMs: Date.now(), random });
      if (decision.retry) {
        await sleep(decision.delayMs);
        continue;
      }
      throw describeFailure(outcome, text, operation, attempt, idempotent, decision.retryAfterTooLongMs);
    }
  }

  function parseJson(text: string, operation: string, attempts: number): unknown {
    if (text.trim() === "") return {};
    try {
      return JSON.parse(text);
    } catch {
      throw openRouterApiError("bad-response", `OpenRouter answered ${operation} with something that is not JSON.`, undefined, attempts);
    }
  }

  function classifyFetchFailure(error: unknown): AttemptOutcome {
    const name = (error as { name?: unknown } | null)?.name;
    if (name === "AbortError" || name === "TimeoutError") return { kind: "timeout" };
    const code = networkCode(error);
    return { kind: "network", connected: !(code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "EAI_AGAIN") };
  }

  function networkCode(error: unknown): string {
    const cause = (error as { cause?: { code?: unknown } } | null)?.cause;
    return typeof cause?.code === "string" ? cause.code : "connection failed";
  }

  function apiMessage(text: string): string {
    let message = "";
    try {
      const parsed = JSON.parse(text) as { error?: { message?: unknown }; message?: unknown };
      const raw = parsed?.error?.message ?? parsed?.message;
      if (typeof raw === "string") message = raw;
    } catch {
      // Not JSON (an HTML error page from a proxy, say): not worth quoting.
    }
    message = redactSecrets(message, secrets).replace(/\s+/g, " ").trim();
    if (message.length > 200) message = `${message.slice(0, 200)}…`;
    return message === "" ? "" : ` OpenRouter says: "${message}".`;
  }

  function describeFailure(
    outcome: AttemptOutcome,
    text: string,
    operation: string,
    attempts: number,
    idempotent: boolean,
    retryAfterTooLongMs: number | undefined,
  ): OpenRouterApiError {
    const tries = `${attempts} attempt${attempts === 1 ? "" : "s"}`;
    const maybeCreated = idempotent
      ? ""
      : " The key may or may not have been created; if one was, nobody received its value, so it is unusable and can be deleted in the OpenRouter dashboard.";
    if (outcome.kind === "timeout") {
      return openRouterApiError(
        "timeout",
        `OpenRouter did not answer ${operation} within ${policy.timeoutMs / 1000}s (${tries}).${maybeCreated}`,
        undefined,
        attempts,
      );
    }
    if (outcome.kind === "network") {
      return openRouterApiError(
        "network",
        `Could not reach OpenRouter at ${base} while ${operation} (${tries}).${outcome.connected ? maybeCreated : ""}`,
        undefined,
        attempts,
      );
    }
    const status = outcome.status;
    const said = apiMessage(text);
    if (status === 401) {
      return openRouterApiError(
        "unauthorized",
        `OpenRouter rejected the provisioning key (HTTP 401) while ${operation}: it is missing, mistyped or revoked.${said}`,
        status,
        attempts,
      );
    }
    if (status === 403) {
      return openRouterApiError(
        "forbidden",
        `OpenRouter refused ${operation} (HTTP 403): the key used is not a provisioning key or may not manage keys.${said}`,
        status,
        attempts,
      );
    }
    if (status === 404) {
      return openRouterApiError("not-found", `OpenRouter found nothing while ${operation} (HTTP 404).${said}`, status, attempts);
    }
    if (status === 429) {
      const wait =
        retryAfterTooLongMs === undefined
          ? ""
          : ` It asked to wait ${Math.ceil(retryAfterTooLongMs / 1000)}s, longer than the ${policy.maxRetryAfterMs / 1000}s allowed here; try again later.`;
      return openRouterApiError("rate-limited", `OpenRouter kept rate-limiting ${operation} (HTTP 429, ${tries}).${wait}${said}`, status, attempts);
    }
    if (status >= 500) {
      return openRouterApiError("server", `OpenRouter failed ${operation} with HTTP ${status} (${tries}).${said}${maybeCreated}`, status, attempts);
    }
    return openRouterApiError("bad-request", `OpenRouter rejected ${operation} (HTTP ${status}).${said}`, status, attempts);
  }

  function toKeyInfo(raw: unknown, operation: string): OpenRouterKeyInfo {
    const data = (raw ?? {}) as Record<string, unknown>;
    if (typeof data.hash !== "string" || data.hash === "") {
      throw openRouterApiError("bad-response", `OpenRouter's answer to ${operation} has no key hash.`, undefined, 1);
    }
    const num = (value: unknown): number | null => (typeof value === "number" && Number.isFinite(value) ? value : null);
    const reset = data.limit_reset;
    return {
      hash: data.hash,
      name: typeof data.name === "string" ? data.name : "",
      label: typeof data.label === "string" ? redactSecrets(data.label, secrets) : "",
      disabled: data.disabled === true,
      limitUsd: num(data.limit),
      limitRemainingUsd: num(data.limit_remaining),
      limitReset: reset === "daily" || reset === "weekly" || reset === "monthly" ? reset : "none",
      usageUsd: num(data.usage) ?? 0,
      usageMonthlyUsd: num(data.usage_monthly),
      usageDailyUsd: num(data.usage_daily),
      createdAt: typeof data.created_at === "string" ? data.created_at : null,
    };
  }

  function dataOf(payload: unknown): unknown {
    return (payload as { data?: unknown } | null)?.data;
  }

  function keyPath(hash: string): string {
    return `/keys/${encodeURIComponent(hash)}`;
  }

  function patchBody(patch: OpenRouterKeyPatch): Record<string, unknown> {
    const body: Record<string, unknown> = {};
    if (patch.name !== undefined) body.name = patch.name;
    if (patch.limitUsd !== undefined) body.limit = patch.limitUsd;
    if (patch.limitReset !== undefined) body.limit_reset = patch.limitReset === "none" ? null : patch.limitReset;
    if (patch.disabled !== undefined) body.disabled = patch.disabled;
    return body;
  }

  return {
    async listKeys() {
      const operation = "listing keys";
      const keys: OpenRouterKeyInfo[] = [];
      const seen = new Set<string>();
      // Pages hold up to 100 keys; stop at an empty page, or if a page brings nothing new (offset ignored).
      for (let page = 0; page < 1000; page++) {
        const payload = await call("GET", `/keys?include_disabled=true&offset=${keys.length}`, undefined, operation, true);
        const items = dataOf(payload);
        if (!Array.isArray(items)) {
          throw openRouterApiError("bad-response", `OpenRouter's answer to ${operation} has no list of keys.`, undefined, 1);
        }
        let added = 0;
        for (const item of items) {
          const info = toKeyInfo(item, operation);
          if (seen.has(info.hash)) continue;
          seen.add(info.hash);
          keys.push(info);
          added++;
        }
        if (added === 0) break;
      }
      return keys;
    },

    async getKey(hash) {
      const operation = `reading key ${shortHash(hash)}`;
      return toKeyInfo(dataOf(await call("GET", keyPath(hash), undefined, operation, true)), operation);
    },

    async createKey(request) {
      const operation = `creating key "${request.name}"`;
      const payload = await call(
        "POST",
        "/keys",
        {
          name: request.name,
          ...(request.limitUsd === null ? {} : { limit: request.limitUsd }),
          limit_reset: request.limitReset === "none" ? null : request.limitReset,
        },
        operation,
        false,
      );
      const key = (payload as { key?: unknown } | null)?.key;
      if (typeof key !== "string" || key === "") {
        throw openRouterApiError("bad-response", `OpenRouter's answer to ${operation} carries no key value.`, undefined, 1);
      }
      return { info: toKeyInfo(dataOf(payload), operation), key };
    },

    async updateKey(hash, patch) {
      const operation = `updating key ${shortHash(hash)}`;
      return toKeyInfo(dataOf(await call("PATCH", keyPath(hash), patchBody(patch), operation, true)), operation);
    },

    async deleteKey(hash) {
      await call("DELETE", keyPath(hash), undefined, `deleting key ${shortHash(hash)}`, true);
    },
  };
}

/** Project name; the first part of every key name this project manages. */
export const OPENROUTER_KEY_NAME_PREFIX = "mai-hosting";

/**
 * Name of the OpenRouter key the stack creates for a client: `mai-hosting/<stack>/<slug>`.
 * The stack is part of the name so that two stacks sharing one OpenRouter account never
 * confuse each other's keys; the usage report finds clients by parsing it back.
 */
export function openRouterKeyName(slug: string, stack: string): string {
  return `${OPENROUTER_KEY_NAME_PREFIX}/${stack}/${slug}`;
}

/** Inverse of {@link openRouterKeyName}; undefined for names that do not follow the convention. */
export function parseOpenRouterKeyName(name: string): { stack: string; slug: string } | undefined {
  const prefix = `${OPENROUTER_KEY_NAME_PREFIX}/`;
  if (!name.startsWith(prefix)) return undefined;
  const match = /^([A-Za-z0-9._-]+)\/([a-z0-9](?:[a-z0-9-]*[a-z0-9])?)$/.exec(name.slice(prefix.length));
  return match ? { stack: match[1], slug: match[2] } : undefined;
}
