/**
 * The monthly invoice: per client, OpenRouter spend in a calendar month (UTC), active users and
 * storage from the nightly usage snapshots, and the amount from the stack's `pricing`. Pure
 * functions; `scripts/invoice.ts` reads the API, the snapshot files and the readings file.
 *
 * OpenRouter's key API reports a key's lifetime spend (`usage`) and its spend in the current UTC
 * month (`usage_monthly`), nothing per past month. So a key's lifetime spend at the start of a
 * month is `usage - usage_monthly` from any reading taken during that month, and spend in month M
 * is start(M+1) - start(M). Every invoice run records a reading per key; a key created during or
 * after a month started that month at 0.
 */
import type { PricingSpec } from "../config/model";
import type { OpenRouterKeyInfo } from "../components/openrouter/api";

/** A `YYYY-MM` calendar month (UTC). */
export type Month = string;

/** One recorded reading of a key's counters. */
export interface KeyReading {
  /** Key hash (not secret). */
  keyHash: string;
  /** When it was read (ISO, UTC). */
  at: string;
  /** Lifetime spend in USD at that time. */
  usageUsd: number;
  /** Spend in USD in the UTC month of `at`; null when the API did not report it. */
  usageMonthlyUsd: number | null;
}

/** The nightly per-client snapshot `usage-YYYY-MM-DD.json` written by mai-backup. */
export interface UsageSnapshot {
  /** Client slug. */
  slug: string;
  /** Day of the snapshot (from the file name), `YYYY-MM-DD`. */
  day: string;
  /** Users that are not pending; null when the database has no user table. */
  activeUsers: number | null;
  /** Bytes of the whole data volume. */
  volumeBytes: number;
  /** Bytes of the database (and its -wal). */
  databaseBytes: number;
}

/** Spend of one key in one month, and how it was derived. */
export interface MonthSpend {
  /** USD; null when it cannot be derived. */
  usd: number | null;
  /** Why null, or a caveat ("month to date"). */
  note: string;
}

const MONTH = /^(\d{4})-(0[1-9]|1[0-2])$/;

/** Whether `text` is a `YYYY-MM` month. */
export function isMonth(text: string): boolean {
  return MONTH.test(text);
}

/** The UTC month of an ISO timestamp or a Date. */
export function monthOf(time: string | Date): Month {
  return (typeof time === "string" ? new Date(time) : time).toISOString().slice(0, 7);
}

/** The month after `month`. */
export function nextMonth(month: Month): Month {
  const [year, mon] = month.split("-").map(Number);
  return mon === 12 ? `${year + 1}-01` : `${year}-${String(mon + 1).padStart(2, "0")}`;
}

function round(value: number, digits: number): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

/** Lifetime spend of `key` at the start of `month`, when the key, `now` or a reading tells it. */
export function spendAtMonthStart(month: Month, key: OpenRouterKeyInfo, readings: readonly KeyReading[], now: Date): number | undefined {
  if (key.createdAt !== null && monthOf(key.createdAt) >= month) return 0;
  if (month === monthOf(now) && key.usageMonthlyUsd !== null) return key.usageUsd - key.usageMonthlyUsd;
  const reading = readings
    .filter((r) => r.keyHash === key.hash && r.usageMonthlyUsd !== null && monthOf(r.at) === month)
    .sort((a, b) => b.at.localeCompare(a.at))[0];
  return reading === undefined ? undefined : reading.usageUsd - (reading.usageMonthlyUsd ?? 0);
}

/** Spend of `key` in `month` (not after the month of `now`). */
export function spendInMonth(month: Month, key: OpenRouterKeyInfo, readings: readonly KeyReading[], now: Date): MonthSpend {
  const current = monthOf(now);
  if (month === current) {
    return key.usageMonthlyUsd === null
      ? { usd: null, note: "OpenRouter did not report this month's spend" }
      : { usd: round(key.usageMonthlyUsd, 6), note: "month to date" };
  }
  const start = spendAtMonthStart(month, key, readings, now);
  const end = spendAtMonthStart(nextMonth(month), key, readings, now);
  const missing = [start === undefined ? month : undefined, end === undefined ? nextMonth(month) : undefined].filter(Boolean);
  if (start === undefined || end === undefined) {
    return { usd: null, note: `no OpenRouter reading from ${missing.join(" and ")} (each invoice run records one)` };
  }
  return { usd: round(Math.max(0, end - start), 6), note: "" };
}

