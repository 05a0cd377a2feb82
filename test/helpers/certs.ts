// Test PKI for TLS tests, made with the `openssl` CLI (Debian package `openssl`, installed by .ci/run).
//
//   ca            "uiot test CA", self-signed, signs everything below except `unknownClient`
//   server        CN=localhost, SAN DNS:localhost + IP:127.0.0.1, serverAuth   -> the good broker certificate
//   wrongHost     CN=wrong.example.com, SAN DNS:wrong.example.com only       -> host name mismatch
//   expired       like `server`, but valid only in January 2020               -> expired
//   client        CN=uiot-test-client, clientAuth                             -> mutual TLS
//   unknownCa     another self-signed CA that nobody trusts
//   unknownClient CN=uiot-rogue-client, clientAuth, signed by unknownCa       -> rejected client certificate
//
// RSA 2048 keys (what every TLS stack, the device's included, speaks); private keys are unencrypted PKCS#8 PEM.
// Generated once per test run: workers of one vitest run share a directory keyed by the vitest main process
// (our parent), created atomically by rename, so parallel workers never see a half-written set. Sets of runs
// whose process is gone are removed by the next run.

import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Bump when the set of certificates changes, so a stale cache is not reused. */
const VERSION = 1;

export interface CertPair {
  /** Path of the PEM certificate. */
  certFile: string;
  /** Path of the PEM (PKCS#8) private key. */
  keyFile: string;
  /** The PEM certificate text. */
  cert: string;
  /** The PEM private key text. */
  key: string;
}

export interface TestCerts {
  dir: string;
  ca: CertPair & { /** The CA certificate in DER, as a device wants it. */ der: Uint8Array };
  /** `chain`: the leaf then the CA, what a real server sends (the SDK's TLS checks the host name only on a chain). */
  server: CertPair & { chain: string };
  wrongHost: CertPair;
  expired: CertPair;
  client: CertPair;
  unknownCa: CertPair;
  unknownClient: CertPair;
}

const NAMES = ["ca", "server", "wrongHost", "expired", "client", "unknownCa", "unknownClient"] as const;

const EXTENSIONS = `
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:localhost, IP:127.0.0.1

[wrongHost]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:wrong.example.com

[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`;

/** `openssl ca` wants a little database; it lets us set any validity period (x509 -req cannot in OpenSSL 3.0). */
function caConfig(dir: string): string {
  return `
[ca]
default_ca = test_ca
[test_ca]
dir = ${dir}
database = ${dir}/index.txt
new_certs_dir = ${dir}/issued
serial = ${dir}/serial
default_md = sha256
policy = anything
unique_subject = no
email_in_dn = no
[anything]
commonName = supplied
`;
}

function stamp(date: Date): string {
  // openssl ca -startdate/-enddate take YYYYMMDDHHMMSSZ
  return date.toISOString().replace(/[-:T]/g, "").slice(0, 14) + "Z";
}

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run("openssl", args, { cwd });
  } catch (error) {
    const e = error as { code?: string; stderr?: string; message: string };
    if (e.code === "ENOENT") throw new Error("certs: the `openssl` CLI is missing (apt-get install openssl)");
    throw new Error(`certs: openssl ${args.join(" ")} failed: ${e.stderr ?? e.message}`);
  }
}

async function selfSigned(dir: string, name: string, cn: string): Promise<void> {
  await openssl(
    [
      "req",
      "-x509",
      "-new",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-sha256",
      "-days",
      "3650",
      "-subj",
      `/CN=${cn}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.crt`,
    ],
    dir,
  );
}

async function request(dir: string, name: string, cn: string): Promise<void> {
  await openssl(
    [
      "req",
      "-new",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-subj",
      `/CN=${cn}`,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
    ],
    dir,
  );
}

/** Signs NAME.csr with CA.crt/CA.key using extension section `ext`; one at a time (shared index.txt/serial). */
async function sign(dir: string, name: string, ca: string, ext: string, start: Date, end: Date): Promise<void> {
  const caDir = join(dir, `${ca}-db`);
  if (!existsSync(caDir)) {
    mkdirSync(join(caDir, "issued"), { recursive: true });
    writeFileSync(join(caDir, "index.txt"), "");
    writeFileSync(join(caDir, "serial"), `${Date.now().toString(16).padStart(16, "0")}\n`);
    writeFileSync(join(caDir, "ca.cnf"), caConfig(caDir));
  }
  await openssl(
    [
      "ca",
      "-batch",
      "-notext",
      "-config",
      join(caDir, "ca.cnf"),
      "-cert",
      `${ca}.crt`,
      "-keyfile",
      `${ca}.key`,
      "-in",
      `${name}.csr`,
      "-out",
      `${name}.crt`,
      "-extfile",
      "extensions.cnf",
      "-extensions",
      ext,
      "-startdate",
      stamp(start),
      "-enddate",
      stamp(end),
    ],
    dir,
  );
}

