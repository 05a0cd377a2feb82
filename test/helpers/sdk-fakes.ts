// Fakes of the Moddable SDK's modules that hosts/moddable is handed (it imports none of them itself, see
// hosts/moddable/openers.ts and time-sync.ts): the ECMA-419 TCP socket (embedded:io/socket/tcp), the SDK's TLSSocket
// over it (embedded:io/socket/tcp/tls, examples/io/tcp/tlssocket) and SNTP. Each does what the SDK's module does at
// the interface our host uses, no more, and lets a test play the native side (a callback, bytes arriving).
// Each call of a factory makes its own class and its own list of the instances made, so tests share nothing.
//
// bench/xsnap/peer-entry.ts keeps fakes of its own: they run inside XS, bundled with the benchmark, and what they
// cost is part of the compute figures the benchmark takes out again (its "replay" op), so they stay minimal and
// count what they are handed; these record everything for the test to look at.
import type { SocketClass } from "../../hosts/moddable/openers";
import type { SntpConstructor } from "../../hosts/moddable/time-sync";

/** lwIP's default send buffer on ESP32 (TCP_SND_BUF): the room a TCP write reports by default. */
export const TCP_ROOM = 5744;

/**
 * An ECMA-419 TCP socket (embedded:io/socket/tcp) in the "buffer" format: it keeps its options (the native socket
 * keeps the callbacks in its C record), and the native side's calls go through `call`, with the socket as `this`.
 */
export interface FakeTcp {
  readonly options: Record<string, unknown>;
  /** ECMA-419's `target`: set from the options only when the class keeps it (see fakeTcp). */
  target: unknown;
  closed: boolean;
  /** What read() hands out next, one buffer a call (undefined when empty). */
  inbox: ArrayBuffer[];
  /** What write() was handed, as it was. */
  sent: Uint8Array[];
  /** What write() returns: the room left. */
  room: number;
  read(): ArrayBuffer | undefined;
  write(data: Uint8Array): number;
  close(): void;
  /** The native side calls the callback `name` of the options ("onReadable", "onWritable", "onError"). */
  call(name: string, ...args: number[]): void;
}

/**
 * The SDK's TCP class. With `keepsTarget`, the constructor puts the options' `target` on the socket, as
 * builtinInitializeTarget does on a device; without, it leaves it to the opener, as the mac build does.
 */
export function fakeTcp({ keepsTarget }: { keepsTarget: boolean }): { TCP: SocketClass; made: FakeTcp[] } {
  const made: FakeTcp[] = [];
  class TCP implements FakeTcp {
    target: unknown;
    closed = false;
    inbox: ArrayBuffer[] = [];
    sent: Uint8Array[] = [];
    room = TCP_ROOM;
    constructor(readonly options: Record<string, unknown>) {
      if (keepsTarget) this.target = options.target;
      made.push(this);
    }
    read(): ArrayBuffer | undefined {
      return this.inbox.shift();
    }
    write(data: Uint8Array): number {
      this.sent.push(data);
      return this.room;
    }
    close(): void {
      this.closed = true;
    }
    call(name: string, ...args: number[]): void {
      (this.options[name] as (...a: number[]) => void).apply(this, args);
    }
  }
  return { TCP: TCP as unknown as SocketClass, made };
}

/** What the SDK's TLSSocket takes off the room its TCP socket reports, in this fake (a record's overhead). */
export const TLS_OVERHEAD = 96;

/**
 * The SDK's TLSSocket (examples/io/tcp/tlssocket): it builds its TCP socket from `new options.TCP.io({...options,
 * ...})` with callbacks of its own, which call the application's with a `this` of their own. Set `fail` and the
 * next onReadable throws it from inside the TCP socket's callback, as the TLS engine does on a bad record or an alert.
 */
export interface FakeTlsSocket {
  readonly socket: FakeTcp;
  fail: Error | undefined;
  /** What read() hands out next (the decrypted data), one buffer a call. */
  inbox: ArrayBuffer[];
  read(): ArrayBuffer | undefined;
  write(data: Uint8Array): number;
  close(): void;
}

export function fakeTlsSocket(): { TLSSocket: SocketClass; made: FakeTlsSocket[] } {
  const made: FakeTlsSocket[] = [];
  class TLSSocket implements FakeTlsSocket {
    readonly socket: FakeTcp;
    fail: Error | undefined = undefined;
    inbox: ArrayBuffer[] = [];
    constructor(options: Record<string, unknown> & { TCP: { io: new (o: Record<string, unknown>) => FakeTcp } }) {
      const app = options as unknown as { onReadable(n: number): void; onWritable(n: number): void; onError(): void };
      const callbacks = { onReadable: app.onReadable, onWritable: app.onWritable, onError: app.onError };
      this.socket = new options.TCP.io({
        ...options,
        onReadable: (count: number) => {
          if (this.fail) throw this.fail;
          callbacks.onReadable(count);
        },
        onWritable: (count: number) => callbacks.onWritable(count - TLS_OVERHEAD),
        onError: () => callbacks.onError(),
      });
      made.push(this);
    }
    read(): ArrayBuffer | undefined {
      return this.inbox.shift();
    }
    write(): number {
      return this.socket.room - TLS_OVERHEAD;
    }
    close(): void {
      this.socket.close();
    }
  }
  return { TLSSocket: TLSSocket as unknown as SocketClass, made };
}

/** One SNTP request of the SDK's `sntp` module: the test answers through `cb` (1 with the time, 2 retry, -1 error). */
export interface FakeSntp {
  readonly options: { host: string };
  readonly cb: (message: number, value?: unknown) => unknown;
  closed: boolean;
  close(): void;
}

/** The SDK's SNTP class. */
export function fakeSntp(): { SNTP: SntpConstructor; made: FakeSntp[] } {
  const made: FakeSntp[] = [];
  class SNTP implements FakeSntp {
    closed = false;
    constructor(
      readonly options: { host: string },
      readonly cb: (message: number, value?: unknown) => unknown,
    ) {
      made.push(this);
    }
    close(): void {
      this.closed = true;
    }
  }
  return { SNTP, made };
}
