/**
 * A client's SQLite database as the host-script tests use it: statements through the real sqlite3,
 * and a process that keeps writing to it while a script copies it.
 */
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";

/** Runs statements with the real sqlite3 (no ~/.sqliterc, stop at the first error); returns its output. */
export function sql(db: string, statements: string): string {
  const r = spawnSync("sqlite3", ["-init", "/dev/null", "-bail", "-cmd", ".timeout 20000", db, statements], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`sqlite3 ${db}: ${r.stderr}`);
  return r.stdout.trim();
}

/** A running row-pair writer (see `startRowPairWriter`). */
export interface RowPairWriter {
  /** The highest id in table b now. */
  rowsNow(): number;
  /** Waits (up to about 5 s) until table b holds an id of at least `atLeast`. */
  waitForRows(atLeast: number): Promise<void>;
  /** Asks the writer to stop; resolves with its exit code. */
  stop(): Promise<number | null>;
}

/** What `startRowPairWriter` writes to. */
export interface RowPairWriterOptions {
  /** The database: tables a(id, payload) and b(id) with ids up to 20000 already. */
  db: string;
  /** The writer's environment. */
  env: NodeJS.ProcessEnv;
  /** A file that does not exist yet: the writer stops once it does. */
  stopFile: string;
  /** Random bytes in each row of a. */
  payloadBytes: number;
}

/**
 * Starts a process that writes one transaction per row pair (the next id into a and into b) from
 * id 20001 on, until stopped: a snapshot that is not a clean prefix shows as a gap or as a and b
 * disagreeing.
 */
export function startRowPairWriter(options: RowPairWriterOptions): RowPairWriter {
  const { db, env, stopFile, payloadBytes } = options;
  const writer = spawn(
    "bash",
    [
      "-c",
      `i=20000
       while [[ ! -e "$STOP" ]]; do
         i=$((i + 1))
         sqlite3 -init /dev/null -bail -cmd ".timeout 20000" "$DB" \
           "BEGIN IMMEDIATE; INSERT INTO a VALUES($i, randomblob(${payloadBytes})); INSERT INTO b VALUES($i); COMMIT;" >/dev/null || exit 1
       done`,
    ],
    { env: { ...env, DB: db, STOP: stopFile }, stdio: "ignore" },
  );
  const done = new Promise<number | null>((resolve) => writer.on("exit", resolve));
  const rowsNow = () => Number(sql(db, "SELECT max(id) FROM b;"));
  return {
    rowsNow,
    async waitForRows(atLeast) {
      for (let i = 0; i < 500 && rowsNow() < atLeast; i++) await new Promise((r) => setTimeout(r, 10));
    },
    stop() {
      fs.writeFileSync(stopFile, "");
      return done;
    },
  };
}
