/**
 * A loopback HTTP stand-in for OpenRouter's key provisioning API (the endpoints and error shapes
 * documented at https://openrouter.ai/docs/features/provisioning-api-keys and
 * https://openrouter.ai/docs/api/errors), with scripted faults: error statuses, Retry-After,
 * and requests that never get an answer. Real HTTP, so the client's fetch, timeouts and retries
 * are exercised as they run against the real service.
 */
import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** A key as the stand-in stores it (API field names). */
export interface StandInKey {
  hash: string;
  key: string;
  name: string;
  label: string;
  disabled: boolean;
  limit: number | null;
  limit_reset: string | null;
  usage: number;
  usage_monthly: number;
  usage_daily: number;
  created_at: string;
  updated_at: string | null;
}

/** One request the stand-in received. */
export interface RecordedRequest {
  method: string;
  path: string;
  body: unknown;
  authorized: boolean;
}

/** A scripted answer for matching requests, used `times` times before normal handling resumes. */
export interface Fault {
  method?: string;
  /** Matches when the request path (without query) starts with this. */
  pathPrefix?: string;
  times: number;
  /** HTTP status to answer with; ignored when `hang` is set. */
  status?: number;
  /** `Retry-After` header value. */
  retryAfter?: string;
  /** Response body; defaults to OpenRouter's error shape. */
  body?: unknown;
  /** Never answer (the client must time out). */
  hang?: boolean;
}

/** The running stand-in. */
export interface OpenRouterStandIn {
  /** API base URL, e.g. `http://127.0.0.1:40123/api/v1`. */
  baseUrl: string;
  /** The provisioning key the stand-in accepts from the start. */
  provisioningKey: string;
  /** Every provisioning key the stand-in has issued, revoked ones included (for secret checks). */
  issuedProvisioningKeys: string[];
  /** Issues another accepted provisioning key (a rotation in the dashboard) and returns it. */
  issueProvisioningKey(): string;
  /** Stops accepting a provisioning key (401 from then on). */
  revokeProvisioningKey(key: string): void;
  /** Back to accepting only `provisioningKey`. */
  resetProvisioningKeys(): void;
  /** A key the stand-in knows but refuses for management (403), like an ordinary inference key. */
  inferenceOnlyKey: string;
  keys: Map<string, StandInKey>;
  requests: RecordedRequest[];
  faults: Fault[];
  /** Adds a fault; returns the stand-in for chaining. */
  fail(fault: Fault): OpenRouterStandIn;
  /** Seeds a key directly (as if created in the dashboard); returns it. */
  seed(fields: Partial<StandInKey> & { name: string }): StandInKey;
  close(): Promise<void>;
}

/** Page size of GET /keys, as documented ("the most recent 100"). */
const PAGE_SIZE = 100;

function newKeyValue(): string {
  return `sk-or-v1-${randomBytes(32).toString("hex")}`;
}

function publicView(key: StandInKey): Record<string, unknown> {
  const { key: _secret, ...rest } = key;
  const remaining = key.limit === null ? null : Math.max(0, key.limit - (key.limit_reset === "monthly" ? key.usage_monthly : key.usage));
  return { ...rest, limit_remaining: remaining, include_byok_in_limit: false };
}

function errorBody(status: number, message: string): unknown {
  return { error: { code: status, message } };
}

async function readBody(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString("utf8");
  if (text === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return { unparsable: text };
  }
}

