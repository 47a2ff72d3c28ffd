import { execFileSync, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { tempDir, waitFor } from "./processes.ts";

export interface TestCertificates {
  /** The test CA's certificate: what clients are given to trust (gateway.ca_file, --ca-file). */
  caFile: string;
  /** A server certificate the CA signed, for 127.0.0.1 and localhost, and its key. */
  certFile: string;
  keyFile: string;
}

/** A fresh CA and a server certificate it signed, made with the real openssl (Debian's `openssl`). */
export function makeCertificates(dir = tempDir("b9-tls-")): TestCertificates {
  const ssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  ssl(
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "2",
    "-subj",
    "/CN=beta9 test CA",
  );
  ssl("req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost");
  writeFileSync(join(dir, "server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  ssl(
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.crt",
    "-days",
    "2",
    "-extfile",
    "server.ext",
  );
  return { caFile: join(dir, "ca.crt"), certFile: join(dir, "server.crt"), keyFile: join(dir, "server.key") };
}

/** A port nothing listens on now (the kernel's pick); for servers that cannot be told port 0. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

export interface Nginx {
  /** Where clients reach it: https://127.0.0.1:PORT */
  url: string;
  stop(): Promise<void>;
}

/**
 * The real nginx (Debian's) in a folder of its own, `http(dir)` as the body of its http block (the
 * temp paths a non-root-prefix nginx needs come first), until `ready()`; stop() ends it.
 */
export async function runNginx(
  http: (dir: string) => string,
  ready: () => Promise<boolean>,
  what: string,
): Promise<{ dir: string; stop(): Promise<void> }> {
  const dir = tempDir("b9-nginx-");
  writeFileSync(
    join(dir, "nginx.conf"),
    `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
${process.getuid?.() === 0 ? "user root;" : ""}
events { worker_connections 256; }
http {
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${http(dir)}
}
`,
  );
  const nginx = spawn(nginxBinary(), ["-p", dir, "-c", join(dir, "nginx.conf"), "-g", "daemon off;"], {
    stdio: "pipe",
  });
  let output = "";
  nginx.stderr.on("data", (b: Buffer) => {
    output += b.toString();
  });
  const exited = new Promise<void>((r) => nginx.once("exit", () => r()));
  await waitFor(
    async () => {
      if (nginx.exitCode !== null) throw new Error(`nginx exited (${nginx.exitCode}): ${output}`);
      return ready();
    },
    { what },
  );
  return {
    dir,
    async stop() {
      if (nginx.exitCode === null) nginx.kill("SIGTERM");
      await exited;
    },
  };
}

/**
 * The real nginx (Debian's), terminating TLS on 127.0.0.1 and proxying to `upstream` the way the
 * README tells operators to: upgrades passed through, X-Forwarded-For appended, no buffering.
 */
export async function startNginx(opts: { upstream: string; certs: TestCertificates }): Promise<Nginx> {
  const port = await freePort();
  const nginx = await runNginx(
    () => `  access_log off;
  map $http_upgrade $connection_upgrade { default upgrade; "" close; }
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${opts.certs.certFile};
    ssl_certificate_key ${opts.certs.keyFile};
    location / {
      proxy_pass ${opts.upstream};
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto https;
      proxy_buffering off;
      proxy_read_timeout 1h;
      proxy_send_timeout 1h;
    }
  }`,
    () => portTaken(port),
    `nginx to listen on ${port}`,
  );
  return { url: `https://127.0.0.1:${port}`, stop: () => nginx.stop() };
}

function portTaken(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once("error", () => resolve(true));
    probe.listen(port, "127.0.0.1", () => probe.close(() => resolve(false)));
  });
}

/** nginx from Debian lives in /usr/sbin, which a non-root PATH may lack. */
export function nginxBinary(): string {
  for (const p of ["/usr/sbin/nginx", "/usr/bin/nginx"]) {
    try {
      execFileSync(p, ["-v"], { stdio: "pipe" });
      return p;
    } catch {}
  }
  return "nginx";
}
