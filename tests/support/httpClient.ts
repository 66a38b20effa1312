/**
 * HTTP clients for the proxy tests and the benchmark: one request over HTTPS (SNI + Host of a
 * site, trusting a given CA), chunk timings of a streamed response, and a bounded load generator.
 */
import http from "node:http";
import http2 from "node:http2";
import https from "node:https";
import { performance } from "node:perf_hooks";
import type { Readable } from "node:stream";

/** Where a request goes: a loopback port, the site's hostname, and how to trust its certificate. */
export interface Target {
  /** Port on 127.0.0.1. */
  port: number;
  /** Site hostname (SNI and Host header). */
  hostname: string;
  /** CA that signed the site certificate; undefined for plain HTTP. */
  ca?: Buffer;
  /** Connection reuse; default: a fresh connection per request. */
  agent?: http.Agent;
}

/** What came back. */
export interface Reply {
  /** HTTP status code. */
  status: number;
  /** Response headers. */
  headers: http.IncomingHttpHeaders;
  /** Response body as text. */
  body: string;
}

/** Extra request settings. */
export interface RequestSettings {
  /** HTTP method; default GET. */
  method?: string;
  /** Request headers. */
  headers?: Record<string, string | number>;
  /** Request body producer, streamed. */
  body?: Readable;
  /** Abort after this many milliseconds; default 10 s. */
  timeoutMs?: number;
  /** Send `Expect: 100-continue` and the body only when the server asks for it. */
  expectContinue?: boolean;
}

/** Sends one request (HTTPS when the target has a CA) and reads the whole answer. */
export function request(target: Target, path: string, settings: RequestSettings = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const options: https.RequestOptions = {
      host: "127.0.0.1",
      port: target.port,
      path,
      method: settings.method ?? "GET",
      headers: { Host: target.hostname, ...settings.headers },
      agent: target.agent ?? false,
      timeout: settings.timeoutMs ?? 10_000,
    };
    const onResponse = (response: http.IncomingMessage): void => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () =>
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body: Buffer.concat(chunks).toString("utf8"),
        }),
      );
      response.on("error", reject);
    };
    const outgoing = target.ca
      ? https.request({ ...options, servername: target.hostname, ca: target.ca }, onResponse)
      : http.request(options, onResponse);
    outgoing.on("timeout", () => outgoing.destroy(new Error(`request to ${target.hostname}${path} timed out`)));
    outgoing.on("error", (error: Error) => {
      // Lets callers apply the browsers' rule: a request that failed on a reused keep-alive
      // connection the server had just closed as idle is retried (RFC 9112, section 9.3.1).
      if (outgoing.reusedSocket) Object.assign(error, { reusedSocket: true });
      reject(error);
    });
    if (!settings.body) outgoing.end();
    else if (settings.expectContinue) {
      // The body goes out only once the server asked for it; an early answer (413) skips it.
      outgoing.setHeader("Expect", "100-continue");
      const body = settings.body;
      outgoing.on("continue", () => body.pipe(outgoing));
      outgoing.flushHeaders();
    } else settings.body.pipe(outgoing);
  });
}

/** Whether a request failed only because a reused idle keep-alive connection was closed under it. */
export function isStaleConnectionError(error: unknown): boolean {
  const failed = error as { reusedSocket?: boolean; code?: string };
  return failed?.reusedSocket === true && failed.code === "ECONNRESET";
}

/**
 * HTTP/2 client with one shared session per target, reconnecting the way browsers do: a request
 * the server refused unprocessed (GOAWAY during a graceful shutdown, REFUSED_STREAM) is retried on
 * a new connection (RFC 9113, section 8.7).
 */
export class Http2Client {
  private session: http2.ClientHttp2Session | undefined;
  private sessionGoingAway = false;
  /** Requests retried because the server refused them unprocessed. */
  retried = 0;

  constructor(private readonly target: Target) {}

  /** GET `path`, retrying refused requests up to 3 times. */
  async get(path: string): Promise<Reply> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.once(path);
      } catch (error) {
        if (!(error as { refused?: boolean }).refused || attempt >= 3) throw error;
        this.retried++;
      }
    }
  }

  /** Closes the shared session. */
  close(): void {
    this.session?.close();
    this.session = undefined;
  }

  private current(): { session: http2.ClientHttp2Session; goingAway: () => boolean } {
    if (!this.session || this.session.closed || this.session.destroyed || this.sessionGoingAway) {
      const session = http2.connect(`https://127.0.0.1:${this.target.port}`, {
        servername: this.target.hostname,
        ca: this.target.ca,
      });
      let goingAway = false;
      session.on("goaway", () => {
        goingAway = true;
        if (this.session === session) this.sessionGoingAway = true;
      });
      session.on("error", () => undefined);
      session.on("close", () => {
        if (this.session === session) this.session = undefined;
      });
      this.session = session;
      this.sessionGoingAway = false;
      return { session, goingAway: () => goingAway };
    }
    const session = this.session;
    return { session, goingAway: () => this.sessionGoingAway };
  }

  private once(path: string): Promise<Reply> {
    const { session, goingAway } = this.current();
    return new Promise((resolve, reject) => {
      let responded = false;
      const refusedOr = (error: Error): Error =>
        !responded && (goingAway() || stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM)
          ? Object.assign(error, { refused: true })
          : error;
      const stream = session.request({ ":path": path, ":authority": this.target.hostname });
      const chunks: Buffer[] = [];
      let status = 0;
      let headers: http.IncomingHttpHeaders = {};
      stream.on("response", (received) => {
        responded = true;
        status = Number(received[":status"]);
        headers = received;
      });
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("end", () => resolve({ status, headers, body: Buffer.concat(chunks).toString("utf8") }));
      stream.on("error", (error) => reject(refusedOr(error)));
      stream.on("close", () => {
        if (!responded) reject(refusedOr(new Error(`stream closed without a response (code ${stream.rstCode})`)));
      });
      stream.end();
    });
  }
}

