/**
 * Safe YAML reading for configuration files. Files come from people (and may come from someone
 * hostile), so every step has a bound: a size cap, a cheap linear pre-scan that refuses pathological
 * nesting before the parser sees it, our own O(n) duplicate-key check (the library's is quadratic),
 * no collection keys (their stringification is exponential), a nesting limit and an alias budget.
 * Every problem comes back as a `ConfigIssue` with a line number; nothing throws.
 */
import * as fs from "fs";
import {
  Alias,
  LineCounter,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  parseDocument,
  type Document,
  type Node as YamlNode,
  type Pair,
  type YAMLMap,
} from "yaml";
import { type ConfigIssue, describeValue } from "./configIssues";

/** Largest configuration file accepted, in bytes. A client file is a few hundred bytes. */
export const MAX_YAML_BYTES = 64 * 1024;
/** Deepest nesting of mappings/lists accepted (a client file needs 3). */
export const MAX_YAML_DEPTH = 32;
/** Alias budget handed to the YAML library (billion-laughs protection). */
export const MAX_YAML_ALIASES = 20;
/** Block indicators (`- `, `? `, `: `) accepted at the start of one line. */
const MAX_INDICATORS_PER_LINE = 8;
/** YAML errors reported per file; a broken file can produce hundreds of follow-up errors. */
const MAX_REPORTED_ERRORS = 10;

/** A field path: mapping keys and list indexes. */
export type FieldPath = ReadonlyArray<string | number>;

/** `["resources", "reservations", "memory"]` -> `resources.reservations.memory`; indexes as `[1]`. */
export function formatPath(path: FieldPath): string {
  let text = "";
  for (const segment of path) {
    if (typeof segment === "number") text += `[${segment}]`;
    else text += text === "" ? segment : `.${segment}`;
  }
  return text;
}

/** A parsed YAML document whose top level is a mapping. */
export interface YamlMapping {
  /** The document as plain data. */
  value: Record<string, unknown>;
  /**
   * 1-based line of the field at `path`. For a path that does not exist (a missing field) it is
   * the line of its deepest existing parent field; undefined when that parent is the document.
   */
  lineOf(path: FieldPath): number | undefined;
}

/** Options for `parseYamlMapping`. */
export interface YamlParseOptions {
  /** Real size of the file in bytes when `text` was truncated while reading. */
  sizeBytes?: number;
  /** Message for an empty document; when absent an empty document is an empty mapping. */
  emptyMessage?: string;
  /** What the top-level mapping holds, for the "expected a mapping" message. */
  expected?: string;
}

/** Result of `parseYamlMapping`: the mapping, or every issue that prevented reading it. */
export type YamlParseResult = { ok: true; mapping: YamlMapping } | { ok: false; issues: ConfigIssue[] };

/** Parses `text` (the content of `file`) into a mapping, refusing hostile or malformed input. */
export function parseYamlMapping(file: string, text: string, options: YamlParseOptions = {}): YamlParseResult {
  const fail = (message: string, line?: number, path = ""): YamlParseResult => ({
    ok: false,
    issues: [{ file, line, path, message }],
  });

  const sizeBytes = options.sizeBytes ?? Buffer.byteLength(text, "utf8");
  if (sizeBytes > MAX_YAML_BYTES) {
    return fail(`file is ${formatBytes(sizeBytes)}; configuration files are limited to ${formatBytes(MAX_YAML_BYTES)}`);
  }
  if (text.includes("\u0000")) return fail("file contains NUL bytes; expected a UTF-8 text file");

  const structure = prescan(text);
  if (structure !== undefined) return fail(structure.message, structure.line);

  const lineCounter = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter,
    prettyErrors: false,
    uniqueKeys: false, // checked below in linear time
    strict: true,
    version: "1.2",
    schema: "core",
  });
  const lineAt = (offset: number | undefined): number | undefined =>
    offset === undefined ? undefined : lineCounter.linePos(offset).line;

  const problems = [...doc.errors, ...doc.warnings];
  if (problems.length > 0) {
    const issues: ConfigIssue[] = problems.slice(0, MAX_REPORTED_ERRORS).map((problem) => ({
      file,
      line: lineAt(problem.pos[0]),
      path: "",
      message: yamlProblemMessage(problem.code, problem.message),
    }));
    if (problems.length > MAX_REPORTED_ERRORS) {
      issues.push({ file, path: "", message: `${problems.length - MAX_REPORTED_ERRORS} more YAML errors not shown` });
    }
    return { ok: false, issues };
  }

  const structureIssues = checkTree(doc, file, lineAt);
  if (structureIssues.length > 0) return { ok: false, issues: structureIssues };

  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: MAX_YAML_ALIASES });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (/alias/i.test(message)) {
      return fail(`too many aliases (*name); expand them, at most ${MAX_YAML_ALIASES} alias uses are allowed`);
    }
    return fail(`cannot read the YAML document: ${message}`);
  }

  if (value === null || value === undefined) {
    if (options.emptyMessage !== undefined) return fail(options.emptyMessage);
    value = {};
  }
  if (typeof value !== "object" || Array.isArray(value)) {
    const expected = options.expected ?? "fields";
    // The whole document is the offending value here: say what it is, never what it says (the
    // file may not be a client file at all).
    const got = typeof value === "string" ? `a single line of text (${value.length} characters, not shown)` : describeValue(value);
    return fail(`expected a mapping of ${expected} (key: value lines), got ${got}`, lineAt(doc.contents?.range?.[0]));
  }

  return {
    ok: true,
    mapping: {
      value: value as Record<string, unknown>,
      lineOf: (path) => lineOfPath(doc, path, lineAt),
    },
  };
}