/** Starts the stand-in on 127.0.0.1 with a random port. */
export async function startOpenRouterStandIn(options: { pageSize?: number } = {}): Promise<OpenRouterStandIn> {
  const pageSize = options.pageSize ?? PAGE_SIZE;
  const provisioningKey = `sk-or-v1-prov-${randomBytes(16).toString("hex")}`;
  const inferenceOnlyKey = `sk-or-v1-infer-${randomBytes(16).toString("hex")}`;
  const issuedProvisioningKeys = [provisioningKey];
  const acceptedProvisioningKeys = new Set([provisioningKey]);
  const keys = new Map<string, StandInKey>();
  const requests: RecordedRequest[] = [];
  const faults: Fault[] = [];
  const hanging = new Set<ServerResponse>();

  function seed(fields: Partial<StandInKey> & { name: string }): StandInKey {
    const value = fields.key ?? newKeyValue();
    const key: StandInKey = {
      hash: createHash("sha256").update(value).digest("hex"),
      label: `${value.slice(0, 12)}...${value.slice(-4)}`,
      disabled: false,
      limit: null,
      limit_reset: null,
      usage: 0,
      usage_monthly: 0,
      usage_daily: 0,
      created_at: new Date().toISOString(),
      updated_at: null,
      ...fields,
      key: value,
    };
    keys.set(key.hash, key);
    return key;
  }

  function send(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    response.writeHead(status, { "Content-Type": "application/json", ...headers });
    response.end(JSON.stringify(body));
  }

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? "/", "http://stand-in");
    const method = request.method ?? "GET";
    const body = await readBody(request);
    const auth = request.headers.authorization ?? "";
    const authorized = auth.startsWith("Bearer ") && acceptedProvisioningKeys.has(auth.slice("Bearer ".length));
    requests.push({ method, path: url.pathname + url.search, body, authorized });

    const fault = faults.find(
      (f) => f.times > 0 && (f.method === undefined || f.method === method) && (f.pathPrefix === undefined || url.pathname.startsWith(f.pathPrefix)),
    );
    if (fault) {
      fault.times--;
      if (fault.hang) {
        hanging.add(response);
        return;
      }
      const status = fault.status ?? 500;
      send(response, status, fault.body ?? errorBody(status, "Scripted failure"), fault.retryAfter ? { "Retry-After": fault.retryAfter } : {});
      return;
    }

    if (auth === `Bearer ${inferenceOnlyKey}`) {
      send(response, 403, errorBody(403, "Only management keys can perform this operation"));
      return;
    }
    if (!authorized) {
      // Real services sometimes echo what they got; the client must redact it.
      send(response, 401, errorBody(401, `No auth credentials found or invalid key: ${auth.replace(/^Bearer /, "")}`));
      return;
    }

    const base = "/api/v1/keys";
    if (url.pathname === base || url.pathname === `${base}/`) {
      if (method === "GET") {
        const includeDisabled = url.searchParams.get("include_disabled") === "true";
        const offset = Number(url.searchParams.get("offset") ?? "0");
        const all = [...keys.values()].filter((k) => includeDisabled || !k.disabled);
        send(response, 200, { data: all.slice(offset, offset + pageSize).map(publicView) });
        return;
      }
      if (method === "POST") {
        const input = (body ?? {}) as Record<string, unknown>;
        if (typeof input.name !== "string" || input.name === "") {
          send(response, 400, errorBody(400, "name is required"));
          return;
        }
        const created = seed({
          name: input.name,
          limit: typeof input.limit === "number" ? input.limit : null,
          limit_reset: typeof input.limit_reset === "string" ? input.limit_reset : null,
        });
        send(response, 201, { data: publicView(created), key: created.key });
        return;
      }
    }
    const match = /^\/api\/v1\/keys\/([^/]+)$/.exec(url.pathname);
    if (match) {
      const key = keys.get(decodeURIComponent(match[1]));
      if (!key) {
        send(response, 404, errorBody(404, "API key not found"));
        return;
      }
      if (method === "GET") {
        send(response, 200, { data: publicView(key) });
        return;
      }
      if (method === "PATCH") {
        const input = (body ?? {}) as Record<string, unknown>;
        if ("name" in input) key.name = String(input.name);
        if ("limit" in input) key.limit = input.limit === null ? null : Number(input.limit);
        if ("limit_reset" in input) key.limit_reset = input.limit_reset === null ? null : String(input.limit_reset);
        if ("disabled" in input) key.disabled = input.disabled === true;
        key.updated_at = new Date().toISOString();
        send(response, 200, { data: publicView(key) });
        return;
      }
      if (method === "DELETE") {
        keys.delete(key.hash);
        send(response, 200, { deleted: true });
        return;
      }
    }
    send(response, 404, errorBody(404, "Not found"));
  }

  const server: Server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => send(response, 500, errorBody(500, String(error))));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  const standIn: OpenRouterStandIn = {
    baseUrl: `http://127.0.0.1:${port}/api/v1`,
    provisioningKey,
    issuedProvisioningKeys,
    issueProvisioningKey() {
      const key = `sk-or-v1-prov-${randomBytes(16).toString("hex")}`;
      issuedProvisioningKeys.push(key);
      acceptedProvisioningKeys.add(key);
      return key;
    },
    revokeProvisioningKey(key) {
      acceptedProvisioningKeys.delete(key);
    },
    resetProvisioningKeys() {
      acceptedProvisioningKeys.clear();
      acceptedProvisioningKeys.add(provisioningKey);
    },
    inferenceOnlyKey,
    keys,
    requests,
    faults,
    fail(fault) {
      faults.push(fault);
      return standIn;
    },
    seed,
    async close() {
      for (const response of hanging) response.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return standIn;
}