/** Today's reading of every key, replacing earlier readings of the same key on the same UTC day. */
export function recordReadings(readings: readonly KeyReading[], keys: readonly OpenRouterKeyInfo[], now: Date): KeyReading[] {
  const day = now.toISOString().slice(0, 10);
  const fresh = keys.map((key) => ({ keyHash: key.hash, at: now.toISOString(), usageUsd: key.usageUsd, usageMonthlyUsd: key.usageMonthlyUsd }));
  const replaced = new Set(fresh.map((r) => r.keyHash));
  const kept = readings.filter((r) => !(replaced.has(r.keyHash) && r.at.slice(0, 10) === day));
  return [...kept, ...fresh].sort((a, b) => a.at.localeCompare(b.at) || a.keyHash.localeCompare(b.keyHash));
}

/** Users and storage of one client in one month, from its nightly snapshots. */
export interface MonthUsage {
  /** Most active users on any snapshot day of the month; null without a user count. */
  activeUsers: number | null;
  /** Volume bytes at the last snapshot of the month. */
  volumeBytes: number | null;
  /** Database bytes at the last snapshot of the month. */
  databaseBytes: number | null;
  /** Day of the last snapshot used, or null. */
  lastSnapshot: string | null;
  /** Snapshot days in the month. */
  snapshotDays: number;
}

/** Aggregates a client's snapshots of `month`: peak active users, storage at the last one. */
export function usageInMonth(month: Month, snapshots: readonly UsageSnapshot[]): MonthUsage {
  const inMonth = snapshots.filter((s) => s.day.startsWith(`${month}-`)).sort((a, b) => a.day.localeCompare(b.day));
  const last = inMonth.at(-1);
  const counts = inMonth.map((s) => s.activeUsers).filter((n): n is number => n !== null);
  return {
    activeUsers: counts.length === 0 ? null : Math.max(...counts),
    volumeBytes: last?.volumeBytes ?? null,
    databaseBytes: last?.databaseBytes ?? null,
    lastSnapshot: last?.day ?? null,
    snapshotDays: inMonth.length,
  };
}

/** One line of the invoice. */
export interface InvoiceRow {
  /** Client slug. */
  client: string;
  /** OpenRouter spend in the month, USD (sum over the client's keys); null when unknown. */
  openrouterUsd: number | null;
  /** Peak active users in the month; null when unknown. */
  activeUsers: number | null;
  /** Volume bytes at the month's last snapshot; null when unknown. */
  volumeBytes: number | null;
  /** Day of that snapshot. */
  lastSnapshot: string | null;
  /** Amounts in the pricing currency; absent without pricing. */
  charges?: { baseFee: number; userFees: number; usage: number; total: number };
  /** What the operator should check before sending the invoice. */
  note: string;
}

/** The whole invoice. */
export interface Invoice {
  /** `YYYY-MM`. */
  month: Month;
  /** Stack whose keys and clients are billed. */
  stack: string;
  /** When it was computed (ISO). */
  generatedAt: string;
  /** Pricing applied, or null. */
  pricing: PricingSpec | null;
  rows: InvoiceRow[];
  totals: { openrouterUsd: number; activeUsers: number; volumeBytes: number; charges?: { baseFee: number; userFees: number; usage: number; total: number } };
}

/** What the invoice knows per client before pricing. */
export interface ClientMonth {
  client: string;
  /** Spend per key of the client (several when a key was replaced). */
  spends: MonthSpend[];
  /** Notes about the client's keys (disabled, no client file, ...). */
  keyNotes: string[];
  usage: MonthUsage;
}

/** Prices one client-month: base fee + fee per active user + OpenRouter spend with markup, converted. */
export function priceRow(month: ClientMonth, pricing: PricingSpec | null): InvoiceRow {
  const known = month.spends.filter((s) => s.usd !== null);
  const openrouterUsd = month.spends.length === 0 || known.length < month.spends.length ? null : round(known.reduce((sum, s) => sum + (s.usd ?? 0), 0), 6);
  const notes = [...month.keyNotes, ...new Set(month.spends.map((s) => s.note).filter((n) => n !== ""))];
  if (month.spends.length === 0) notes.push("no stack-managed OpenRouter key: spend not available");
  if (month.usage.snapshotDays === 0) notes.push("no usage snapshot in this month");
  else if (month.usage.activeUsers === null) notes.push("snapshots without a user count");
  const row: InvoiceRow = {
    client: month.client,
    openrouterUsd,
    activeUsers: month.usage.activeUsers,
    volumeBytes: month.usage.volumeBytes,
    lastSnapshot: month.usage.lastSnapshot,
    note: notes.join("; "),
  };
  if (pricing !== null) {
    const baseFee = round(pricing.baseFeePerClient, 2);
    const userFees = round(pricing.feePerActiveUser * (month.usage.activeUsers ?? 0), 2);
    const usage = round((openrouterUsd ?? 0) * pricing.usdExchangeRate * (1 + pricing.usageMarkupPercent / 100), 2);
    row.charges = { baseFee, userFees, usage, total: round(baseFee + userFees + usage, 2) };
  }
  return row;
}

