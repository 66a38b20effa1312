/** The real-engine benchmarks' arithmetic (scripts/lib/benchFigures.ts). */
import { describe, expect, it } from "vitest";
import { changeSummary, countWithin, longestOutage, mebibytes, median, memoryUsageMib, notMeasured, ratioText } from "../scripts/lib/benchFigures";

describe("docker stats sizes", () => {
  it("reads binary and decimal units", () => {
    expect(mebibytes("18.5MiB")).toBe(18.5);
    expect(mebibytes("1.5GiB")).toBe(1536);
    expect(mebibytes("512KiB")).toBe(0.5);
    expect(mebibytes("1048576B")).toBe(1);
    expect(mebibytes("1MB")).toBeCloseTo(1e6 / 1024 ** 2, 6);
  });
  it("takes the used part of a MemUsage cell", () => {
    expect(memoryUsageMib("21.25MiB / 512MiB")).toBe(21.25);
  });
  it("refuses what is not a size", () => {
    expect(() => mebibytes("--")).toThrow('not a docker stats size: "--"');
  });
});

describe("the longest outage of a probe series", () => {
  const series = (pattern: string) => [...pattern].map((c, i) => ({ at: i * 100, ok: c === "+" }));
  it("is none when every probe was answered", () => {
    expect(longestOutage(series("++++"))).toBeUndefined();
  });
  it("runs from the last good probe before it to the first good one after it", () => {
    expect(longestOutage(series("++--+---++"))).toEqual({ from: 400, to: 800, ms: 400, failedProbes: 3 });
  });
  it("is open when the series never recovers", () => {
    expect(longestOutage(series("+-+--"))).toEqual({ from: 200, to: undefined, ms: undefined, failedProbes: 2 });
  });
  it("starts at the first probe when the series starts failing", () => {
    expect(longestOutage(series("--+"))).toEqual({ from: 0, to: 200, ms: 200, failedProbes: 2 });
  });
  it("orders probes by time", () => {
    expect(longestOutage([{ at: 300, ok: true }, { at: 100, ok: false }, { at: 0, ok: true }])).toEqual({ from: 0, to: 300, ms: 300, failedProbes: 1 });
  });
});

describe("small figures", () => {
  it("summarises an engine result by the kinds that happened", () => {
    expect(changeSummary({ created: ["a", "b"], updated: [], replaced: ["c"], deleted: [] })).toBe("2 created, 1 replaced");
    expect(changeSummary({ created: [], updated: [], replaced: [], deleted: [] })).toBe("no changes");
  });
  it("counts times within a closed window", () => {
    expect(countWithin([1, 2, 3, 4, 5], 2, 4)).toBe(3);
  });
  it("takes the median of odd and even lists", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
  });
  it("prints a ratio, or n/a without a denominator", () => {
    expect(ratioText(3, 2)).toBe("1.50");
    expect(ratioText(1, 0)).toBe("n/a");
  });
  it("names the engine's error line as the reason a figure is missing", () => {
    const error = new Error("pulumi up failed:\n  docker:index/container:Container (x):\n    error: network mai-x not found\nmore");
    expect(notMeasured("move", error)).toBe("  move: not measured: error: network mai-x not found");
    expect(notMeasured("memory", new Error("no engine"))).toBe("  memory: not measured: no engine");
    expect(notMeasured("up", new Error("pulumi up failed:\n  1 errored\nerror: invalid configuration:\nclients/x.yaml:7: bad\nerror: x"))).toBe(
      "  up: not measured: error: invalid configuration: clients/x.yaml:7: bad",
    );
  });
});
