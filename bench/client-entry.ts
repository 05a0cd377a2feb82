// What bench/client.ts measures of ours: the client as the Node host runs it (bundled by esbuild for the run).
export { Client } from "../src/mqtt/client";
export { tcpConnector } from "../hosts/node/tcp";
export { nodeClock } from "../hosts/node/clock";
export { nodeAlloc } from "../hosts/node/alloc";