/** Reads a file for `parseYamlMapping`, never more than the size cap (plus one byte to notice). */
export function readYamlFile(path: string): { text: string; sizeBytes: number } {
  // O_NOFOLLOW: a link is refused by the kernel, not followed (the caller names it).
  const handle = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    const stat = fs.fstatSync(handle);
    if (!stat.isFile()) throw Object.assign(new Error(`${path} is not a regular file`), { code: "ENOTREG" });
    const sizeBytes = stat.size;
    const buffer = Buffer.alloc(Math.min(sizeBytes, MAX_YAML_BYTES) + 1);
    let read = 0;
    while (read < buffer.length) {
      const n = fs.readSync(handle, buffer, read, buffer.length - read, read);
      if (n === 0) break;
      read += n;
    }
    return { text: buffer.subarray(0, read).toString("utf8"), sizeBytes };
  } finally {
    fs.closeSync(handle);
  }
}

function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${Math.round(bytes / 1024)} KiB`;
  return `${bytes} bytes`;
}

/**
 * Linear scan for shapes that make YAML parsers recurse deeply: long runs of flow brackets and
 * many block indicators on one line. Generous for real files, fatal for `[[[[…` and `- - - …`.
 */
function prescan(text: string): { message: string; line: number } | undefined {
  let line = 1;
  let flowDepth = 0;
  let atLineStart = true;
  let indicators = 0;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (char === "\n") {
      line++;
      atLineStart = true;
      indicators = 0;
      continue;
    }
    if (char === "[" || char === "{") {
      flowDepth++;
      if (flowDepth > MAX_YAML_DEPTH) {
        return { line, message: `nested too deeply (more than ${MAX_YAML_DEPTH} open brackets)` };
      }
    } else if (char === "]" || char === "}") {
      flowDepth = Math.max(0, flowDepth - 1);
    }
    if (atLineStart) {
      if (char === " " || char === "\t") continue;
      const next = text[i + 1];
      const isIndicator = (char === "-" || char === "?" || char === ":") && (next === " " || next === "\t" || next === "\n" || next === undefined);
      if (isIndicator) {
        indicators++;
        if (indicators > MAX_INDICATORS_PER_LINE) {
          return { line, message: `nested too deeply (more than ${MAX_INDICATORS_PER_LINE} "- "/"? " indicators on one line)` };
        }
        continue;
      }
      atLineStart = false;
    }
  }
  return undefined;
}

function yamlProblemMessage(code: string, message: string): string {
  switch (code) {
    case "MULTIPLE_DOCS":
      return 'only one YAML document is allowed; remove the "---" separator';
    case "RESOURCE_EXHAUSTION":
      return "nested too deeply";
    case "TAB_AS_INDENT":
      return "tabs are not allowed for indentation; use spaces";
    case "TAG_RESOLVE_FAILED":
      return `unsupported YAML tag (${message.split("\n")[0]})`;
    default:
      return `invalid YAML: ${message.split("\n")[0]}`;
  }
}

/**
 * Iterative walk over the parsed tree (no recursion, so depth cannot overflow the stack):
 * duplicate keys, collection keys and excessive nesting.
 */
function checkTree(doc: Document, file: string, lineAt: (offset: number | undefined) => number | undefined): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const pending: Array<{ node: unknown; depth: number; path: Array<string | number> }> = [
    { node: doc.contents, depth: 0, path: [] },
  ];
  while (pending.length > 0) {
    const { node, depth, path } = pending.pop()!;
    if (isMap(node) || isSeq(node)) {
      if (depth >= MAX_YAML_DEPTH) {
        issues.push({ file, line: lineAt(node.range?.[0]), path: formatPath(path), message: `nested too deeply (more than ${MAX_YAML_DEPTH} levels)` });
        return issues;
      }
    }
    if (isMap(node)) {
      const seen = new Map<string, number | undefined>();
      for (const pair of node.items) {
        const key = pair.key;
        const keyLine = lineAt((key as YamlNode | null)?.range?.[0]);
        if (key !== null && !isScalar(key)) {
          issues.push({ file, line: keyLine, path: formatPath(path), message: "keys must be plain names, not lists, mappings or aliases" });
          continue;
        }
        const name = String(key === null ? null : key.value);
        if (seen.has(name)) {
          const first = seen.get(name);
          const where = first === undefined ? "" : ` (first defined on line ${first})`;
          issues.push({ file, line: keyLine, path: formatPath([...path, name]), message: `duplicate key ${describeValue(name)}${where}` });
        } else {
          seen.set(name, keyLine);
        }
        pending.push({ node: pair.value, depth: depth + 1, path: [...path, name] });
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, index) => pending.push({ node: item, depth: depth + 1, path: [...path, index] }));
    }
  }
  return issues;
}

function lineOfPath(doc: Document, path: FieldPath, lineAt: (offset: number | undefined) => number | undefined): number | undefined {
  let node: unknown = doc.contents;
  let line: number | undefined;
  for (const segment of path) {
    if (node instanceof Alias || isAlias(node)) node = (node as Alias).resolve(doc);
    if (isMap(node)) {
      const pair = (node as YAMLMap).items.find((item: Pair) => isScalar(item.key) && String(item.key.value) === String(segment));
      if (pair === undefined) return line;
      line = lineAt((pair.key as YamlNode).range?.[0]);
      node = pair.value;
    } else if (isSeq(node) && typeof segment === "number") {
      const item = node.items[segment] as YamlNode | undefined;
      if (item === undefined) return line;
      line = lineAt(item.range?.[0]) ?? line;
      node = item;
    } else {
      return line;
    }
  }
  return line;
}
