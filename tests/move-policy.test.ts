import { describe, expect, it } from "vitest";
import {
  checkMoveFields,
  declaredMoves,
  moveEnvironment,
  moveSteps,
  moveUpdateCommand,
  reviewPlacements,
  type ClientPlacement,
} from "../policy/move";

const at = (slug: string, server: string, extra: Partial<ClientPlacement> = {}): ClientPlacement => ({ slug, server, status: "active", ...extra });

describe("declared moves", () => {
  it("are the clients whose file names a moveFrom other than their server", () => {
    expect(
      declaredMoves([at("acme", "nbg1-b", { moveFrom: "nbg1-a" }), at("beta", "nbg1-a"), at("gamma", "nbg1-b", { moveFrom: "nbg1-a", status: "suspended" })]),
    ).toEqual([
      { slug: "acme", from: "nbg1-a", to: "nbg1-b", suspended: false },
      { slug: "gamma", from: "nbg1-a", to: "nbg1-b", suspended: true },
    ]);
  });

  it("moveFrom must name another known server", () => {
    const problems = checkMoveFields([at("acme", "nbg1-b", { moveFrom: "nbg9" }), at("beta", "nbg1-a", { moveFrom: "nbg1-a" }), at("ok", "nbg1-b", { moveFrom: "nbg1-a" })], ["nbg1-a", "nbg1-b"]);
    expect(problems).toEqual([
      { slug: "acme", message: 'expected one of the stack\'s servers (nbg1-a, nbg1-b), got "nbg9"' },
      { slug: "beta", message: expect.stringContaining('names the server the client is on ("nbg1-a")') },
    ]);
  });
});

describe("reviewing placements between a base and a head", () => {
  it("a changed server with the matching moveFrom is a move with its steps and a downtime warning", () => {
    const review = reviewPlacements([at("acme", "nbg1-a"), at("beta", "nbg1-a")], [at("acme", "nbg1-b", { moveFrom: "nbg1-a" }), at("beta", "nbg1-a")]);
    expect(review.problems).toEqual([]);
    expect(review.moves).toHaveLength(1);
    const [move] = review.moves;
    expect(move).toMatchObject({ slug: "acme", from: "nbg1-a", to: "nbg1-b", suspended: false });
    expect(move.downtime).toMatch(/^DOWNTIME: acme is offline from the stop on nbg1-a until DNS answers with nbg1-b/);
    // The order that makes a move safe (and the real engine keeps, tests/move.engine.test.ts): the
    // target's volume, stop, transfer, network and start there, DNS, then the target's proxy route.
    const step = (pattern: RegExp) => move.steps.findIndex((s) => pattern.test(s));
    const order = [
      step(/^create volume mai-acme-data on nbg1-b \(empty\)$/),
      step(/^stop mai-acme on nbg1-a/),
      step(/mai-export acme -/),
      step(/^create network mai-acme on nbg1-b; remove the stopped mai-acme from nbg1-a and start it on nbg1-b, then point its DNS records at nbg1-b/),
      step(/^reload Caddy on nbg1-b with the client's route/),
      step(/^remove network mai-acme from nbg1-a/),
    ];
    expect(order).toEqual([0, 1, 2, 4, 5, 6]);
    expect(move.steps.join("\n")).toContain("volume mai-acme-data stays on nbg1-a (retained)");
    expect(move.steps.at(-1)).toContain("started again on nbg1-a");
  });

  it("a changed server without moveFrom, or with the wrong one, is a problem that names the fix", () => {
    const review = reviewPlacements([at("acme", "nbg1-a"), at("beta", "nbg1-a")], [at("acme", "nbg1-b"), at("beta", "nbg1-b", { moveFrom: "nbg1-c" })]);
    expect(review.moves).toEqual([]);
    expect(review.problems).toEqual([
      expect.stringMatching(/^client "acme" changes server from nbg1-a to nbg1-b without `moveFrom: nbg1-a`: .*empty workspace on nbg1-b.*Add `moveFrom: nbg1-a`/),
      expect.stringMatching(/^client "beta" has moveFrom: nbg1-c, but it runs on nbg1-a: set `moveFrom: nbg1-a`/),
    ]);
  });

  it("a moveFrom left after the move is a note, and unchanged or new clients are not moves", () => {
    const review = reviewPlacements([at("acme", "nbg1-b")], [at("acme", "nbg1-b", { moveFrom: "nbg1-a" }), at("newco", "nbg1-b")]);
    expect(review).toEqual({ moves: [], problems: [], notes: [expect.stringContaining('client "acme": moveFrom: nbg1-a is left from a finished move')] });
  });

  it("a suspended client moves its volume only, without downtime", () => {
    const [move] = reviewPlacements([at("acme", "nbg1-a", { status: "suspended" })], [at("acme", "nbg1-b", { moveFrom: "nbg1-a", status: "suspended" })]).moves;
    expect(move.downtime).toBe("acme is suspended: the move causes no further downtime");
    expect(moveSteps(move).join("\n")).not.toContain("start mai-acme");
  });
});

describe("the move command's inputs", () => {
  it("name both ends, and an update never moves again", () => {
    const move = { slug: "acme", from: "nbg1-a", to: "nbg1-b", suspended: false };
    const env = moveEnvironment(
      move,
      { name: "nbg1-a", shell: "ssh root@203.0.113.7", binDir: "/usr/local/sbin", stateDir: "/var/lib/mai" },
      { name: "nbg1-b", shell: "ssh root@203.0.113.8", binDir: "/usr/local/sbin", stateDir: "/var/lib/mai" },
    );
    expect(env).toMatchObject({ MAI_MOVE_SLUG: "acme", MAI_SOURCE_SHELL: "ssh root@203.0.113.7", MAI_TARGET_SHELL: "ssh root@203.0.113.8", MAI_MOVE_SUSPENDED: "no" });
    expect(moveUpdateCommand(move)).not.toMatch(/mai-(export|import|move)/);
  });
});
