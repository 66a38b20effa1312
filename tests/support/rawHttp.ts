/**
 * HTTP/1.1 over one plain TCP connection, byte by byte, for tests that must see what a server
 * does with a connection: several requests on one socket (keep-alive, pipelining), HEAD answers
 * without a body, how many reads an answer took, whether the server closed the connection.
 */
import net from "node:net";

/** One answer as it came over the wire. */
export interface RawResponse {
  /** Status code of the status line. */
  status: number;
  /** Header fields by lower-case name (repeated ones joined by ", "). */
  headers: Record<string, string>;
  /** The body, de-chunked when it was sent chunked. */
  body: Buffer;
  /** How many socket reads carried bytes of this answer. */
  reads: number;
}

/** A client connection to 127.0.0.1. */
export class RawHttpConnection {
  private buffer = Buffer.alloc(0);
  private readsInBuffer = 0;
  private waiter: (() => void) | undefined;
  /** Whether the server closed its side of the connection. */
  ended = false;

  private constructor(private readonly socket: net.Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.readsInBuffer++;
      this.wake();
    });
    socket.on("end", () => {
      this.ended = true;
      this.wake();
    });
    socket.on("close", () => {
      this.ended = true;
      this.wake();
    });
    socket.on("error", () => undefined); // a reset shows as `ended`
  }

  /** Opens a connection to `port` on 127.0.0.1. */
  static open(port: number): Promise<RawHttpConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: "127.0.0.1", port, noDelay: true }, () => resolve(new RawHttpConnection(socket)));
      socket.once("error", reject);
    });
  }

  /** Writes bytes as they are. */
  send(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Bytes received and not consumed by a parsed answer yet. */
  get pending(): number {
    return this.buffer.length;
  }

  /** Closes the connection. */
  close(): void {
    this.socket.destroy();
  }

  /** Waits until the server has closed the connection. */
  async waitEnded(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) await this.waitForData(deadline, "the server to close the connection");
  }

  /**
   * Reads the next answer. `method` is the request's (a HEAD answer has no body, whatever its
   * headers say); an answer without Content-Length or chunked framing runs to the connection's end.
   */
  async readResponse(method = "GET", timeoutMs = 5000): Promise<RawResponse> {
    const deadline = Date.now() + timeoutMs;
    let headEnd: number;
    while ((headEnd = this.buffer.indexOf("\r\n\r\n")) < 0) await this.waitForData(deadline, "an answer's header");
    const [statusLine, ...fields] = this.buffer.subarray(0, headEnd).toString("latin1").split("\r\n");
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
    if (!status) throw new Error(`not an HTTP status line: ${JSON.stringify(statusLine)}`);
    const headers: Record<string, string> = {};
    for (const field of fields) {
      const colon = field.indexOf(":");
      const name = field.slice(0, colon).trim().toLowerCase();
      const value = field.slice(colon + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    const code = Number(status[1]);
    let offset = headEnd + 4;
    let body = Buffer.alloc(0);
    if (method === "HEAD" || code < 200 || code === 204 || code === 304) {
      // no body
    } else if (/\bchunked\b/i.test(headers["transfer-encoding"] ?? "")) {
      const parts: Buffer[] = [];
      for (;;) {
        let lineEnd: number;
        while ((lineEnd = this.buffer.indexOf("\r\n", offset)) < 0) await this.waitForData(deadline, "a chunk size");
        const size = parseInt(this.buffer.subarray(offset, lineEnd).toString("latin1").split(";")[0], 16);
        if (Number.isNaN(size)) throw new Error("bad chunk size");
        if (size === 0) {
          while (this.buffer.indexOf("\r\n\r\n", lineEnd) < 0) await this.waitForData(deadline, "the last chunk");
          offset = this.buffer.indexOf("\r\n\r\n", lineEnd) + 4;
          break;
        }
        while (this.buffer.length < lineEnd + 2 + size + 2) await this.waitForData(deadline, "a chunk");
        parts.push(Buffer.from(this.buffer.subarray(lineEnd + 2, lineEnd + 2 + size)));
        offset = lineEnd + 2 + size + 2;
      }
      body = Buffer.concat(parts);
    } else if (headers["content-length"] !== undefined) {
      const length = Number(headers["content-length"]);
      while (this.buffer.length < offset + length) await this.waitForData(deadline, "the body");
      body = Buffer.from(this.buffer.subarray(offset, offset + length));
      offset += length;
    } else {
      await this.waitEnded(Math.max(0, deadline - Date.now()));
      body = Buffer.from(this.buffer.subarray(offset));
      offset = this.buffer.length;
    }
    const reads = this.readsInBuffer;
    this.buffer = Buffer.from(this.buffer.subarray(offset));
    // Reads that brought bytes of a later answer are counted for that one as well.
    this.readsInBuffer = this.buffer.length > 0 ? 1 : 0;
    return { status: code, headers, body, reads };
  }

  private waitForData(deadline: number, what: string): Promise<void> {
    if (this.ended) return Promise.reject(new Error(`connection closed while waiting for ${what} (${this.buffer.length} bytes unread)`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error(`timed out waiting for ${what}`));
      }, Math.max(0, deadline - Date.now()));
      this.waiter = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }
}
