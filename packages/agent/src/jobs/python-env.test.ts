import { describe, expect, it } from "vitest";
import { packageSourceArgs } from "./python-env.ts";

// What uv is told of the owner's package sources (jobs.package_index, jobs.find_links).
describe("package sources", () => {
  it("PyPI unless the owner names an index; none: only the find-links", () => {
    expect(packageSourceArgs()).toEqual([]);
    expect(packageSourceArgs({ index: "http://10.0.0.1:8000/simple" })).toEqual([
      "--default-index",
      "http://10.0.0.1:8000/simple",
    ]);
    expect(packageSourceArgs({ index: "none", findLinks: ["/srv/wheels", "http://10.0.0.1/w/"] })).toEqual([
      "--no-index",
      "--find-links",
      "/srv/wheels",
      "--find-links",
      "http://10.0.0.1/w/",
    ]);
  });
});
