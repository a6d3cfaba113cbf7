"""The SageMaker instance types a training job may run on, with their memory: what the plan step sizes a window
against (the same measured memory-per-cell rule as the TrainFunction) and what the emulator enforces on a job."""

from __future__ import annotations

# instance type -> memory (MiB), from the SageMaker pricing page's instance table (general purpose and memory
# optimised, the families a single-process scikit-learn refit uses); smallest first
INSTANCE_MEMORY_MB: dict[str, int] = {
    "ml.m5.large": 8 * 1024,
    "ml.m5.xlarge": 16 * 1024,
    "ml.m5.2xlarge": 32 * 1024,
    "ml.m5.4xlarge": 64 * 1024,
    "ml.r5.4xlarge": 128 * 1024,
    "ml.m5.12xlarge": 192 * 1024,
    "ml.r5.12xlarge": 384 * 1024,
    "ml.r5.24xlarge": 768 * 1024,
}
