"""Stands in for mlx-lm's `mlx_lm.convert`, which needs Apple Silicon (MLX). It takes the real tool's
arguments (--hf-path, --mlx-path, -q, --q-bits, --q-group-size, --dtype), refuses an output folder
that exists as the real one does, and writes what the real one writes to it: config.json (with its
"quantization" entry when -q is given), the tokenizer files and the weights (copied here, not
quantised). Each run appends its arguments as a JSON line to the file named first."""

import json
import os
import shutil
import sys


def main():
    record, args = sys.argv[1], sys.argv[2:]
    with open(record, "a") as f:
        f.write(json.dumps(args) + "\n")

    def flag(name):
        return args[args.index(name) + 1] if name in args else None

    src, out = flag("--hf-path"), flag("--mlx-path")
    if os.environ.get("FAKE_CONVERT_FAIL"):
        print("ValueError: Model type fakearch not supported.", file=sys.stderr)
        sys.exit(1)
    if os.path.exists(out):
        print(f"ValueError: Cannot save to the path {out} as it already exists.", file=sys.stderr)
        sys.exit(1)
    os.makedirs(out)
    print("[INFO] Loading", flush=True)
    with open(os.path.join(src, "config.json")) as f:
        config = json.load(f)
    if "-q" in args:
        print("[INFO] Quantizing", flush=True)
        config["quantization"] = {"group_size": int(flag("--q-group-size") or 64), "bits": int(flag("--q-bits") or 4)}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=4)
    for name in os.listdir(src):
        if name.startswith("tokenizer") or name.endswith(".safetensors") or name == "special_tokens_map.json":
            shutil.copyfile(os.path.join(src, name), os.path.join(out, name))


if __name__ == "__main__":
    main()