/** Builds the invoice from per-client facts; rows sorted by slug. */
export function buildInvoice(month: Month, stack: string, clients: readonly ClientMonth[], pricing: PricingSpec | null, now: Date): Invoice {
  const rows = [...clients].sort((a, b) => a.client.localeCompare(b.client)).map((c) => priceRow(c, pricing));
  const sum = (pick: (row: InvoiceRow) => number | null | undefined, digits: number) =>
    round(rows.reduce((total, row) => total + (pick(row) ?? 0), 0), digits);
  const totals: Invoice["totals"] = {
    openrouterUsd: sum((r) => r.openrouterUsd, 6),
    activeUsers: sum((r) => r.activeUsers, 0),
    volumeBytes: sum((r) => r.volumeBytes, 0),
  };
  if (pricing !== null) {
    totals.charges = {
      baseFee: sum((r) => r.charges?.baseFee, 2),
      userFees: sum((r) => r.charges?.userFees, 2),
      usage: sum((r) => r.charges?.usage, 2),
      total: sum((r) => r.charges?.total, 2),
    };
  }
  return { month, stack, generatedAt: now.toISOString(), pricing, rows, totals };
}

function gigabytes(bytes: number | null): string {
  return bytes === null ? "-" : `${(bytes / 1e9).toFixed(2)} GB`;
}

/** Aligned text table for people. */
export function renderInvoiceTable(invoice: Invoice): string {
  const money = (value: number | undefined) => (value === undefined ? "" : value.toFixed(2));
  const currency = invoice.pricing?.currency;
  const header = ["CLIENT", "OPENROUTER USD", "ACTIVE USERS", "STORAGE", ...(currency ? [`BASE ${currency}`, `USERS ${currency}`, `USAGE ${currency}`, `TOTAL ${currency}`] : []), "NOTE"];
  const body = invoice.rows.map((row) => [
    row.client,
    row.openrouterUsd === null ? "-" : `$${row.openrouterUsd.toFixed(2)}`,
    row.activeUsers === null ? "-" : String(row.activeUsers),
    gigabytes(row.volumeBytes),
    ...(currency ? [money(row.charges?.baseFee), money(row.charges?.userFees), money(row.charges?.usage), money(row.charges?.total)] : []),
    row.note,
  ]);
  const t = invoice.totals;
  const footer = [
    "TOTAL",
    `$${t.openrouterUsd.toFixed(2)}`,
    String(t.activeUsers),
    gigabytes(t.volumeBytes),
    ...(currency ? [money(t.charges?.baseFee), money(t.charges?.userFees), money(t.charges?.usage), money(t.charges?.total)] : []),
    "",
  ];
  const lines = [header, ...body, footer];
  const widths = header.map((_, col) => Math.max(...lines.map((line) => line[col].length)));
  const format = (line: string[]) =>
    line.map((cell, col) => (col === 0 || col === line.length - 1 ? cell.padEnd(widths[col]) : cell.padStart(widths[col]))).join("  ").trimEnd();
  const pricing = invoice.pricing
    ? `pricing: ${invoice.pricing.baseFeePerClient} ${currency}/client, ${invoice.pricing.feePerActiveUser} ${currency}/active user, OpenRouter spend +${invoice.pricing.usageMarkupPercent}% at ${invoice.pricing.usdExchangeRate} ${currency}/USD`
    : "no pricing in the stack config: usage only";
  const title = `Invoice ${invoice.month}, stack ${invoice.stack} (${pricing})`;
  return `${title}\n${lines.map(format).join("\n")}\n`;
}

/** CSV with raw numbers, for spreadsheets and accounting. */
export function renderInvoiceCsv(invoice: Invoice): string {
  const quote = (value: string) => (/[",\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value);
  const num = (value: number | null | undefined) => (value === null || value === undefined ? "" : String(value));
  const priced = invoice.pricing !== null;
  const header = ["month", "client", "openrouter_usd", "active_users", "volume_bytes", "last_snapshot"];
  if (priced) header.push("currency", "base_fee", "user_fees", "usage_charge", "total");
  header.push("note");
  const lines = [header.join(",")];
  for (const row of invoice.rows) {
    const cells = [invoice.month, quote(row.client), num(row.openrouterUsd), num(row.activeUsers), num(row.volumeBytes), row.lastSnapshot ?? ""];
    if (priced) cells.push(invoice.pricing!.currency, num(row.charges?.baseFee), num(row.charges?.userFees), num(row.charges?.usage), num(row.charges?.total));
    cells.push(quote(row.note));
    lines.push(cells.join(","));
  }
  return `${lines.join("\n")}\n`;
}
