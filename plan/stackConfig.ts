/**
 * Turns a `Pulumi.<stack>.yaml` into the config map the Pulumi runtime hands a program, without
 * any secrets provider: every `secure:` value becomes a placeholder. Placeholders are derived
 * from the ciphertext, so a re-encrypted (changed) secret yields a different placeholder and the
 * plan can tell that it changed, while the plaintext is never read.
 */
import { createHash } from "crypto";
import { parse } from "yaml";
import { isEncrypted } from "../config/configuration";

/** Runtime config as the Pulumi SDK receives it. */
export interface RuntimeConfig {
  /** `namespace:key` -> value; objects and lists as JSON strings, scalars as strings. */
  values: Record<string, string>;
  /** Keys whose values are secrets (placeholders here). */
  secretKeys: string[];
}

/** Thrown for a stack file that is not valid YAML or has no usable `config` mapping. */
export class StackFileError extends Error {}


/** A stand-in for a secret, stable for one ciphertext. Never the plaintext. */
export function secretPlaceholder(ciphertext: string): string {
  return `placeholder-${createHash("sha256").update(ciphertext).digest("hex").slice(0, 12)}`;
}

/** Replaces secure leaves with placeholders; reports whether any were found. */
function withPlaceholders(value: unknown): { value: unknown; secret: boolean } {
  if (isEncrypted(value)) return { value: secretPlaceholder(value.secure), secret: true };
  if (Array.isArray(value)) {
    const items = value.map(withPlaceholders);
    return { value: items.map((i) => i.value), secret: items.some((i) => i.secret) };
  }
  if (value && typeof value === "object") {
    let secret = false;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const inner = withPlaceholders(v);
      out[k] = inner.value;
      secret ||= inner.secret;
    }
    return { value: out, secret };
  }
  return { value, secret: false };
}

/** Parses the text of a stack file into runtime config with secret placeholders. */
export function runtimeConfigFromStackFile(text: string, file: string): RuntimeConfig {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    throw new StackFileError(`${file}: not valid YAML: ${(err as Error).message.split("\n")[0]}`);
  }
  if (doc === null || doc === undefined) return { values: {}, secretKeys: [] };
  if (typeof doc !== "object" || Array.isArray(doc)) throw new StackFileError(`${file}: expected a mapping with a "config" key`);
  const config = (doc as { config?: unknown }).config ?? {};
  if (typeof config !== "object" || config === null || Array.isArray(config)) {
    throw new StackFileError(`${file}: config: expected a mapping of "namespace:key" to values`);
  }
  const values: Record<string, string> = {};
  const secretKeys: string[] = [];
  for (const [key, raw] of Object.entries(config)) {
    const { value, secret } = withPlaceholders(raw);
    values[key] = typeof value === "string" ? value : typeof value === "object" && value !== null ? JSON.stringify(value) : String(value);
    if (secret) secretKeys.push(key);
  }
  return { values, secretKeys };
}
