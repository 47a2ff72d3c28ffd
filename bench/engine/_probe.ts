import fs from "node:fs";
import path from "node:path";
import { initAgent, startAgent, startGateway } from "@beta9/test-utils";
import YAML from "yaml";

const gw = await startGateway();
const cfgPath = await initAgent(gw, { name: "probe" });
const token = YAML.parse(fs.readFileSync(cfgPath, "utf8")).machine.token;
const agent = await startAgent(cfgPath);
const pid = agent.proc.child.pid!;
await new Promise((r) => setTimeout(r, 6000));
const st = fs
  .readFileSync(`/proc/${pid}/status`, "utf8")
  .split("\n")
  .filter((l) => /^(VmRSS|RssAnon|RssFile|RssShmem|VmHWM|Threads)/.test(l));
console.log(st.join("\n"));
const m = await (
  await fetch(`${agent.controlUrl}/metrics`, { headers: { authorization: `Bearer ${token}` } })
).text();
console.log(
  m
    .split("\n")
    .filter(
      (l) => /heap_size_(used|total)|external_memory|heap_space_size_used/.test(l) && !l.startsWith("#"),
    )
    .join("\n"),
);
const maps = fs
  .readFileSync(`/proc/${pid}/maps`, "utf8")
  .split("\n")
  .map((l) => l.split(/\s+/)[5])
  .filter((f) => f && /\.(so|node)/.test(f));
console.log([...new Set(maps)].join("\n"));
console.log(fs.readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
await agent.proc.stop();
await gw.proc.stop();
fs.rmSync(path.dirname(cfgPath), { recursive: true, force: true });
fs.rmSync(gw.dataDir, { recursive: true, force: true });
