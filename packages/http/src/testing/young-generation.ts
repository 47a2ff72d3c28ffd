// Run by heap.test.ts in a process of its own: allocates as a busy proxy does (answers in
// flight survive a collection or two), saying it works when argv[2] is "work", then waits; prints the
// largest young generation seen and the one left after the wait, in MB.
import v8 from "node:v8";
import { keepHeapSmall, sizeYoungGenerationByWork } from "../heap.ts";

const MB = 1024 * 1024;
const newSpace = () =>
  (v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space")?.space_size ?? 0) / MB;
const working = sizeYoungGenerationByWork(keepHeapSmall(4 * MB), {
  idleCap: 4 * MB,
  busyCap: 32 * MB,
  idleAfterMs: 300,
});
let inFlight: object[] = [];
let largest = 0;
// A fixed amount of work, whatever the machine's speed.
for (let round = 0; round < 600; round++) {
  for (let i = 0; i < 2_000; i++) inFlight.push({ i, text: `chunk ${i}` });
  if (inFlight.length > 100_000) inFlight = [];
  if (process.argv[2] === "work") working();
  largest = Math.max(largest, newSpace());
  await new Promise((r) => setImmediate(r));
}
inFlight = [];
await new Promise((r) => setTimeout(r, 2_000));
console.log(JSON.stringify({ largest, after: newSpace() }));
