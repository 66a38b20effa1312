/**
 * Address arithmetic for the stack's `adminCidrs`: which networks can reach SSH through the
 * Hetzner firewall. Two ways a list can be wrong while every entry looks like a CIDR:
 *
 * - it opens SSH to much of the internet in disguise (`0.0.0.0/1` + `128.0.0.0/1`, `2000::/3`);
 * - it names networks that never appear as a source address at Hetzner's firewall, which only
 *   filters public traffic (private, loopback, link-local, CGNAT, ULA, multicast, reserved), so
 *   SSH stays closed to the administrators who listed them.
 *
 * The rule: one entry covers at most an IPv4 /16 (65 536 addresses, a large organisation's
 * network) or an IPv6 /32 (an internet provider's whole allocation), and all entries of a family
 * together at most 256 such networks (an IPv4 /8 or an IPv6 /24 worth). An administrators' office
 * or VPN is a /32 to /24 (IPv4) or /64 to /48 (IPv6): the limits leave room for a provider's
 * dynamic pool while refusing anything close to "everyone". Documentation ranges (192.0.2.0/24,
 * 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) are accepted: they are the placeholders of the
 * committed stack file.
 */
import * as net from "net";

/** A parsed network: address family, first address as a number, prefix length. */
export interface Network {
  version: 4 | 6;
  start: bigint;
  prefix: number;
}

/** Shortest prefix one admin entry may have, per family. */
export const MIN_ADMIN_PREFIX: Readonly<Record<4 | 6, number>> = { 4: 16, 6: 32 };

/** How many of the largest allowed networks all entries of a family may cover together. */
export const MAX_ADMIN_NETWORKS = 256n;

const BITS: Readonly<Record<4 | 6, number>> = { 4: 32, 6: 128 };

/** The numeric value of an IPv4 or IPv6 address (already validated by `net.isIP`). */
export function addressToBigInt(address: string): bigint {
  if (net.isIPv4(address)) return address.split(".").reduce((acc, octet) => (acc << 8n) | BigInt(Number(octet)), 0n);
  let text = address.toLowerCase().split("%")[0];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted !== null) {
    const octets = dotted[1].split(".").map(Number);
    text = `${text.slice(0, dotted.index)}${((octets[0] << 8) | octets[1]).toString(16)}:${((octets[2] << 8) | octets[3]).toString(16)}`;
  }
  const [head, tail] = text.includes("::") ? text.split("::") : [text, undefined];
  const headGroups = head === "" ? [] : head.split(":");
  const tailGroups = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array(8 - headGroups.length - tailGroups.length).fill("0"), ...tailGroups];
  return groups.reduce((acc, group) => (acc << 16n) | BigInt(parseInt(group, 16)), 0n);
}

/** `address/prefix` as a Network, or undefined when it is not one (no host-bit check). */
export function parseNetwork(text: string): Network | undefined {
  const match = /^([^/\s]+)\/(\d{1,3})$/.exec(text);
  if (match === null) return undefined;
  const version = net.isIP(match[1]);
  if (version !== 4 && version !== 6) return undefined;
  const prefix = Number(match[2]);
  if (prefix > BITS[version]) return undefined;
  return { version, start: addressToBigInt(match[1]), prefix };
}

/** Number of addresses in `network`. */
export function networkSize(network: Pick<Network, "version" | "prefix">): bigint {
  return 1n << BigInt(BITS[network.version] - network.prefix);
}

/** Networks that never reach a Hetzner firewall as a source address, with what they are. */
const NON_PUBLIC: ReadonlyArray<[cidr: string, what: string]> = [
  ["0.0.0.0/8", 'the "this network" block'],
  ["10.0.0.0/8", "a private range (RFC 1918)"],
  ["100.64.0.0/10", "carrier-grade NAT space (RFC 6598)"],
  ["127.0.0.0/8", "loopback"],
  ["169.254.0.0/16", "link-local"],
  ["172.16.0.0/12", "a private range (RFC 1918)"],
  ["192.0.0.0/24", "IETF protocol assignments"],
  ["192.168.0.0/16", "a private range (RFC 1918)"],
  ["198.18.0.0/15", "the benchmarking range"],
  ["224.0.0.0/4", "multicast"],
  ["240.0.0.0/4", "reserved (and broadcast)"],
  ["::/128", "the unspecified address"],
  ["::1/128", "loopback"],
  ["::ffff:0:0/96", "IPv4-mapped addresses (never on the wire)"],
  ["64:ff9b:1::/48", "local-use NAT64"],
  ["100::/64", "the discard prefix"],
  ["fc00::/7", "unique local addresses (ULA)"],
  ["fe80::/10", "link-local"],
  ["ff00::/8", "multicast"],
];

const NON_PUBLIC_NETWORKS = NON_PUBLIC.map(([cidr, what]) => ({ network: parseNetwork(cidr)!, what }));
const GLOBAL_UNICAST_V6 = parseNetwork("2000::/3")!;

function contains(outer: Network, inner: Network): boolean {
  if (outer.version !== inner.version || inner.prefix < outer.prefix) return false;
  const shift = BigInt(BITS[outer.version] - outer.prefix);
  return inner.start >> shift === outer.start >> shift;
}

/**
 * What `network` is when none of its addresses can be a public source address, or undefined
 * when it is public (in part at least).
 */
export function nonPublicRange(network: Network): string | undefined {
  for (const special of NON_PUBLIC_NETWORKS) if (contains(special.network, network)) return special.what;
  if (network.version === 6 && !contains(GLOBAL_UNICAST_V6, network) && network.prefix >= 3) {
    return "outside IPv6's global unicast space (2000::/3)";
  }
  return undefined;
}

/** "0.8 % of all IPv4 addresses" for messages. */
export function shareOfFamily(count: bigint, version: 4 | 6): string {
  const total = 1n << BigInt(BITS[version]);
  const perMillion = Number((count * 1_000_000n) / total);
  const percent = perMillion / 10_000;
  const shown = percent >= 1 ? percent.toFixed(0) : percent >= 0.01 ? percent.toFixed(2) : "< 0.01";
  return `${shown} % of all IPv${version} addresses`;
}

/** Addresses covered by the union of `networks` of one family (overlaps counted once). */
export function unionSize(networks: readonly Network[]): bigint {
  const ranges = networks
    .map((network) => ({ start: network.start, end: network.start + networkSize(network) }))
    .sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  let total = 0n;
  let current: { start: bigint; end: bigint } | undefined;
  for (const range of ranges) {
    if (current !== undefined && range.start <= current.end) {
      if (range.end > current.end) current.end = range.end;
      continue;
    }
    if (current !== undefined) total += current.end - current.start;
    current = { ...range };
  }
  if (current !== undefined) total += current.end - current.start;
  return total;
}

/** Most addresses all admin entries of a family may cover together. */
export function maxAdminAddresses(version: 4 | 6): bigint {
  return MAX_ADMIN_NETWORKS * networkSize({ version, prefix: MIN_ADMIN_PREFIX[version] });
}
