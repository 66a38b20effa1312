/**
 * Reading what `wrk --latency` prints (Debian's wrk 4.1): throughput, the latency percentiles
 * and the error counts. Pure, so the parser is tested against a real report.
 */

/** The figures of one wrk run. */
export interface WrkReport {
  /** Requests completed, all statuses. */
  requests: number;
  /** Requests per second over the run. */
  requestsPerSecond: number;
  /** Latency percentiles in milliseconds, keyed by percentile (50, 75, 90, 99). */
  latencyMs: Record<number, number>;
  /** Answers with a status outside 2xx/3xx. */
  non2xx: number;
  /** Socket errors: connect, read, write, timeout added up. */
  socketErrors: number;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

/** Parses a wrk report; throws naming what is missing when the text is not one. */
export function parseWrkReport(text: string): WrkReport {
  const latencyMs: Record<number, number> = {};
  const distribution = text.split(/Latency Distribution/)[1] ?? "";
  for (const match of distribution.matchAll(/^\s*(\d+(?:\.\d+)?)%\s+(\d+(?:\.\d+)?)(us|ms|s|m)\s*$/gm)) {
    latencyMs[Number(match[1])] = Number(match[2]) * UNIT_MS[match[3]];
  }
  const requests = /^\s*(\d+) requests in /m.exec(text);
  const rate = /^Requests\/sec:\s+([\d.]+)/m.exec(text);
  const missing = [
    ...(requests ? [] : ["the request count"]),
    ...(rate ? [] : ["Requests/sec"]),
    ...(latencyMs[50] === undefined || latencyMs[99] === undefined ? ["the latency distribution (run wrk with --latency)"] : []),
  ];
  if (missing.length > 0) throw new Error(`not a wrk report: no ${missing.join(", no ")} in:\n${text.trim().slice(0, 600)}`);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  return {
    requests: Number(requests![1]),
    requestsPerSecond: Number(rate![1]),
    latencyMs,
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0),
    socketErrors: socket ? socket.slice(1).reduce((sum, count) => sum + Number(count), 0) : 0,
  };
}