async function generate(dir: string): Promise<void> {
  writeFileSync(join(dir, "extensions.cnf"), EXTENSIONS);
  // Key generation is the slow part: run it in parallel.
  await Promise.all([
    selfSigned(dir, "ca", "uiot test CA"),
    selfSigned(dir, "unknownCa", "uiot unknown CA"),
    request(dir, "server", "localhost"),
    request(dir, "wrongHost", "wrong.example.com"),
    request(dir, "expired", "localhost"),
    request(dir, "client", "uiot-test-client"),
    request(dir, "unknownClient", "uiot-rogue-client"),
  ]);
  const day = 24 * 3600 * 1000;
  const now = Date.now();
  const from = new Date(now - day); // a day of slack for clock skew
  const to = new Date(now + 3650 * day);
  await sign(dir, "server", "ca", "server", from, to);
  await sign(dir, "wrongHost", "ca", "wrongHost", from, to);
  await sign(dir, "expired", "ca", "server", new Date("2020-01-01T00:00:00Z"), new Date("2020-01-31T00:00:00Z"));
  await sign(dir, "client", "ca", "client", from, to);
  await sign(dir, "unknownClient", "unknownCa", "client", from, to);
  writeFileSync(join(dir, "complete"), "");
}

function load(dir: string): TestCerts {
  const pair = (name: string): CertPair => {
    const certFile = join(dir, `${name}.crt`);
    const keyFile = join(dir, `${name}.key`);
    return { certFile, keyFile, cert: readFileSync(certFile, "utf8"), key: readFileSync(keyFile, "utf8") };
  };
  const ca = pair("ca");
  return {
    dir,
    ca: { ...ca, der: new Uint8Array(new X509Certificate(ca.cert).raw) },
    server: { ...pair("server"), chain: pair("server").cert + ca.cert },
    wrongHost: pair("wrongHost"),
    expired: pair("expired"),
    client: pair("client"),
    unknownCa: pair("unknownCa"),
    unknownClient: pair("unknownClient"),
  };
}

function usable(dir: string): boolean {
  if (!existsSync(join(dir, "complete"))) return false;
  if (!NAMES.every((n) => existsSync(join(dir, `${n}.crt`)) && existsSync(join(dir, `${n}.key`)))) return false;
  const ca = new X509Certificate(readFileSync(join(dir, "ca.crt")));
  const now = Date.now();
  return Date.parse(ca.validFrom) <= now && now < Date.parse(ca.validTo);
}

const ROOT = join(tmpdir(), "uiot-test-certs");

/** Removes the cert sets (and half-made ones) of earlier runs whose process is gone. */
function prune(): void {
  try {
    for (const name of readdirSync(ROOT)) {
      const path = join(ROOT, name);
      const pid = Number(/-run(\d+)/.exec(name)?.[1]);
      let gone = false;
      if (!(Number.isInteger(pid) && pid > 0)) {
        gone = Date.now() - statSync(path).mtimeMs > 24 * 3600 * 1000; // not ours to judge by pid: by age
      } else if (pid !== process.ppid) {
        try {
          process.kill(pid, 0);
        } catch (error) {
          gone = (error as NodeJS.ErrnoException).code === "ESRCH";
        }
      }
      if (gone) rmSync(path, { recursive: true, force: true });
    }
  } catch {
    // best effort
  }
}

let cached: Promise<TestCerts> | undefined;

/**
 * The test certificates; generated on first use in this test run (≈1 s), then shared by every test file and worker.
 * `dir` overrides the cache location (a fresh empty directory gets a fresh set).
 */
export function getTestCerts(dir?: string): Promise<TestCerts> {
  if (dir !== undefined) return makeIn(dir);
  cached ??= makeIn(join(ROOT, `v${VERSION}-run${process.ppid}`)).catch((error: unknown) => {
    cached = undefined;
    throw error;
  });
  return cached;
}

async function makeIn(target: string): Promise<TestCerts> {
  if (usable(target)) return load(target);
  mkdirSync(join(target, ".."), { recursive: true });
  if (target.startsWith(ROOT)) prune();
  const work = mkdtempSync(`${target}.tmp-`);
  try {
    await generate(work);
    if (existsSync(target) && !usable(target)) rmSync(target, { recursive: true, force: true });
    try {
      renameSync(work, target); // atomic: a parallel worker either sees nothing or a complete set
    } catch {
      // another worker won the race; its set is as good as ours
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  if (!usable(target)) throw new Error(`certs: could not create a usable certificate set in ${target}`);
  return load(target);
}
