/**
 * Our own declaration of the SDK's TLS socket, examples/io/tcp/tlssocket/tlssocket.js, which the SDK's manifest
 * maps to "embedded:io/socket/tcp/tls". The SDK ships a typing for it (typings/embedded_io/socket/tls.d.ts), but
 * mcconfig maps that file to the specifier "embedded:io/socket/tls", so a build never sees it and strict tsc
 * (TypeScript 6) refuses the import (TS7016). Referenced from host.ts; only what host.ts uses.
 */
declare module "embedded:io/socket/tcp/tls" {
  export default class TLSSocket {
    /**
     * options: address and port (of the TCP socket), host (SNI, and the name the certificate must carry),
     * secure (certificate, clientCertificates, clientKey, verify, applicationLayerProtocolNegotiation,
     * tls_max_fragment_length, serverName, trace), TCP: {io: a TCP socket class}, onReadable, onWritable, onError.
     */
    constructor(options: Record<string, unknown>);
    read(count?: number | ArrayBufferLike): ArrayBuffer | undefined;
    write(buffer: ArrayBufferLike | ArrayBufferView): number;
    close(): void;
  }
}
