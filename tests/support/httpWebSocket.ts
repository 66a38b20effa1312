/**
 * A minimal RFC 6455 websocket (text, close, ping/pong; no extensions, no fragmentation) for
 * proving upgrades through the proxy with nothing but node's http/https modules.
 */
import { createHash, randomBytes } from "node:crypto";
import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import type { Duplex } from "node:stream";

const HANDSHAKE_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const OPCODE_TEXT = 0x1;
const OPCODE_CLOSE = 0x8;
const OPCODE_PING = 0x9;
const OPCODE_PONG = 0xa;

/** The Sec-WebSocket-Accept value a server must answer to a client's Sec-WebSocket-Key. */
export function webSocketAccept(key: string): string {
  return createHash("sha1").update(key + HANDSHAKE_GUID).digest("base64");
}

/** One frame; clients must mask, servers must not. */
export function encodeFrame(opcode: number, payload: Buffer, masked: boolean): Buffer {
  const length = payload.length;
  const lengthBytes = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const header = Buffer.alloc(2 + lengthBytes + (masked ? 4 : 0));
  header[0] = 0x80 | opcode;
  header[1] = (masked ? 0x80 : 0) | (length < 126 ? length : length < 65536 ? 126 : 127);
  if (lengthBytes === 2) header.writeUInt16BE(length, 2);
  if (lengthBytes === 8) header.writeBigUInt64BE(BigInt(length), 2);
  if (!masked) return Buffer.concat([header, payload]);
  const mask = randomBytes(4);
  mask.copy(header, 2 + lengthBytes);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] ^= mask[i & 3];
  return Buffer.concat([header, body]);
}

/** An open websocket over any duplex stream (a plain or TLS socket). */
export class WebSocketConnection {
  private buffered = Buffer.alloc(0);
  private readonly received: string[] = [];
  private readonly waiting: Array<(message: string) => void> = [];
  private closedFlag = false;
  /** Resolves when the connection ends, for whatever reason. */
  readonly closed: Promise<void>;

  constructor(
    private readonly socket: Duplex,
    private readonly isClient: boolean,
    head: Buffer = Buffer.alloc(0),
  ) {
    this.closed = new Promise((resolve) => {
      const done = (): void => {
        this.closedFlag = true;
        resolve();
      };
      socket.once("close", done);
      socket.once("end", done);
      socket.once("error", done);
    });
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    if (head.length > 0) this.onData(head);
  }

  /** Whether the connection has ended. */
  get isClosed(): boolean {
    return this.closedFlag;
  }

  /** Sends a text message. */
  send(text: string): void {
    this.socket.write(encodeFrame(OPCODE_TEXT, Buffer.from(text), this.isClient));
  }

  /** The next text message, or a rejection after `timeoutMs` or when the connection closes. */
  nextMessage(timeoutMs = 2000): Promise<string> {
    const queued = this.received.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const index = this.waiting.indexOf(deliver);
        if (index >= 0) this.waiting.splice(index, 1);
        reject(new Error(`no websocket message within ${timeoutMs} ms (closed: ${this.closedFlag})`));
      }, timeoutMs);
      const deliver = (message: string): void => {
        clearTimeout(timer);
        resolve(message);
      };
      this.waiting.push(deliver);
      void this.closed.then(() => {
        if (this.waiting.includes(deliver)) {
          clearTimeout(timer);
          this.waiting.splice(this.waiting.indexOf(deliver), 1);
          reject(new Error("websocket closed while waiting for a message"));
        }
      });
    });
  }

  /** Sends a close frame and ends the socket. */
  close(): void {
    if (this.closedFlag) return;
    this.socket.write(encodeFrame(OPCODE_CLOSE, Buffer.from([0x03, 0xe8]), this.isClient));
    this.socket.end();
  }

  /** Drops the socket without a close handshake. */
  destroy(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    for (;;) {
      const frame = decodeFrame(this.buffered);
      if (frame === undefined) return;
      this.buffered = this.buffered.subarray(frame.frameLength);
      if (frame.opcode === OPCODE_TEXT) this.deliver(frame.payload.toString("utf8"));
      else if (frame.opcode === OPCODE_PING) {
        this.socket.write(encodeFrame(OPCODE_PONG, frame.payload, this.isClient));
      } else if (frame.opcode === OPCODE_CLOSE) {
        this.socket.end();
        return;
      }
    }
  }

  private deliver(message: string): void {
    const waiter = this.waiting.shift();
    if (waiter) waiter(message);
    else this.received.push(message);
  }
}

function decodeFrame(
  data: Buffer,
): { opcode: number; payload: Buffer; frameLength: number } | undefined {
  if (data.length < 2) return undefined;
  const opcode = data[0] & 0x0f;
  const masked = (data[1] & 0x80) !== 0;
  let length = data[1] & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (data.length < 4) return undefined;
    length = data.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (data.length < 10) return undefined;
    length = Number(data.readBigUInt64BE(2));
    offset = 10;
  }
  const maskOffset = offset;
  if (masked) offset += 4;
  if (data.length < offset + length) return undefined;
  const payload = Buffer.from(data.subarray(offset, offset + length));
  if (masked) for (let i = 0; i < payload.length; i++) payload[i] ^= data[maskOffset + (i & 3)];
  return { opcode, payload, frameLength: offset + length };
}

/** Completes a server-side upgrade request; returns the open connection. */
export function acceptWebSocket(
  request: IncomingMessage,
  socket: Duplex,
  head: Buffer,
): WebSocketConnection {
  const key = request.headers["sec-websocket-key"];
  if (typeof key !== "string" || request.headers.upgrade?.toLowerCase() !== "websocket") {
    socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
    throw new Error("not a websocket upgrade");
  }
  socket.write(
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      `Sec-WebSocket-Accept: ${webSocketAccept(key)}\r\n\r\n`,
  );
  return new WebSocketConnection(socket, false, head);
}

/** Where and how a test client connects: through the proxy's TLS listener, or plain HTTP. */
export interface WebSocketTarget {
  /** Port on 127.0.0.1 (TLS when `ca` is given). */
  port: number;
  /** Host (SNI and Host header) of the site. */
  hostname: string;
  /** Request path, e.g. `/ws/socket.io/?EIO=4&transport=websocket`. */
  path: string;
  /** CA certificate that signed the proxy's certificate; undefined for plain HTTP (e.g. a container's published port). */
  ca?: Buffer;
}

/** Opens a websocket over HTTPS/1.1 (plain HTTP/1.1 without a CA) and checks the handshake. */
export function connectWebSocket(target: WebSocketTarget): Promise<WebSocketConnection> {
  const key = randomBytes(16).toString("base64");
  return new Promise((resolve, reject) => {
    const tls = target.ca ? { servername: target.hostname, ca: target.ca } : {};
    const request = (target.ca ? https : http).request({
      host: "127.0.0.1",
      port: target.port,
      ...tls,
      path: target.path,
      agent: false,
      headers: {
        Host: target.hostname,
        Connection: "Upgrade",
        Upgrade: "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": key,
      },
    });
    request.on("upgrade", (response, socket, head) => {
      if (response.headers["sec-websocket-accept"] !== webSocketAccept(key)) {
        socket.destroy();
        reject(new Error("websocket handshake answered with a wrong Sec-WebSocket-Accept"));
        return;
      }
      resolve(new WebSocketConnection(socket, true, head));
    });
    request.on("response", (response) => {
      response.resume();
      reject(new Error(`websocket upgrade refused with HTTP ${response.statusCode}`));
    });
    request.on("error", reject);
    request.end();
  });
}
