/**
 * Configuration problems as data: every loader collects `ConfigIssue`s instead of throwing on the
 * first one, so the user sees all mistakes at once, each naming file, line and field.
 */

/** One problem found in a configuration file. */
export interface ConfigIssue {
  /** Path of the file the problem is in, as given to the loader (e.g. `clients/acme.yaml`). */
  file: string;
  /** 1-based line of the offending field, when it can be located. */
  line?: number;
  /** Field path inside the file (`resources.memory`, `sshPublicKeys[1]`); empty for the whole file. */
  path: string;
  /** What is wrong and what is expected; never contains a secret value. */
  message: string;
}

/** `clients/acme.yaml:3: port: expected an integer from 1024 to 65535, got 80` */
export function formatIssue(issue: ConfigIssue): string {
  const location = issue.line === undefined ? issue.file : `${issue.file}:${issue.line}`;
  const parts = [location, issue.path, oneLine(issue.message)].filter((part) => part !== "");
  // Defence in depth: no line printed for a user ever carries a raw control or bidi character.
  return escapeInvisible(parts.join(": "));
}

/** Thrown when configuration is invalid; carries every issue found, not just the first. */
export class ConfigError extends Error {
  readonly issues: ConfigIssue[];

  constructor(issues: ConfigIssue[]) {
    // The message is for people: long lists per file are shortened; `issues` keeps them all.
    super(capIssuesPerFile(issues).map(formatIssue).join("\n"));
    this.name = "ConfigError";
    this.issues = issues;
  }
}

/** Orders issues by file, then line, keeping the discovery order otherwise (stable sort). */
export function sortIssues(issues: ConfigIssue[]): ConfigIssue[] {
  return [...issues].sort((a, b) => {
    if (a.file !== b.file) return a.file < b.file ? -1 : 1;
    return (a.line ?? 0) - (b.line ?? 0);
  });
}

/** Problems listed per file; a pasted wrong document would otherwise flood the output. */
export const MAX_ISSUES_PER_FILE = 25;

/** Keeps the first `MAX_ISSUES_PER_FILE` issues of each file and says how many were left out. */
export function capIssuesPerFile(issues: ConfigIssue[]): ConfigIssue[] {
  const counts = new Map<string, number>();
  for (const found of issues) counts.set(found.file, (counts.get(found.file) ?? 0) + 1);
  const shown = new Map<string, number>();
  const result: ConfigIssue[] = [];
  for (const found of issues) {
    const count = shown.get(found.file) ?? 0;
    shown.set(found.file, count + 1);
    if (count < MAX_ISSUES_PER_FILE) result.push(found);
    const total = counts.get(found.file)!;
    if (count === total - 1 && total > MAX_ISSUES_PER_FILE) {
      result.push({ file: found.file, path: "", message: `${total - MAX_ISSUES_PER_FILE} more problems in this file not shown` });
    }
  }
  return result;
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, " ").trim();
}

const SECRET_VALUE_PATTERNS: ReadonlyArray<[RegExp, string]> = [
  [/^sk-or-/, "an OpenRouter API key"],
  [/^sk-ant-/, "an Anthropic API key"],
  [/^sk-[A-Za-z0-9_-]{16,}/, "an API key (sk-...)"],
  [/^(sk|rk)_(live|test)_/, "a Stripe key"],
  [/-----BEGIN [A-Z0-9 ]*(PRIVATE KEY|CERTIFICATE|PGP)/, "a PEM private key or certificate"],
  [/^(ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}/, "a GitHub token"],
  [/^github_pat_/, "a GitHub token"],
  [/^glpat-/, "a GitLab token"],
  [/^xox[abeoprs]-/, "a Slack token"],
  [/^(AKIA|ASIA)[0-9A-Z]{16}$/, "an AWS access key id"],
  [/^AIza[0-9A-Za-z_-]{30,}$/, "a Google API key"],
  [/^eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\./, "a JSON Web Token"],
  [/^[a-z][a-z0-9+.-]*:\/\/[^/\s:@]+:[^/\s@]+@/i, "a URL with an embedded password"],
];

/**
 * Names what kind of secret `value` looks like, or undefined when it looks harmless.
 * Deliberately conservative on the value side: it only matches well-known key formats.
 */
export function secretKind(value: string): string | undefined {
  const trimmed = value.trim();
  for (const [pattern, kind] of SECRET_VALUE_PATTERNS) {
    if (pattern.test(trimmed)) return kind;
  }
  return undefined;
}

