"""`loopline local up`: moto in server mode + the emulator's gap fillers + the stack + the local API server."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from loopline.emulator.api_server import LocalApi, make_api_server
from loopline.emulator.lambda_invocation import LambdaRuntime
from loopline.emulator.local_access import DUMMY_SECRET, local_session
from loopline.emulator.local_stack import DeployedStack, StackCreationFailed, StackSettings, deploy_stack
from loopline.emulator.moto_patches import patched_moto
from loopline.emulator.same_origin_server import SameOriginMotoServer
from loopline.invocation import command
from loopline.operate.stack_memory import forget_stack, new_record, remember_stack, state_dir
from loopline_runtime.errors import InvalidConfig

READY_MESSAGE = "Loopline local stack is ready"
HOST = "127.0.0.1"


@dataclass(frozen=True)
class LocalUpOptions:
    """The `loopline local up` flags."""

    aws_port: int = 5000
    api_port: int = 3000
    stack_name: str = "loopline"
    template: Path = Path("template.yaml")
    config: Path = Path("pipeline.yaml")
    region: str = "us-east-1"
    ready_file: Path | None = None
    alarm_tick_seconds: float = 5.0
    verbose: bool = False


def progress(message: str) -> None:
    """A progress line on stderr (stdout carries the banner only)."""
    print(f"loopline: {message}", file=sys.stderr, flush=True)


# moto's ASL parser warns that ToleratedFailure* "currently have no effect": on this emulator they do
# (distributed_map_tolerance applies them), so the warning would tell a user something false at every start-up
_MISLEADING_LOGGERS = ("moto.stepfunctions.parser.asl.parse.preprocessor",)


def quiet_third_party_warnings() -> None:
    """Silence third-party warnings that are wrong about this emulator (errors still show)."""
    for name in _MISLEADING_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def enable_state_machine_execution(aws_endpoint_url: str) -> None:
    """Turn on moto's real ASL interpreter (off by default: executions would do nothing)."""
    request = urllib.request.Request(
        f"{aws_endpoint_url}/moto-api/config",
        data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def run_local_up(options: LocalUpOptions) -> int:
    """Run until SIGINT/SIGTERM; return the process exit code."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    if not options.verbose:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
    quiet_third_party_warnings()

    aws_endpoint_url = f"http://{HOST}:{options.aws_port}"
    api_base_url = f"http://{HOST}:{options.api_port}/"
    # moto's Step Functions executor calls Lambda/S3 at localhost:$MOTO_PORT
    os.environ["MOTO_PORT"] = str(options.aws_port)
    workdir = Path(tempfile.mkdtemp(prefix="loopline-local-"))
    runtime = LambdaRuntime(aws_endpoint_url, workdir, echo=_echo if options.verbose else None)
    with patched_moto(runtime, options.alarm_tick_seconds):
        try:
            return _serve(options, stop, runtime, aws_endpoint_url, api_base_url, workdir)
        finally:
            runtime.close()
            shutil.rmtree(workdir, ignore_errors=True)


def _serve(
    options: LocalUpOptions,
    stop: threading.Event,
    runtime: LambdaRuntime,
    aws_endpoint_url: str,
    api_base_url: str,
    workdir: Path,
) -> int:
    moto_server = SameOriginMotoServer(ip_address=HOST, port=options.aws_port, verbose=False)
    api_server = None
    remembered = False
    try:
        progress(f"starting the AWS emulator (moto) on {aws_endpoint_url}")
        moto_server.start()
        enable_state_machine_execution(aws_endpoint_url)
        session = local_session(options.region)
        settings = StackSettings(
            stack_name=options.stack_name,
            template_path=options.template.resolve(),
            config_path=options.config,
            region=options.region,
            aws_endpoint_url=aws_endpoint_url,
            api_base_url=api_base_url,
            workdir=workdir,
        )
        try:
            stack = deploy_stack(settings, session, runtime, progress)
        except InvalidConfig as exc:
            print(f"loopline: {exc}", file=sys.stderr)
            return 2
        except StackCreationFailed as exc:
            print(f"loopline: {exc}", file=sys.stderr)
            return 1
        api = LocalApi(stack.routes, session, aws_endpoint_url, stack.rest_api_id)
        api_server = make_api_server(api, HOST, options.api_port)
        threading.Thread(target=api_server.serve_forever, name="loopline-api", daemon=True).start()
        # recorded for the other commands (`loopline status` etc. find the stack without flags)
        remember_stack(new_record(options.stack_name, options.region, aws_endpoint_url, f"{api_base_url}Prod/"))
        remembered = True
        print(banner(options, aws_endpoint_url, api_base_url, stack), flush=True)
        if options.ready_file is not None:
            _write_ready_file(options.ready_file, options, aws_endpoint_url, api_base_url, stack)
        stop.wait()
        progress("stopping")
        return 0
    finally:
        if remembered:
            forget_stack(options.stack_name, os.getpid())
        if api_server is not None:
            api_server.shutdown()
        moto_server.stop()


def banner(options: LocalUpOptions, aws_endpoint_url: str, api_base_url: str, stack: DeployedStack) -> str:
    """What a user needs to drive the stack: endpoints, outputs and the environment for AWS clients."""
    width = max((len(k) for k in stack.outputs), default=0)
    outputs = "\n".join(f"  {key:<{width}}  {value}" for key, value in sorted(stack.outputs.items()))
    return (
        f"\n{READY_MESSAGE}: stack {options.stack_name} (CREATE_COMPLETE) in {options.region}\n\n"
        f"  AWS endpoint  {aws_endpoint_url}   (S3, Lambda, Step Functions, CloudWatch, EventBridge, ...)\n"
        f"  API           {api_base_url}{'Prod/'}   (send x-api-key)\n\n"
        f"Stack outputs:\n{outputs}\n\n"
        "Point any AWS client at it:\n"
        f"  export AWS_ENDPOINT_URL={aws_endpoint_url}\n"
        f"  export AWS_ACCESS_KEY_ID={DUMMY_SECRET} AWS_SECRET_ACCESS_KEY={DUMMY_SECRET}"
        f" AWS_DEFAULT_REGION={options.region}\n\n"
        f"The loopline commands find this stack while it runs (recorded in {state_dir() / 'stacks'}):\n"
        f"  {command('status')}\n"
        f"  {command('events')}        # notifications as they arrive\n\n"
        "Press Ctrl+C to stop (all state is in memory).\n"
    )


def _write_ready_file(
    path: Path, options: LocalUpOptions, aws_endpoint_url: str, api_base_url: str, stack: DeployedStack
) -> None:
    data = {
        "stack_name": options.stack_name,
        "region": options.region,
        "aws_endpoint_url": aws_endpoint_url,
        "api_url": f"{api_base_url}Prod/",
        "outputs": stack.outputs,
        "resources": stack.physical_ids,
    }
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2), encoding="utf-8")
    temporary.replace(path)  # atomic: a waiting script never reads half a file


def _echo(function_name: str, output: str) -> None:
    for line in output.rstrip("\n").splitlines():
        print(f"[{function_name}] {line}", file=sys.stderr, flush=True)
