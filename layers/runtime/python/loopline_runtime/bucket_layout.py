"""Where things live in the artifact bucket: the one home of its key layout, and of who may read and write what.

    incoming/<file>.csv                      uploads (S3 notifies the ingest function)
    quarantine/<time>-<sha>/<file>           rejected uploads + reason.json
    datasets/<version>/                      data.csv + manifest.json of a validated dataset version
    datasets/_index/<time>_<version>         the arrival order of dataset versions
    models/<version>/                        artifact, manifest, holdout.csv, evaluation.json, measured/<batch>.json
    models/_trained/, models/_fingerprints/  challengers registered / gated per training data
    models/_lease/training.json              the one-training-run lease
    models/_training-jobs/<job>/             a SageMaker training job's result.json and output/
    registry/champion.json                   the champion pointer
    registry/history/                        one record per promotion
    monitoring/<time>-<dataset version>.json one report per monitoring run
    monitoring/live/<time>.json              one report per live drift measurement of the captured inputs
    capture/predictions/year=/month=/day=/hour=/   captured predictions (Firehose; loopline_runtime.capture)
    incoming/labels/<file>.csv               late labels `request_id,<target>` (ingest joins them to captures)
    labels/joined/<time>-<sha>.csv           the joined batch (captured inputs + label) ingest turns into a dataset
    labels/reports/<time>-<sha>/             report.json and unmatched.csv of each labels file

Every reader and writer builds keys from here; template.yaml's IAM policies are checked against `ROLE_ACCESS` by
tests/unit/test_bucket_layout_iam.py and enforced on the emulator (infra/loopline/emulator/iam_enforcement.py).
Keys that sort by time carry a UTC timestamp in `KEY_TIME_FORMAT` (sortable as text, microseconds kept so two
writes in one second stay distinct).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

INCOMING_PREFIX = "incoming/"
QUARANTINE_PREFIX = "quarantine/"
DATASETS_PREFIX = "datasets/"
DATASET_INDEX_PREFIX = f"{DATASETS_PREFIX}_index/"
MODELS_PREFIX = "models/"
# models/_trained/<fingerprint>: a challenger was registered for this data (written by the train step); one whose
# fingerprint was never gated is handed to the gate again instead of being retrained
TRAINED_PREFIX = f"{MODELS_PREFIX}_trained/"
# models/_fingerprints/<fingerprint>: the gate decided on a model trained on exactly this data (written by the gate)
FINGERPRINT_PREFIX = f"{MODELS_PREFIX}_fingerprints/"
# held by the execution that is training; taken over only when its holder is no longer running
TRAINING_LEASE_KEY = f"{MODELS_PREFIX}_lease/training.json"
# models/_training-jobs/<job name>/: a SageMaker training job's result.json (the train step's output, read back by
# the state machine) and the output/model.tar.gz SageMaker uploads from /opt/ml/model (empty: the model itself is
# registered under models/<version>/ as the TrainFunction does)
TRAINING_JOBS_PREFIX = f"{MODELS_PREFIX}_training-jobs/"
# one marker per (champion, batch), models/<champion>/measured/<dataset version>.json: a redelivered upload or a
# retried invoke does not measure the batch twice
MEASURED_FOLDER = "measured/"
REGISTRY_PREFIX = "registry/"
CHAMPION_KEY = f"{REGISTRY_PREFIX}champion.json"
HISTORY_PREFIX = f"{REGISTRY_PREFIX}history/"
SHADOW_KEY = f"{REGISTRY_PREFIX}shadow.json"  # the challenger in shadow (the predict function scores it too)
MONITORING_PREFIX = "monitoring/"
# batch scoring (keys within these: loopline_runtime.batch_layout)
BATCH_PREFIX = "batch/"
BATCH_INCOMING_PREFIX = f"{BATCH_PREFIX}incoming/"
BATCH_RUNS_PREFIX = f"{BATCH_PREFIX}runs/"
BATCH_MAP_RESULTS_PREFIX = f"{BATCH_PREFIX}map-results/"
PREDICTIONS_PREFIX = "predictions/"
# written by Firehose (template.yaml CaptureDeliveryRole), the only writer the bucket policy allows there
CAPTURE_PREFIX = "capture/"
CAPTURE_PREDICTIONS_PREFIX = f"{CAPTURE_PREFIX}predictions/"
LABELS_INCOMING_PREFIX = f"{INCOMING_PREFIX}labels/"
LABELS_PREFIX = "labels/"
LABELS_JOINED_PREFIX = f"{LABELS_PREFIX}joined/"
LABELS_REPORTS_PREFIX = f"{LABELS_PREFIX}reports/"
# live labeled rows a shadow and the champion both scored: labels/shadow/<shadow version>/<run>.jsonl
LABELS_SHADOW_PREFIX = f"{LABELS_PREFIX}shadow/"
LIVE_MONITORING_PREFIX = f"{MONITORING_PREFIX}live/"

KEY_TIME_FORMAT = "%Y%m%dT%H%M%S%fZ"


def dataset_prefix(version: str) -> str:
    """datasets/<version>/"""
    return f"{DATASETS_PREFIX}{version}/"


def model_prefix(version: str) -> str:
    """models/<version>/"""
    return f"{MODELS_PREFIX}{version}/"


def training_job_result_key(job_name: str) -> str:
    """models/_training-jobs/<job name>/result.json"""
    return f"{TRAINING_JOBS_PREFIX}{job_name}/result.json"


def capture_hour_prefix(moment: datetime) -> str:
    """capture/predictions/year=YYYY/month=MM/day=DD/hour=HH/ of the hour `moment` is in (UTC): the partition
    Firehose writes a capture arriving then (template.yaml CaptureDeliveryStream's Prefix)."""
    utc = moment.astimezone(UTC)
    return f"{CAPTURE_PREDICTIONS_PREFIX}year={utc:%Y}/month={utc:%m}/day={utc:%d}/hour={utc:%H}/"


def key_time(moment: datetime) -> str:
    """`moment` as it appears in a key (UTC)."""
    return moment.astimezone(UTC).strftime(KEY_TIME_FORMAT)


def parse_key_time(stamp: str) -> datetime:
    """The UTC moment of a `key_time` stamp."""
    return datetime.strptime(stamp, KEY_TIME_FORMAT).replace(tzinfo=UTC)


@dataclass(frozen=True)
class Access:
    """The top-level prefixes a role may read (s3:GetObject) and write (s3:PutObject) in the artifact bucket."""

    reads: frozenset[str] = frozenset()
    writes: frozenset[str] = frozenset()


# where people (and the CLI) upload: the only prefixes the bucket policy lets any principal write; every prefix a
# role of ROLE_ACCESS writes is denied to every other principal (template.yaml ArtifactBucketPolicy)
UPLOAD_PREFIXES = frozenset({INCOMING_PREFIX, BATCH_INCOMING_PREFIX})


def writers() -> dict[str, frozenset[str]]:
    """Each prefix a role writes, and the roles (logical ids) that write it: the bucket policy's writer table."""
    table: dict[str, set[str]] = {}
    for owner, access in ROLE_ACCESS.items():
        for prefix in access.writes:
            table.setdefault(prefix, set()).add(owner)
    for prefix, owner in SERVICE_WRITERS.items():
        table.setdefault(prefix, set()).add(owner)
    return {prefix: frozenset(owners) for prefix, owners in table.items()}


# prefixes an AWS service writes with a role of its own (template.yaml `<owner>Role`): Firehose, the captures
# and SageMaker's training jobs (TrainingJobRole: the train step registers challengers under models/, as
# TrainFunction does, and SageMaker uploads the job's output under models/_training-jobs/)
SERVICE_WRITERS: dict[str, str] = {CAPTURE_PREFIX: "CaptureDelivery", MODELS_PREFIX: "TrainingJob"}

# what each role of template.yaml (by the logical id of its function or state machine) may read and write
ROLE_ACCESS: dict[str, Access] = {
    "IngestFunction": Access(
        reads=frozenset({INCOMING_PREFIX, DATASETS_PREFIX, REGISTRY_PREFIX, MODELS_PREFIX, CAPTURE_PREFIX,
                         LABELS_PREFIX}),
        writes=frozenset({QUARANTINE_PREFIX, DATASETS_PREFIX, LABELS_PREFIX}),
    ),
    "TrainFunction": Access(
        reads=frozenset({DATASETS_PREFIX, MODELS_PREFIX, REGISTRY_PREFIX}),
        writes=frozenset({MODELS_PREFIX}),
    ),
    "EvaluateFunction": Access(
        reads=frozenset({MODELS_PREFIX, REGISTRY_PREFIX, LABELS_PREFIX}),  # labels: a shadow's live labeled rows
        writes=frozenset({MODELS_PREFIX, REGISTRY_PREFIX}),
    ),
    "MonitorFunction": Access(
        reads=frozenset({DATASETS_PREFIX, MODELS_PREFIX, REGISTRY_PREFIX, CAPTURE_PREFIX}),
        writes=frozenset({MODELS_PREFIX, MONITORING_PREFIX}),
    ),
    "PredictFunction": Access(reads=frozenset({MODELS_PREFIX, REGISTRY_PREFIX})),
    "RollbackFunction": Access(),  # starts the rollback state machine; the bucket is the evaluate function's
    "TrainingStateMachine": Access(),
    "RollbackStateMachine": Access(),
    "BatchFunction": Access(
        reads=frozenset({BATCH_PREFIX, MODELS_PREFIX, REGISTRY_PREFIX}),
        writes=frozenset({BATCH_RUNS_PREFIX, PREDICTIONS_PREFIX}),
    ),
    "BatchScoringStateMachine": Access(reads=frozenset({BATCH_MAP_RESULTS_PREFIX}),
                                       writes=frozenset({BATCH_MAP_RESULTS_PREFIX})),
}
