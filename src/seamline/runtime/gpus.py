"""Common GPUs and their memory, so a plan can say ``--gpu H100`` instead of a byte count.

The figures are the nominal HBM/GDDR capacity as the vendor states it, in GiB. Vendors write
"80 GB", but the memory is binary: an H100's 80 GB is five 16 GiB HBM3 stacks, and an H200's
141 GB is 141 GiB (torch reports about 139.8 GiB on one). What torch reports as
``total_memory``, and what vLLM multiplies by ``gpu_memory_utilization``, is slightly less
than nominal (the driver and ECC keep some): an H100 80GB reports about 79.2 GiB. Pass the
exact figure (``79.18GiB``) when you have it.

A size may be given instead of a name: ``80``, ``80GB``, ``80GiB`` and ``24.5`` all mean GiB
(2**30 bytes). "GB" is read as GiB on purpose, because that is what GPU vendors mean by it:
reading ``80GB`` as 80 * 10**9 bytes would make it 7% smaller than the H100 it describes.
"""

from __future__ import annotations

import re

from seamline.core.errors import InvalidInput

GIB = 2**30

# Nominal memory in GiB, by canonical name (vendor datasheets).
GPU_MEMORY_GIB: dict[str, float] = {
    "H100-80GB": 80,  # SXM and PCIe
    "H100-94GB": 94,  # H100 NVL
    "H200": 141,
    "H20": 96,
    "B200": 180,  # HGX B200 datasheet; early announcements said 192
    "GB200": 186,
    "A100-80GB": 80,
    "A100-40GB": 40,
    "L40S": 48,
    "L40": 48,
    "L4": 24,
    "A10G": 24,  # AWS g5
    "A10": 24,
    "T4": 16,
    "V100-32GB": 32,
    "V100-16GB": 16,
    "A6000": 48,
    "RTX6000-ADA": 48,
    "RTX4090": 24,
    "RTX3090": 24,
    "RTX5090": 32,
    "MI300X": 192,
    "MI325X": 256,
}

# Other spellings people use for the same cards.
ALIASES: dict[str, str] = {
    "H100": "H100-80GB",
    "H100-SXM": "H100-80GB",
    "H100-PCIE": "H100-80GB",
    "H100-NVL": "H100-94GB",
    "H200-141GB": "H200",
    "A100": "A100-80GB",
    "A100-SXM": "A100-80GB",
    "B200-180GB": "B200",
    "L40S-48GB": "L40S",
    "L4-24GB": "L4",
    "A10G-24GB": "A10G",
    "T4-16GB": "T4",
    "V100": "V100-32GB",
    "RTX-4090": "RTX4090",
    "RTX-3090": "RTX3090",
    "RTX-5090": "RTX5090",
    "MI300X-192GB": "MI300X",
}

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(gib|gb|g)?$", re.IGNORECASE)


def gpu_memory_bytes(name_or_size: str) -> int:
    """The memory of one GPU in bytes, from a name in the table (any case, ``nvidia-``
    prefix, spaces or underscores allowed) or a size in GiB (``80``, ``80GB``, ``24GiB``).

    Raises ``InvalidInput`` for an unknown name, listing the known ones.
    """
    text = name_or_size.strip()
    size = _SIZE.match(text)
    if size:
        gib = float(size.group(1))
        if gib <= 0:
            raise InvalidInput(f"GPU memory must be positive, got {text!r}")
        return int(gib * GIB)
    name = _canonical(text)
    if name not in GPU_MEMORY_GIB:
        known = ", ".join(sorted(GPU_MEMORY_GIB))
        raise InvalidInput(f"unknown GPU {text!r}: give a size in GiB (e.g. 80) or one of {known}")
    return int(GPU_MEMORY_GIB[name] * GIB)


def _canonical(text: str) -> str:
    name = re.sub(r"[\s_]+", "-", text.upper())
    name = name.removeprefix("NVIDIA-").removeprefix("AMD-").removeprefix("INSTINCT-")
    return ALIASES.get(name, name)
