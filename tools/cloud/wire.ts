// The byte stream between a device's socket and the broker, with the platform's packet size limit enforced on the
// wire: each packet's fixed header is read as it arrives, and a packet longer than the limit closes the
// connection before any of its body is kept (the broker never buffers it).

import { Duplex } from "node:stream";
import type { Socket } from "node:net";

export class PacketSizeGuard extends Duplex {
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  /** Scanner state: bytes of the current packet's body still to pass, or -1 while reading a fixed header. */
  private body = -1;
  private header: number[] = [];

  constructor(
    private readonly socket: Socket,
    private readonly maxPacketSize: number,
    private readonly onRefused: (reason: string) => void,
  ) {
    super({ allowHalfOpen: false });
    this.remoteAddress = socket.remoteAddress;
    this.remotePort = socket.remotePort;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      const problem = this.scan(chunk);
      if (problem) {
        this.onRefused(problem);
        this.destroy();
      } else if (!this.push(chunk)) {
        socket.pause();
      }
    });
    socket.on("end", () => this.push(null));
    socket.on("error", (error) => this.destroy(error));
    socket.on("close", () => this.destroy());
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.socket.write(chunk, (error) => callback(error ?? null));
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.socket.end();
    callback();
  }

  override _destroy(error: Error | null, callback: (error: Error | null) => void): void {
    this.socket.destroy();
    callback(error);
  }

  /** Follows packet boundaries through `chunk`; returns why the connection must close, if it must. */
  private scan(chunk: Buffer): string | undefined {
    let i = 0;
    while (i < chunk.length) {
      if (this.body > 0) {
        const take = Math.min(this.body, chunk.length - i);
        this.body -= take;
        i += take;
        if (this.body === 0) this.body = -1;
        continue;
      }
      const byte = chunk[i++];
      this.header.push(byte);
      if (this.header.length === 1 || byte & 0x80) {
        if (this.header.length > 4) return "malformed remaining length";
        continue;
      }
      let length = 0;
      for (let k = this.header.length - 1; k >= 1; k--) length = length * 128 + (this.header[k] & 0x7f);
      const total = this.header.length + length;
      this.header = [];
      if (total > this.maxPacketSize) return `a packet of ${total} bytes, more than ${this.maxPacketSize}`;
      this.body = length > 0 ? length : -1;
    }
    return undefined;
  }
}
