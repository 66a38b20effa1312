/**
 * The argument walk the report commands (usage, invoice) share: `--flag value`, `--flag=value` and
 * bare flags, with every mistake collected rather than thrown at the first.
 */

/**
 * Calls `handle` for each argument with its flag (the part before `=` of a `--flag=value`), a
 * reader of the flag's value, and the argument as given. The reader returns the inline value or
 * takes the next argument; when none follows (end of the line, or another `--flag`), it records
 * "<flag> needs a value." in `problems` and returns undefined.
 */
export function forEachArg(
  argv: readonly string[],
  problems: string[],
  handle: (flag: string, value: () => string | undefined, arg: string) => void,
): void {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.startsWith("--") && arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined];
    const value = (): string | undefined => {
      if (inline !== undefined) return inline;
      const next = argv[i + 1];
      if (next === undefined || next.startsWith("--")) {
        problems.push(`${flag} needs a value.`);
        return undefined;
      }
      i++;
      return next;
    };
    handle(flag, value, arg);
  }
}
