/**
 * nginx as a plain reverse proxy in front of the canned upstream, for bench/gateway/run.ts: one
 * worker, no buffering either way, HTTP/1.1 keep-alive to the upstream, no access log.
 */
import type { ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { benchDir, freePort, HOST, spawnChild, stopChild, untilAnswering } from "./common.ts";

export const NGINX = "/usr/sbin/nginx";

/** The running nginx, or why there is none. */
export async function startNginx(
  upstreamPort: number,
): Promise<{ proc: ChildProcess; port: number } | string> {
  if (!fs.existsSync(NGINX)) return `${NGINX} not found (apt-get install -y nginx)`;
  const dir = benchDir("b9-bench-nginx-");
  const port = await freePort();
  const conf = path.join(dir, "nginx.conf");
  const t = (n: string) => path.join(dir, n);
  fs.writeFileSync(
    conf,
    `worker_processes 1;
error_log ${t("error.log")} warn;
pid ${t("nginx.pid")};
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${t("cb")}; proxy_temp_path ${t("px")}; fastcgi_temp_path ${t("fc")};
  uwsgi_temp_path ${t("uw")}; scgi_temp_path ${t("sc")};
  keepalive_requests 1000000;
  upstream canned { server ${HOST}:${upstreamPort}; keepalive 128; keepalive_requests 1000000; }
  server {
    listen ${HOST}:${port};
    location / {
      proxy_pass http://canned;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
    }
  }
}
`,
  );
  const proc = spawnChild(NGINX, ["-p", dir, "-c", conf, "-g", "daemon off;"]);
  let stderr = "";
  proc.stderr!.on("data", (b: Buffer) => {
    stderr += b.toString();
  });
  try {
    await untilAnswering(`http://${HOST}:${port}/health`, {
      procs: [proc],
      name: "nginx",
      said: () => stderr,
      timeoutMs: 10_000,
    });
  } catch (e) {
    await stopChild(proc);
    return `nginx did not start: ${(e as Error).message}`;
  }
  return { proc, port };
}
