// A small honest demonstration until the simulator exists: the firmware's codec encodes the packets a UIoT
// device sends first, decodes them back byte by byte, and prints both.
import { Decoder, encode, type Packet } from "../../src/mqtt/codec";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");
const psn = "abcdefghijklmnop", dsn = "thermostat-01";

const packets: Packet[] = [
  { type: 1, level: 4, clientId: `${psn}.${dsn}`, clean: true, keepalive: 300, username: `${psn}|${dsn}|1`, password: "****************" },
  { type: 8, id: 1, subscriptions: [{ topic: `/$system/${psn}/${dsn}/shadow/downstream`, qos: 1 }] },
  { type: 3, topic: `/$system/${psn}/${dsn}/shadow/upstream`, qos: 1, id: 2, retain: false, dup: false,
    payload: '{"Method":"update","State":{"Reported":{"temperature":26,"humidity":57}},"Version":0}' },
];

const decoded: Packet[] = [];
const decoder = new Decoder((p) => decoded.push(p));
for (const p of packets) {
  const bytes = encode(p);
  console.log(`${["", "CONNECT", "", "PUBLISH", "", "", "", "", "SUBSCRIBE"][p.type]} (${bytes.length} bytes)\n  ${hex(bytes)}`);
  for (let i = 0; i < bytes.length; i++) decoder.push(bytes.subarray(i, i + 1)); // one byte at a time
}
console.log(`\nDecoded back, one byte at a time: ${decoded.length} packets`);
for (const p of decoded) {
  if (p.type === 3) console.log(`  PUBLISH ${p.topic} qos=${p.qos} id=${p.id}: ${String.fromCharCode(...(p.payload as Uint8Array))}`);
  else if (p.type === 1) console.log(`  CONNECT client=${p.clientId} user=${p.username} keepalive=${p.keepalive}`);
  else if (p.type === 8) console.log(`  SUBSCRIBE ${p.subscriptions.map((s) => s.topic).join(", ")}`);
}
