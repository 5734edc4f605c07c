#!/usr/bin/env bash
# The CPU-independence lane of `make test`: the pysot parity tests again under kernel sets
# other than this machine's own (the main lane ran them with the native one). Parity must
# hold whichever vector width the CPU has: pysot's goldens were made on an AVX2 machine, and
# users run AVX-512 desktops, AVX2 laptops and ARM Jetsons (test/data/parity/README.md).
#
#   avx2     ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2   (what an AVX2-only x86 CPU runs)
#   default  ATEN_CPU_CAPABILITY=default                        (ATen's scalar kernels)
#
# On a CPU that is not x86-64 only `default` applies. Each set prints the capability torch
# reports, so a log shows which kernels ran.
#
# Usage: tools/test_kernel_sets.sh [pytest arguments]   (PYTHON=path overrides .venv/bin/python)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"
tests=(test/test_tracker_parity.py)

kernel_sets=("default:ATEN_CPU_CAPABILITY=default")
if [ "$(uname -m)" = x86_64 ]; then
  kernel_sets=("avx2:ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2" "${kernel_sets[@]}")
fi

cd "$repo"
for entry in "${kernel_sets[@]}"; do
  name="${entry%%:*}"
  read -r -a assignments <<< "${entry#*:}"
  capability="$(env "${assignments[@]}" "$python" -c \
    'import torch; print(getattr(torch.backends.cpu, "get_cpu_capability", lambda: "unknown")())')"
  printf '[kernels] %s: %s (torch reports %s)\n' "$name" "${assignments[*]}" "$capability" >&2
  env "${assignments[@]}" "$python" -m pytest -p no:cacheprovider "${tests[@]}" "$@"
done
