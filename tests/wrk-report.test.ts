/**
 * Reading wrk's report (scripts/lib/wrk.ts), on reports wrk 4.1 printed here: a clean run, one
 * with non-2xx answers, one with socket errors, and a run that never connected.
 */
import { describe, expect, it } from "vitest";
import { parseWrkReport } from "../scripts/lib/wrk";

const CLEAN = `Running 10s test @ https://standin.mai.test:40123/health
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    44.28ms    1.95ms  58.57ms   97.49%
    Req/Sec    90.40      9.87   101.00     83.50%
  Latency Distribution
     50%   44.01ms
     75%   44.07ms
     90%   44.54ms
     99%   48.39ms
  1807 requests in 10.03s, 329.95KB read
Requests/sec:    180.10
Transfer/sec:     32.88KB
`;

const NOT_FOUND = `Running 1s test @ http://127.0.0.1:18932/nope
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   618.20us    2.12ms  24.73ms   94.84%
    Req/Sec    17.29k     4.85k   23.17k    40.00%
  Latency Distribution
     50%   82.00us
     75%  138.00us
     90%    1.38ms
     99%   13.23ms
  17371 requests in 1.02s, 2.82MB read
  Non-2xx or 3xx responses: 17371
Requests/sec:  17054.80
Transfer/sec:      2.77MB
`;

const SOCKET_ERRORS = `Running 2s test @ http://127.0.0.1:18950/
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   274.31us  840.07us  11.30ms   92.67%
    Req/Sec     7.63k     4.50k   13.77k    66.67%
  Latency Distribution
     50%   52.00us
     75%   83.00us
     90%  421.00us
     99%    4.01s
  9459 requests in 2.01s, 369.49KB read
  Socket errors: connect 0, read 20690, write 0, timeout 3
Requests/sec:   4708.10
Transfer/sec:    183.91KB
`;

describe("parseWrkReport", () => {
  it("reads throughput, the request count and the latency percentiles in milliseconds", () => {
    expect(parseWrkReport(CLEAN)).toEqual({
      requests: 1807,
      requestsPerSecond: 180.1,
      latencyMs: { 50: 44.01, 75: 44.07, 90: 44.54, 99: 48.39 },
      non2xx: 0,
      socketErrors: 0,
    });
  });

  it("converts microseconds and seconds, and counts non-2xx answers and socket errors", () => {
    const notFound = parseWrkReport(NOT_FOUND);
    expect(notFound.latencyMs[50]).toBeCloseTo(0.082, 6);
    expect(notFound.latencyMs[90]).toBe(1.38);
    expect(notFound.non2xx).toBe(17371);
    const errors = parseWrkReport(SOCKET_ERRORS);
    expect(errors.latencyMs[99]).toBe(4010);
    expect(errors.socketErrors).toBe(20693);
  });

  it("says what is missing when the text is no report", () => {
    expect(() => parseWrkReport("unable to connect to 127.0.0.1:59345 Connection refused\n")).toThrow(
      /not a wrk report: no the request count, no Requests\/sec, no the latency distribution \(run wrk with --latency\) in:\nunable to connect/,
    );
    const withoutLatency = CLEAN.replace(/ {2}Latency Distribution[\s\S]*?(?= {2}1807)/, "");
    expect(() => parseWrkReport(withoutLatency)).toThrow(/no the latency distribution/);
  });
});
