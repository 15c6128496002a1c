"""Half precision on the CPU only where the CPU does it natively; float32 elsewhere.

PyTorch runs bfloat16 / float16 matmuls on the CPU through oneDNN's fast kernels when the
CPU has instructions for them (AVX-512 with BF16/FP16, AMX) and through slow generic code
when it does not. Measured on a 2-core AVX2-only AMD EPYC with torch 2.13: a 512x576 by
576x1536 matmul ran at 65 GFLOPS in float32 and 1.2 in bfloat16, 50 times slower, and a
batch of 16 held-out episodes of the default model took 7.5 minutes in bf16. On a CPU with
native bf16 it is the other way round (bf16 generation ~1.6x faster than float32). So every
place that would compute in half precision on the CPU (a model's weights, the generation
copy, training autocast) asks `runnable_dtype` first: on a CPU without native support the
work runs in float32, and a warning says so once per dtype.

`AGENTWHEEL_CPU_HALF=1` keeps half precision on any CPU (to measure the slow path);
`AGENTWHEEL_CPU_HALF=0` always falls back (to test the fallback on a CPU that has it).
Storage dtypes (a checkpoint saved in bf16) are not compute and are not changed.
"""

from __future__ import annotations

import logging
import os
from functools import cache

import torch

log = logging.getLogger(__name__)

HALF_DTYPES = ("bfloat16", "float16")
OVERRIDE_VARIABLE = "AGENTWHEEL_CPU_HALF"


def cpu_has_native(dtype: str) -> bool:
    """Whether this CPU computes `dtype` natively (oneDNN's own test)."""
    if dtype == "bfloat16":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if dtype == "float16":
        return bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())
    return True


def runnable_dtype(dtype: str, device: str | torch.device) -> str:
    """`dtype`, or float32 when it is a half dtype the CPU would only emulate."""
    if dtype not in HALF_DTYPES or torch.device(device).type != "cpu":
        return dtype
    override = os.environ.get(OVERRIDE_VARIABLE)
    if override == "1" or (override != "0" and cpu_has_native(dtype)):
        return dtype
    _warn_fallback(dtype)
    return "float32"


@cache
def _warn_fallback(dtype: str) -> None:
    log.warning(
        "%s asked for on a CPU without native %s (no AVX-512 BF16/FP16 or AMX): running in "
        "float32 instead, since emulated %s is ~50x slower here (%s=1 keeps it)",
        dtype,
        dtype,
        dtype,
        OVERRIDE_VARIABLE,
    )