/** Arrival times of a streamed response's chunks. */
export interface StreamTimings {
  /** HTTP status code. */
  status: number;
  /** Response headers. */
  headers: http.IncomingHttpHeaders;
  /** Milliseconds from sending the request to the first body bytes. */
  firstChunkMs: number;
  /** Milliseconds from sending the request to the end of the body. */
  totalMs: number;
  /** Milliseconds at which each body chunk arrived. */
  arrivalsMs: number[];
  /** Whole body (decompressed is not attempted: ask for identity to read it). */
  body: Buffer;
}

/** Requests a streamed response and records when each piece of it arrives. */
export function timeStream(
  target: Target,
  path: string,
  headers: Record<string, string> = {},
  /** Called once, when the first chunk of the body arrives (the stream is established). */
  onFirstChunk?: () => void,
): Promise<StreamTimings> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const arrivalsMs: number[] = [];
    const chunks: Buffer[] = [];
    const options: https.RequestOptions = {
      host: "127.0.0.1",
      port: target.port,
      path,
      headers: { Host: target.hostname, ...headers },
      agent: target.agent ?? false,
      timeout: 15_000,
    };
    const onResponse = (response: http.IncomingMessage): void => {
      response.on("data", (chunk: Buffer) => {
        if (arrivalsMs.length === 0) onFirstChunk?.();
        arrivalsMs.push(performance.now() - started);
        chunks.push(chunk);
      });
      response.on("end", () =>
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          firstChunkMs: arrivalsMs[0] ?? Number.NaN,
          totalMs: performance.now() - started,
          arrivalsMs,
          body: Buffer.concat(chunks),
        }),
      );
      response.on("error", reject);
    };
    const outgoing = target.ca
      ? https.request({ ...options, servername: target.hostname, ca: target.ca }, onResponse)
      : http.request(options, onResponse);
    outgoing.on("timeout", () => outgoing.destroy(new Error("stream timed out")));
    outgoing.on("error", reject);
    outgoing.end();
  });
}

/** Outcome of a load run. */
export interface LoadResult {
  /** Requests answered with the expected status and body. */
  ok: number;
  /** Requests that failed (error or unexpected answer). */
  failed: number;
  /** Up to 10 distinct failure descriptions. */
  failures: string[];
  /** Latency of every successful request, milliseconds. */
  latenciesMs: number[];
  /** Wall time of the run, milliseconds. */
  elapsedMs: number;
}

/** Bounds and shape of a load run. */
export interface LoadPlan {
  /** Requests in flight at once. */
  concurrency: number;
  /** Stop issuing new requests after this many (bounded in count)... */
  maxRequests: number;
  /** ...or after this many milliseconds (bounded in time). */
  maxDurationMs: number;
  /** Optional early stop signal, checked before each request. */
  stop?: () => boolean;
}

/**
 * Runs `send` with bounded concurrency, count and time. `send` resolves with an error message for
 * a wrong answer or undefined for a good one; a rejection counts as a failure too.
 */
export async function runLoad(plan: LoadPlan, send: (index: number) => Promise<string | undefined>): Promise<LoadResult> {
  const result: LoadResult = { ok: 0, failed: 0, failures: [], latenciesMs: [], elapsedMs: 0 };
  const started = performance.now();
  let issued = 0;
  const note = (failure: string): void => {
    result.failed++;
    if (result.failures.length < 10 && !result.failures.includes(failure)) result.failures.push(failure);
  };
  const worker = async (): Promise<void> => {
    while (issued < plan.maxRequests && performance.now() - started < plan.maxDurationMs && !plan.stop?.()) {
      const index = issued++;
      const sent = performance.now();
      try {
        const failure = await send(index);
        if (failure === undefined) {
          result.ok++;
          result.latenciesMs.push(performance.now() - sent);
        } else note(failure);
      } catch (error) {
        note(describeError(error));
      }
    }
  };
  await Promise.all(Array.from({ length: plan.concurrency }, worker));
  result.elapsedMs = performance.now() - started;
  return result;
}

function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as NodeJS.ErrnoException).code ?? "";
  const reused = (error as { reusedSocket?: boolean }).reusedSocket ? " (reused connection)" : " (new connection)";
  return `${code} ${error.message}${reused}`.trim();
}

/** The q-th percentile (0..100) of a list of numbers, nearest-rank. */
export function percentile(values: number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((q / 100) * sorted.length) - 1));
  return sorted[rank];
}
