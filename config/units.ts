/**
 * Memory sizes as written in configuration (`4G`, `1536M`) and as Docker wants them (MiB).
 * G means GiB (1024 MiB), M means MiB, matching Docker's `--memory 4g`.
 */

/** Accepted spelling: a decimal number followed by M or G, nothing else. */
export const MEMORY_PATTERN = /^(\d+(?:\.\d+)?)([MG])$/;

/** Human description of the accepted format, for messages and the JSON Schema. */
export const MEMORY_FORMAT = 'a size like "4G" or "1536M" (M = MiB, G = GiB)';

/**
 * Parses `<number><M|G>` into whole MiB. Returns an explanation string instead when the text is
 * not a size or does not come out as a whole number of MiB (e.g. `0.3G`).
 */
export function parseMemory(text: string): { mb: number } | { problem: string } {
  const match = MEMORY_PATTERN.exec(text.trim());
  if (match === null) return { problem: `expected ${MEMORY_FORMAT}` };
  const amount = Number(match[1]);
  const mb = match[2] === "G" ? amount * 1024 : amount;
  // Tolerate float noise (1.1G = 1126.4 is not whole; 1.5G = 1536 is).
  const rounded = Math.round(mb);
  if (Math.abs(mb - rounded) > 1e-9) {
    return { problem: `${text.trim()} is ${Math.round(mb * 1000) / 1000} MiB, not a whole number of MiB` };
  }
  if (!Number.isSafeInteger(rounded)) return { problem: `expected ${MEMORY_FORMAT}` };
  return { mb: rounded };
}

/** Parses a size that is known to be valid (throws otherwise; for constants and tests). */
export function memoryMb(text: string): number {
  const parsed = parseMemory(text);
  if ("problem" in parsed) throw new Error(`invalid memory size ${JSON.stringify(text)}: ${parsed.problem}`);
  return parsed.mb;
}

/** Formats MiB back into the configuration spelling: `4096` -> `4G`, `1536` -> `1536M`, `0.5 GiB` stays `512M`. */
export function formatMemory(mb: number): string {
  if (mb !== 0 && mb % 1024 === 0) return `${mb / 1024}G`;
  if (Number.isInteger(mb)) return `${mb}M`;
  return `${Math.round(mb * 10) / 10}M`;
}
