#!/usr/bin/env bash
# Checks on a real GPU machine, one section after another (append new sections at the end).
#   bash scripts/gpu_check.sh            (from the repository root; PYTHON=/path/to/python to pick one)
# Fails at once, saying so, on a machine without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" WANDB_MODE=offline WANDB_SILENT=true HYDRA_FULL_ERROR=1
OUT="${OUT:-$(mktemp -d /tmp/gpu_check.XXXXXX)}"

echo "== GPUs"
N_GPUS=$("$PYTHON" -c "import torch; print(torch.cuda.device_count())") \
  || { echo "gpu_check: $PYTHON cannot import torch: set PYTHON to the environment's python." >&2; exit 1; }
if [ "$N_GPUS" -lt 1 ]; then
  echo "gpu_check: no GPU here (torch sees $N_GPUS CUDA devices): run this script on a GPU machine." >&2
  exit 1
fi
nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader || true
echo "torch sees $N_GPUS GPU(s); outputs in $OUT"

echo "== 4-job sweep with hydra/launcher=gpus: the device each job used and its step rate"
"$PYTHON" -m ganlab.train -m hydra/launcher=gpus trainer=gpu seed=0,1,2,3 logger=none \
  trainer.max_steps=2000 trainer.enable_progress_bar=false sample_every=0 callbacks.checkpoint.every=0 \
  model.generator.width=256 model.discriminator.width=256 hydra.sweep.dir="$OUT/gpus" > "$OUT/gpus.log" 2>&1 \
  || { tail -40 "$OUT/gpus.log"; exit 1; }
"$PYTHON" - "$OUT/gpus" <<'PY'
import json, sys
from pathlib import Path

sweep = Path(sys.argv[1])
jobs = {e["job"]: e for e in map(json.loads, (sweep / "gpus_launcher.jsonl").read_text().splitlines())}
print(f"{'job':>3}  {'status':9}  {'device':30}  {'visible':8}  {'g_steps':>7}  {'steps/s':>8}  {'start':>6}  {'end':>6}")
t0 = min(e["start"] for e in jobs.values())
for idx, entry in sorted(jobs.items()):
    s = json.loads((sweep / str(idx) / "summary.json").read_text())
    rate = s["g_steps"] / s["wall_s"] if s["wall_s"] else float("nan")  # set-up included
    print(f"{idx:>3}  {s['status']:9}  {s['device']:30}  {','.join(s['visible_devices'] or []):8}  "
          f"{s['g_steps']:>7}  {rate:8.1f}  {entry['start'] - t0:6.1f}  {entry['end'] - t0:6.1f}")
visible = [tuple(json.loads((sweep / str(i) / "summary.json").read_text())["visible_devices"]) for i in jobs]
print("distinct device groups used:", len(set(visible)))
PY

echo "== forkserver: a process forked after its server imported torch sees the GPUs its CUDA_VISIBLE_DEVICES names"
cat > "$OUT/forkcheck.py" <<'PY'
import os
import sys


def visible(ids, conn):
    """In a fork of the gpus launcher's server: set CUDA_VISIBLE_DEVICES, then ask CUDA (initialising it)."""
    os.environ["CUDA_VISIBLE_DEVICES"] = ids
    import torch

    uuids = [str(torch.cuda.get_device_properties(i).uuid) for i in range(torch.cuda.device_count())]
    conn.send((torch.cuda.is_available(), uuids))


if __name__ == "__main__":
    from hydra_plugins.ganlab_gpus.gpus_launcher import _context

    context, n = _context("forkserver"), int(sys.argv[1])
    seen = {}
    for ids in ["", "0", *([f"{n - 1}"] if n > 1 else []), ",".join(map(str, range(n)))]:
        receive, send = context.Pipe(duplex=False)
        process = context.Process(target=visible, args=(ids, send))
        process.start()
        send.close()
        available, uuids = receive.recv()
        process.join()
        seen[ids] = uuids
        print(f"CUDA_VISIBLE_DEVICES={ids!r:10} -> available {available}, {len(uuids)} GPU(s): {uuids}")
        assert len(uuids) == len([i for i in ids.split(",") if i]), "a forked process did not honour the variable"
    if n > 1:
        assert seen[f"{n - 1}"] != seen["0"] and seen[f"{n - 1}"][0] == seen[",".join(map(str, range(n)))][-1]
    print("ok: each forked process saw exactly the GPUs it was given")
PY
"$PYTHON" "$OUT/forkcheck.py" "$N_GPUS"

echo "== devices_per_job=2: each job a DDP run on its 2 GPUs (needs 2 GPUs)"
if [ "$N_GPUS" -lt 2 ]; then
  echo "skipped: $N_GPUS GPU here"
else
  "$PYTHON" -m ganlab.train -m hydra/launcher=gpus hydra.launcher.devices_per_job=2 trainer=gpu trainer.devices=2 \
    trainer.strategy=ddp seed=0,1 logger=none trainer.max_steps=500 trainer.enable_progress_bar=false sample_every=0 \
    callbacks.checkpoint.every=0 hydra.sweep.dir="$OUT/ddp" > "$OUT/ddp.log" 2>&1 || { tail -40 "$OUT/ddp.log"; exit 1; }
  "$PYTHON" - "$OUT/ddp" <<'PY'
import json, sys
from pathlib import Path

sweep = Path(sys.argv[1])
for entry in map(json.loads, (sweep / "gpus_launcher.jsonl").read_text().splitlines()):
    s = json.loads((sweep / str(entry["job"]) / "summary.json").read_text())
    devices = ", ".join(f"rank {p['rank']}: {p['device']}" for p in s["processes"])
    print(f"job {entry['job']}: {s['status']}, GPUs {','.join(entry['gpus'])}, world_size {s['world_size']}, "
          f"replica_max_abs_diff {s['replica_max_abs_diff']}, {s['g_steps'] / s['wall_s']:.1f} steps/s; {devices}")
    assert s["status"] == "completed" and s["world_size"] == 2 and s["replica_max_abs_diff"] == 0.0
PY
fi

echo "== bench on cuda, logger=none: fp32, bf16-mixed, 16-mixed (autocast + gradient scaler) and compile=true"
# ms per generator step, hand loop vs ganlab at the same precision (README: Mixed precision and compilation).
# 8 bench processes per precision (2 cases x hand/ganlab x 2 run lengths); compiled: resnet only, 4 + 2 warm-ups
for opts in "--precision 32-true" "--precision bf16-mixed" "--precision 16-mixed" \
            "--precision 32-true --compile --cases resnet_hinge"; do
  # shellcheck disable=SC2086  # $opts is a list of options
  "$PYTHON" scripts/bench.py --device cuda --cases dcgan_ns,resnet_hinge --repeats 1 --loggers none --no-cli \
    $opts > "$OUT/bench_amp.log" 2>&1 || { tail -40 "$OUT/bench_amp.log"; exit 1; }
  grep -v "^load:" "$OUT/bench_amp.log" | sed "s/^/[$opts] /"
done

echo "== host-device synchronisations in steps that log nothing (promise: none)"
"$PYTHON" scripts/sync_check.py 2>&1 | grep -v "^generator steps" || { echo "sync_check: synchronising calls found (above)"; exit 1; }