/**
 * Characters that show as nothing or move other text when printed: C0 and C1 controls, format
 * characters (bidirectional overrides and isolates, zero-width characters, the byte order mark,
 * the soft hyphen), line and paragraph separators, private-use code points and unpaired surrogates.
 */
const INVISIBLE_CHARACTER = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Zl}\p{Zp}]/u;

const CHARACTER_NAMES: Readonly<Record<number, string>> = {
  0x0085: "NEXT LINE",
  0x00ad: "SOFT HYPHEN",
  0x061c: "ARABIC LETTER MARK",
  0x200b: "ZERO WIDTH SPACE",
  0x200c: "ZERO WIDTH NON-JOINER",
  0x200d: "ZERO WIDTH JOINER",
  0x200e: "LEFT-TO-RIGHT MARK",
  0x200f: "RIGHT-TO-LEFT MARK",
  0x2028: "LINE SEPARATOR",
  0x2029: "PARAGRAPH SEPARATOR",
  0x202a: "LEFT-TO-RIGHT EMBEDDING",
  0x202b: "RIGHT-TO-LEFT EMBEDDING",
  0x202c: "POP DIRECTIONAL FORMATTING",
  0x202d: "LEFT-TO-RIGHT OVERRIDE",
  0x202e: "RIGHT-TO-LEFT OVERRIDE",
  0x2060: "WORD JOINER",
  0x2066: "LEFT-TO-RIGHT ISOLATE",
  0x2067: "RIGHT-TO-LEFT ISOLATE",
  0x2068: "FIRST STRONG ISOLATE",
  0x2069: "POP DIRECTIONAL ISOLATE",
  0xfeff: "BYTE ORDER MARK",
};

/** `U+202E (RIGHT-TO-LEFT OVERRIDE)`, or just `U+0007` for a character without a listed name. */
export function describeCodePoint(codePoint: number): string {
  const hex = `U+${codePoint.toString(16).toUpperCase().padStart(4, "0")}`;
  const name = CHARACTER_NAMES[codePoint];
  return name === undefined ? hex : `${hex} (${name})`;
}

/** The first invisible or control character of `value` (see INVISIBLE_CHARACTER), with its 1-based position. */
export function firstInvisibleCharacter(value: string): { position: number; codePoint: number } | undefined {
  let position = 0;
  for (const character of value) {
    position++;
    if (INVISIBLE_CHARACTER.test(character)) return { position, codePoint: character.codePointAt(0)! };
  }
  return undefined;
}

/** `text` with every invisible or control character written as a `\uXXXX` escape, so messages show it. */
export function escapeInvisible(text: string): string {
  let result = "";
  for (const character of text) {
    if (!INVISIBLE_CHARACTER.test(character)) {
      result += character;
      continue;
    }
    const codePoint = character.codePointAt(0)!;
    result += codePoint > 0xffff ? `\\u{${codePoint.toString(16)}}` : `\\u${codePoint.toString(16).padStart(4, "0")}`;
  }
  return result;
}

/**
 * Describes a user-supplied value for a message ("80", `"http://x"`, "a list"), short and
 * never revealing anything that looks like a secret. Invisible characters are escaped: a
 * message never prints a control or bidirectional character raw.
 */
export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "an empty value";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  if (typeof value === "string") {
    if (value === "") return "an empty string";
    if (secretKind(value) !== undefined) return "a value that looks like a secret (not shown)";
    const shown = value.length > 60 ? `${value.slice(0, 57)}...` : value;
    return escapeInvisible(JSON.stringify(shown));
  }
  return String(value);
}

/** Edit distance counting a swap of neighbours as one edit (optimal string alignment); small inputs only. */
function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, rows[i - 2][j - 2] + 1);
      rows[i][j] = best;
    }
  }
  return rows[a.length][b.length];
}

/** The candidate closest to `word` (case-insensitive), if it is close enough to be a likely typo. */
export function closestMatch(word: string, candidates: readonly string[]): string | undefined {
  const lower = word.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(lower, candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  if (best === undefined || word.length > 64) return undefined;
  const tolerance = Math.max(1, Math.floor(Math.max(word.length, best.length) / 3));
  return bestDistance <= tolerance ? best : undefined;
}

/** "unknown field "prot"; did you mean "port"? Allowed: name, port, ..." */
export function unknownKeyMessage(key: string, allowed: readonly string[]): string {
  const suggestion = closestMatch(key, allowed);
  const hint = suggestion === undefined ? "" : `; did you mean "${suggestion}"?`;
  return `unknown field ${describeValue(key)}${hint} (allowed: ${allowed.join(", ")})`;
}
