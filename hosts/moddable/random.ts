/**
 * A seeded generator for hosts whose Math.random repeats: XS's Math.random is C rand(), which Moddable's desktop
 * simulators (lin, mac) never seed, so every run would draw the same backoff jitter and WebSocket masks. On
 * ESP32/ESP8266 XS reads the hardware generator and Math.random is the right source. Not for keys or secrets.
 *
 *   const random = seededRandom(Date.now());   // uniform in [0, 1)
 */
export function seededRandom(seed: number): () => number {
  // sfc32 (Chris Doty-Humphrey's small fast counting generator), its four words filled from the seed by splitmix32
  let s = seed >>> 0;
  const next32 = (): number => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
    return (z ^ (z >>> 15)) >>> 0;
  };
  let a = next32(),
    b = next32(),
    c = next32(),
    d = next32();
  const draw = (): number => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = ((c << 21) | (c >>> 11)) >>> 0;
    c = (c + t) >>> 0;
    return t / 4294967296;
  };
  for (let i = 0; i < 12; i++) draw();
  return draw;
}
