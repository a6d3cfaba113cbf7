"""The artifact bucket's policy as tests meet it on the emulator, which enforces it as S3 does."""

from __future__ import annotations

from loopline.client import StackClient


def remove_bucket_policy(stack: StackClient) -> None:
    """Delete the bucket policy, as the account's administrator may: for tests of what holds even without it
    (the pins), playing a principal that could write models/ and registry/ (which the policy reserves to the
    pipeline's roles)."""
    stack.s3.delete_bucket_policy(Bucket=stack.bucket)
